"""Calendar arithmetic shared by the checker, both evaluators and the scoring: one definition.

Months and years are calendar units: 31 March minus one month is the last day of February.
Anniversaries fall on 28 February in years without a 29 February.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from .limits import MAX_DURATION

# The dates input data may carry and the as-of date may take. Wide enough for birthdays and long
# warranties; narrow enough that calendar arithmetic on them (a 12-month window, a 10-year cap)
# stays inside both Python's and DuckDB's date ranges.
MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2199, 12, 31)

_UNIT_DAYS = {"day": 1, "week": 7}
_DURATION = re.compile(r"^\s*(\d+)\s*(day|week|month|year)s?\s*$")


@dataclass(frozen=True, slots=True)
class Duration:
    amount: int
    unit: str  # day | week | month | year

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}{'' if self.amount == 1 else 's'}"

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _DURATION.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a duration like '30 days' or '3 months'")
        amount, unit = int(match.group(1)), match.group(2)
        problem = duration_problem(amount, unit)
        if problem is not None:
            raise ValueError(problem)
        return cls(amount, unit)


def duration_problem(amount: int, unit: str) -> str | None:
    """Why `amount unit` is too long to be a duration (limits.MAX_DURATION), or None."""
    longest = MAX_DURATION[unit]
    if amount <= longest:
        return None
    years = "" if unit == "year" else " (about 1,000 years)"
    return f"a duration may be at most {longest:,} {unit}s{years}"


# The calendar Python and DuckDB share; dates are never moved beyond it.
_FIRST, _LAST = dt.date.min, dt.date.max


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    index = min(max(index, _FIRST.year * 12), _LAST.year * 12 + 11)
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def shift(day: dt.date, duration: Duration, sign: int = 1) -> dt.date:
    """`day` moved by `duration` forward (sign=1) or back (sign=-1).

    Within the limits (an as-of date in [MIN_DATE, MAX_DATE], a duration of at most about 1,000
    years) the result is always a real date; beyond them it stops at the first or last day of the
    calendar rather than fail, so calendar arithmetic can never leave the range both evaluators
    (Python and DuckDB) represent.
    """
    if duration.unit in _UNIT_DAYS:
        ordinal = day.toordinal() + sign * duration.amount * _UNIT_DAYS[duration.unit]
        return dt.date.fromordinal(min(max(ordinal, _FIRST.toordinal()), _LAST.toordinal()))
    months = duration.amount * (12 if duration.unit == "year" else 1)
    return add_months(day, sign * months)


def next_anniversary(day: dt.date, as_of: dt.date) -> dt.date:
    """The next occurrence of `day`'s month and day on or after `as_of`."""
    for year in (as_of.year, as_of.year + 1):
        last = calendar.monthrange(year, day.month)[1]
        candidate = dt.date(year, day.month, min(day.day, last))
        if candidate >= as_of:
            return candidate
    raise AssertionError("unreachable: an anniversary recurs within a year")
