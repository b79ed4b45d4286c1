"""The language's size limits in one place: nesting depth, digits of a number, length of a duration,
chains of segments. docs/language.md ("Limits") states the same.

Each limit lies far beyond what a real rule needs. They exist so that every tool (`check`, `fmt`,
`plan`, `explain`, `test`) answers any input, however hostile, with a result or a diagnostic at
the offending statement, never a crash or a hang; and so that both evaluators (SQL and the Python
interpreter) give the same answer at the extremes.
"""

from __future__ import annotations

import sys

# How deeply the operators of one statement may nest: `not not x` is 2 levels, `a + b + c` is 2
# (a sum is a chain of `+`), `(a or (b and c))` is 2; parentheses alone add nothing. Every pass
# over the syntax tree (building it, checking, formatting, evaluating) recurses once per level.
MAX_NESTING = 1000

# How long a chain of segments built on segments may be: `segment b = a and ...` builds b on a,
# a chain of 2. Each link is a step of its own in the plan query (a segment is computed once, as a
# column, before the segments and rules that use it), and those steps cost more the more of them
# there are; a chain of 100 plans in well under a second.
MAX_SEGMENT_CHAIN = 100

# Python frames those passes use per level at most, with room to spare: measured, building the
# syntax tree, formatting and planning need three.
_FRAMES_PER_LEVEL = 8

# Numbers are compared as 64-bit floating point (doubles), as DuckDB and Python both do. A number
# written with at most 15 significant digits converts to the double nearest it and back without
# change (a double holds 15 decimal digits exactly), so it means exactly what it says; with at
# most 15 digits after the point it is also never rounded to zero, and it never overflows.
NUMBER_DIGITS = 15

# The longest duration, per unit: about 1,000 years. An as-of date lies in 1900-2199 (see
# timeutil.MIN_DATE/MAX_DATE), so a date 1,000 years before or after it stays inside the calendar
# that Python and DuckDB share (years 1 to 9999).
MAX_DURATION = {"day": 365_000, "week": 52_000, "month": 12_000, "year": 1_000}


def allow_nesting() -> None:
    """Let the recursive passes reach MAX_NESTING levels: Python's default limit of 1,000 frames
    stops them near 300. Raising it is safe: the parser refuses deeper statements before anything
    recurses over them, so the passes never go deeper than this, far from the C stack's limit."""
    needed = MAX_NESTING * _FRAMES_PER_LEVEL + 2000
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)
