"""The shop's calendar: named dates from `[calendar]` in retentionrules.toml.

Each named date is a `date` field whose value is its next occurrence on or after the as-of date
(today counts), the same for every customer:

    double_11 = "11-11"                         # every year on 11 November
    member_day = { day = 30 }                   # every month on the 30th (or its last day)
    spring_festival = { holiday = "spring_festival" }   # a Chinese statutory holiday

Statutory holidays, the lunar ones included, come from the maintained `holidays` package (its
China calendar, read in its own language, Simplified Chinese): never a table typed here. Eve and
Lantern Festival are the Spring Festival moved by a day count that holds by definition (the last
day of the twelfth lunar month; the fifteenth of the first).
"""

from __future__ import annotations

import calendar
import datetime as dt
import difflib
import functools
import re
from dataclasses import dataclass

from .timeutil import add_months, next_anniversary

# A holiday of the built-in vocabulary: the name the holidays package gives it in Simplified
# Chinese, and the days from that holiday's first day to the named day.
_HOLIDAYS: dict[str, tuple[str, int]] = {
    "new_year": ("元旦", 0),
    "spring_festival_eve": ("春节", -1),
    "spring_festival": ("春节", 0),
    "lantern": ("春节", 14),
    "qingming": ("清明节", 0),
    "labour_day": ("劳动节", 0),
    "dragon_boat": ("端午节", 0),
    "mid_autumn": ("中秋节", 0),
    "national_day": ("国庆节", 0),
}
# The Chinese names a marketer may write instead.
_CHINESE: dict[str, str] = {
    "元旦": "new_year",
    "除夕": "spring_festival_eve",
    "春节": "spring_festival",
    "元宵节": "lantern",
    "清明节": "qingming",
    "劳动节": "labour_day",
    "端午节": "dragon_boat",
    "中秋节": "mid_autumn",
    "国庆节": "national_day",
}
HOLIDAY_NAMES: tuple[str, ...] = tuple(_HOLIDAYS)

_MONTH_DAY = re.compile(r"^(\d{1,2})-(\d{1,2})$")


class CalendarError(ValueError):
    """A named date that cannot be used. `below` is where, under the named date's own entry
    (`("holiday",)` for the value of its `holiday` key); `key` says the name itself is wrong."""

    def __init__(self, message: str, below: tuple[str, ...] = (), key: bool = False) -> None:
        super().__init__(message)
        self.below, self.key = below, key


@dataclass(frozen=True, slots=True)
class NamedDate:
    """One entry of `[calendar]`: yearly on `month`-`day`, monthly on `day`, or a holiday."""

    kind: str  # "yearly" | "monthly" | "holiday"
    month: int = 0
    day: int = 0
    holiday: str = ""

    def toml(self) -> str | dict[str, int | str]:
        """The entry as retentionrules.toml spells it (what `parse_named_date` reads back)."""
        if self.kind == "yearly":
            return f"{self.month:02d}-{self.day:02d}"
        if self.kind == "monthly":
            return {"day": self.day}
        return {"holiday": self.holiday}

    def next_on_or_after(self, as_of: dt.date) -> dt.date | None:
        """The next occurrence on or after `as_of`; None when the holidays package has no date
        for it in the years asked (before the holiday was statutory, or beyond its data)."""
        if self.kind == "yearly":
            return next_anniversary(dt.date(2000, self.month, self.day), as_of)
        if self.kind == "monthly":
            for months in (0, 1):
                first = add_months(as_of.replace(day=1), months)
                last = calendar.monthrange(first.year, first.month)[1]
                candidate = first.replace(day=min(self.day, last))
                if candidate >= as_of:
                    return candidate
            raise AssertionError("unreachable: a monthly date recurs within two months")
        name, offset = _HOLIDAYS[self.holiday]
        for year in (as_of.year, as_of.year + 1):
            festival = _first_day(name, year)
            if festival is not None and festival + dt.timedelta(days=offset) >= as_of:
                return festival + dt.timedelta(days=offset)
        return None


@functools.lru_cache(maxsize=64)
def _first_day(name: str, year: int) -> dt.date | None:
    """The first day the holidays package names `name` (in Simplified Chinese) in `year`: the
    festival itself, not a substitute day off or an observed day."""
    import holidays  # imported when a holiday is asked for: no cost for shops without one

    found = holidays.country_holidays("CN", years=year, language="zh_CN")
    days = [day for day, names in found.items() if name in names.split("; ")]
    return min(days) if days else None


def parse_named_date(value: object) -> NamedDate:
    """A `[calendar]` value: `"MM-DD"`, `{ day = N }` or `{ holiday = "NAME" }`."""
    if isinstance(value, NamedDate):
        return value
    if isinstance(value, str):
        return _yearly(value)
    if not isinstance(value, dict):
        raise CalendarError(_SHAPES)
    keys = set(value)
    if keys == {"day"}:
        day = value["day"]
        if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 31:
            raise CalendarError(
                f"day must be a whole number from 1 to 31, not {day!r} (a month without that "
                "day uses its last day)",
                ("day",),
            )
        return NamedDate("monthly", day=day)
    if keys == {"holiday"}:
        name = value["holiday"]
        if not isinstance(name, str):
            raise CalendarError(f"holiday must be a name in quotes, not {name!r}", ("holiday",))
        holiday = name if name in _HOLIDAYS else _CHINESE.get(name)
        if holiday is None:
            close = difflib.get_close_matches(name, [*_HOLIDAYS, *_CHINESE], n=1, cutoff=0.6)
            hint = f"; hint: did you mean {close[0]!r}?" if close else ""
            raise CalendarError(
                f"unknown holiday {name!r} (the holidays: {', '.join(_HOLIDAYS)}, or their "
                f"Chinese names {', '.join(_CHINESE)}){hint}",
                ("holiday",),
            )
        return NamedDate("holiday", holiday=holiday)
    unknown = sorted(keys - {"day", "holiday"})
    raise CalendarError(
        f"unknown key {unknown[0]!r}; {_SHAPES}" if unknown else _SHAPES,
        (unknown[0],) if unknown else (),
        key=bool(unknown),
    )


_SHAPES = (
    'a named date is "MM-DD" (every year), { day = N } (every month) or '
    '{ holiday = "NAME" } (a statutory holiday)'
)


def _yearly(text: str) -> NamedDate:
    match = _MONTH_DAY.match(text)
    if match is None:
        raise CalendarError(f"{text!r} is not a month and day like \"11-11\"; {_SHAPES}")
    month, day = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2000, month)[1]:
        raise CalendarError(f"{text!r} is not a day of the year (month-day, like \"11-11\")")
    return NamedDate("yearly", month=month, day=day)
