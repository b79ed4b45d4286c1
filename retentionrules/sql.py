"""SQL dialect concerns in one place: quoting, literals, date arithmetic, the holdout hash.

Everything that turns a value from a rule file or a configuration into SQL text goes through
`ident` or `literal`, so rule text can never become SQL syntax. Moving the plan query to another
engine (Spark SQL, say) means changing this module.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal

from .timeutil import next_anniversary as next_anniversary_of

HOLDOUT_BUCKETS = 10_000  # holdout shares are decided in basis points


def ident(name: str) -> str:
    """A quoted identifier: `"name"`, with embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    """A SQL literal for a Python value; text is quoted with embedded quotes doubled."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot use {value} in a query")
        return f"CAST({value!r} AS DOUBLE)"  # a bare 0.1 would be a DECIMAL in DuckDB
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def rank_column(field: str) -> str:
    """The derived column holding an enumeration field's rank, so ordering compares integers."""
    return ident(f"{field}#rank")


def pick(values: Sequence[object], index: str) -> str:
    """The value at a 0-based SQL `index` in a constant list: a vectorised lookup per row, cheaper
    than a CASE, and unlike a join with a lookup table it keeps the query's row order."""
    if not values:
        return "NULL"
    return f"[{', '.join(literal(v) for v in values)}][{index} + 1]"


def anniversary_column(field: str) -> str:
    """The derived column holding an anniversary field's next occurrence: computed once per
    customer, however many rules ask."""
    return ident(f"{field}#next")


def next_anniversary(column: str, as_of: dt.date) -> str:
    """The next occurrence of `column`'s month and day on or after `as_of`.

    Looked up by month and day in a list that `timeutil.next_anniversary` fills for each of the
    366 days of a leap year: the interpreter's own definition (29 February falls on the 28th in
    other years), and cheaper per row than building dates.
    """
    days: list[object] = []
    for month in range(1, 13):
        last = calendar.monthrange(2000, month)[1]
        for day in range(1, 32):
            date = dt.date(2000, month, day) if day <= last else None
            days.append(date and next_anniversary_of(date, as_of))
    return pick(days, f"month({column}) * 31 + day({column}) - 32")


def days_between(later: str, earlier: str) -> str:
    return f"date_diff('day', {earlier}, {later})"


def holdout_bucket(salt: str, customer: str, rule: str) -> str:
    """A bucket in [0, HOLDOUT_BUCKETS) from md5(salt|customer|rule): the same on every machine."""
    key = f"{literal(salt + '|')} || {customer} || '|' || {rule}"
    return f"(('0x' || substr(md5({key}), 1, 8))::UBIGINT % {HOLDOUT_BUCKETS})"
