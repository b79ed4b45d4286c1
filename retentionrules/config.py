"""`retentionrules.toml`, read into pydantic models. Defaults are the playbook's tables
(docs/playbook.md).

A project without a configuration file gets the standard customer export's schema
(the columns of the benchmark's data generator) and the channels sms, email and phone.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import sys
import zoneinfo
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from . import types as t
from .shopcalendar import CalendarError, NamedDate, parse_named_date
from .timeutil import Duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_NAME = "retentionrules.toml"
# Blanks that never belong to a value in the data: removed around ids, channel names,
# numbers, dates and booleans (docs/engine.md). ASCII white space, the no-break space and the
# ideographic (full-width) space that Chinese input methods type.
BLANKS = " \t\n\v\f\r\u00a0\u3000"


def _duration(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, dict):  # as a plan's header carries it: {"amount": 2, "unit": "day"}
        return Duration(int(value["amount"]), str(value["unit"]))
    return Duration.parse(str(value))


DurationField = Annotated[Duration, BeforeValidator(_duration)]
# A `[calendar]` entry, written back as it is spelled in retentionrules.toml (a plan's header
# carries the configuration, and `send` reads it again).
NamedDateField = Annotated[
    NamedDate, PlainValidator(parse_named_date), PlainSerializer(lambda d: d.toml())
]
# Names a rule can use: Unicode identifiers, as the grammar's NAME.
_NAME = re.compile(r"[^\W\d]\w*")


class _Model(BaseModel):
    # NaN and the infinities (TOML has `nan` and `inf`) are never a cost, a weight or a
    # threshold: a NaN compares false with everything and would silently disable a rule.
    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False
    )


_SCALAR_TYPES = {
    k.value: t.Type(k)
    for k in (t.Kind.NUMBER, t.Kind.STRING, t.Kind.BOOL, t.Kind.DATE, t.Kind.ANNIVERSARY)
}


def _field_type(name: str, spec: Any) -> t.Type:
    """`"number"`, `"date"`, ... or a list of values: an ordered enumeration, lowest first."""
    if isinstance(spec, list):
        if not spec or not all(isinstance(v, str) for v in spec) or len(set(spec)) != len(spec):
            raise ValueError(f"enumeration {name!r} must list distinct text values, lowest first")
        return t.Type(t.Kind.ENUM, name, tuple(spec))
    if spec not in _SCALAR_TYPES:
        raise ValueError(
            f"field {name!r} has unknown type {spec!r}; use one of "
            f"{', '.join(_SCALAR_TYPES)} or a list of enumeration values"
        )
    return _SCALAR_TYPES[spec]


STANDARD_FIELDS: dict[str, Any] = {
    "customer_id": "string",
    "household_id": "string",
    "city": "string",
    "category": "string",
    "birthday": "anniversary",
    "first_order_date": "date",
    "last_order_date": "date",
    "orders_12m": "number",
    "spend_12m": "number",
    "total_orders": "number",
    "sms_opt_in": "bool",
    "email_opt_in": "bool",
    "last_contacted": "date",
    "phone": "string",  # contact details: read by `send` only, never written to a plan
    "email": "string",
}


def _optional_name(value: Any) -> Any:
    return None if value == "" else value


OptionalName = Annotated[str | None, BeforeValidator(_optional_name)]


class CustomerSchema(_Model):
    id: str = "customer_id"
    household: OptionalName = "household_id"  # "" when customers have no household
    birthday: OptionalName = "birthday"  # "" when there is no birthday
    timezone: OptionalName = None  # a field with each customer's time zone, for send windows
    fields: dict[str, Any] = Field(default_factory=lambda: dict(STANDARD_FIELDS))

    @model_validator(mode="after")
    def _roles_are_declared(self) -> CustomerSchema:
        for role in ("id", "household", "birthday"):
            column = getattr(self, role)
            if column is None or column in self.fields:
                continue
            if role != "id" and role not in self.model_fields_set:
                object.__setattr__(self, role, None)  # a default naming no declared field
            else:
                raise ValueError(
                    f"customers.{role} names {column!r}, which is not in customers.fields"
                )
        for name, spec in self.fields.items():
            _field_type(name, spec)
        return self

    def types(self) -> dict[str, t.Type]:
        return {name: _field_type(name, spec) for name, spec in self.fields.items()}


class ContactCap(_Model):
    count: int = Field(gt=0)
    per: DurationField


_WINDOW = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-4]):([0-5]\d)\s*$")


def parse_window(text: str) -> tuple[dt.time, dt.time | None]:
    """`"09:00-21:00"` -> (09:00, 21:00); an end of 24:00 is None (midnight, the day's end). A
    window whose end is before its start runs over midnight (`"21:00-09:00"`)."""
    match = _WINDOW.match(text)
    if match is None or (match.group(3) == "24" and match.group(4) != "00"):
        raise ValueError(f"send_window {text!r} is not a window like \"09:00-21:00\"")
    start = dt.time(int(match.group(1)), int(match.group(2)))
    end = None if match.group(3) == "24" else dt.time(int(match.group(3)), int(match.group(4)))
    if end == start:
        raise ValueError(f"send_window {text!r} is empty; leave it out to send at any time")
    return start, end


class Channel(_Model):
    consent: str | None = None  # the bool field that records the customer's opt-in
    requires_consent: bool = True  # false only for staff tasks such as service callbacks
    cost: float = Field(default=0.0, ge=0)
    cap: ContactCap | None = None
    address: OptionalName = None  # the customer field `send` delivers to (phone, e-mail)
    send_window: str | None = None  # local time of the customer, e.g. "09:00-21:00"

    @model_validator(mode="after")
    def _consent_named(self) -> Channel:
        if self.requires_consent and not self.consent:
            raise ValueError("name the consent field, or set requires_consent = false")
        if self.send_window is not None:
            parse_window(self.send_window)
        return self

    def window(self) -> tuple[dt.time, dt.time | None] | None:
        return None if self.send_window is None else parse_window(self.send_window)


def _default_channels() -> dict[str, Channel]:
    return {
        "sms": Channel(consent="sms_opt_in", cost=0.1, address="phone"),
        "email": Channel(consent="email_opt_in", cost=0.02, address="email"),
        "phone": Channel(requires_consent=False, cost=2.0, address="phone"),
    }


class Weights(_Model):
    recency: float = 1
    frequency: float = 3
    monetary: float = 4


def _five(values: list[Any]) -> list[Any]:
    if len(values) != 5:
        raise ValueError("give five thresholds, for scores 5, 4, 3, 2 and 1")
    return values


class Scoring(_Model):
    window: DurationField = Duration(12, "month")
    # Score 5..1: at most this long since the last order.
    recency: Annotated[list[DurationField], BeforeValidator(_five)] = Field(
        default_factory=lambda: [Duration(n, "month") for n in (1, 3, 4, 7, 12)]
    )
    # Score 5..1: at least this many orders / this much spend in the window (and more than 0).
    frequency: Annotated[list[float], BeforeValidator(_five)] = [6, 4, 3, 2, 1]
    monetary: Annotated[list[float], BeforeValidator(_five)] = [2000, 1000, 500, 300, 0]
    weights: Weights = Weights()


class Stages(_Model):
    """Upper bounds of time since the last order; beyond `sleeping` a customer is lost."""

    active: DurationField = Duration(90, "day")
    silent: DurationField = Duration(180, "day")
    sleeping: DurationField = Duration(270, "day")

    @model_validator(mode="after")
    def _in_order(self) -> Stages:
        """Each stage lasts longer than the one before; checked when the configuration is read
        (by `check` too), not at plan time. Months count as 28 to 31 days: `1 month` and
        `30 days` could be either order, and are refused too."""
        names = ("active", "silent", "sleeping")
        for shorter, longer in itertools.pairwise(names):
            low, high = getattr(self, shorter), getattr(self, longer)
            if _days(low)[1] >= _days(high)[0]:
                written = self.model_fields_set
                said = {n: f"{getattr(self, n)}{'' if n in written else ', the default'}"
                        for n in (shorter, longer)}  # fmt: skip
                if longer in written:  # said where it is written
                    message = f"{longer} ({said[longer]}) must be longer than {shorter}"
                    where = longer
                else:
                    message = f"{shorter} ({said[shorter]}) must be shorter than {longer}"
                    where = shorter
                other = shorter if where == longer else longer
                raise SettingError(
                    f"{message} ({said[other]})",
                    below=(where,),
                    hint="stages are in order: active < silent < sleeping; after sleeping a "
                    "customer is lost",
                )
        return self


def _days(duration: Duration) -> tuple[int, int]:
    """The fewest and the most days a duration can be (a month is 28 to 31 days)."""
    per = {"day": (1, 1), "week": (7, 7), "month": (28, 31), "year": (365, 366)}
    low, high = per.get(duration.unit, (1, 1))
    return duration.amount * low, duration.amount * high


class Orders(_Model):
    """Column names of the orders export: one row per order, or per order line when the line
    columns are named (each is read only when named here; docs/engine.md "Order lines")."""

    customer: str = "customer_id"
    date: str = "order_date"
    amount: str = "amount"
    order_id: OptionalName = None  # lines of one order share it: orders are counted by it
    sku: OptionalName = None
    category: OptionalName = None
    quantity: OptionalName = None  # units on the line; missing: 1; negative: units returned

    @property
    def lines(self) -> bool:
        """Whether rows are order lines: a line column (sku, category, quantity) is named."""
        return any(name is not None for name in (self.sku, self.category, self.quantity))


# The largest number of days a product fact may hold: about 1,000 years, as a duration.
MAX_PRODUCT_DAYS = 366_000


class Product(_Model):
    """What the catalogue says of a product (a SKU) or of every product of a category."""

    category: str | None = None  # a SKU's category (for lines that do not name one)
    days_per_unit: float | None = Field(default=None, gt=0, le=MAX_PRODUCT_DAYS)
    warranty_days: int | None = Field(default=None, gt=0, le=MAX_PRODUCT_DAYS)

    @field_validator("category")
    @classmethod
    def _category_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip(BLANKS):
            raise ValueError("a category must not be empty")
        return None if value is None else value.strip(BLANKS)


class Products(_Model):
    """`[products.sku."formula-900g"]` and `[products.category.diapers]`: the catalogue in the
    configuration (a `--products` file may add to it, and replaces an entry with the same key)."""

    sku: dict[str, Product] = Field(default_factory=dict)
    category: dict[str, Product] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _keys_named(self) -> Products:
        for table, entries in (("sku", self.sku), ("category", self.category)):
            keys: dict[str, str] = {}
            for key in entries:
                found = key.strip(BLANKS)
                if not found:
                    raise ValueError(f"products.{table}: a key must not be empty")
                if found in keys:
                    raise ValueError(
                        f"products.{table}: {keys[found]!r} and {key!r} are the same key "
                        "(keys are compared without surrounding blanks)"
                    )
                keys[found] = key
        for key, product in self.category.items():
            if product.category is not None:
                raise ValueError(
                    f"products.category.{key}: a category entry has no category of its own"
                )
        return self

    def rows(self) -> list[tuple[str | None, str | None, float | None, int | None]]:
        """(sku, category, days_per_unit, warranty_days), as catalogue rows: SKUs, then
        categories (a category row has no sku)."""
        return [
            (key.strip(BLANKS), p.category, p.days_per_unit, p.warranty_days)
            for key, p in self.sku.items()
        ] + [
            (None, key.strip(BLANKS), p.days_per_unit, p.warranty_days)
            for key, p in self.category.items()
        ]


class Contacts(_Model):
    """The contact history's columns, and the hygiene applied to every message of every rule."""

    quiet_period: DurationField | None = None  # nothing goes to someone contacted this recently
    customer: str = "customer_id"
    channel: str = "channel"
    rule: str = "rule"
    sent_at: str = "sent_at"


class LedgerSettings(_Model):
    """Where the contact ledger lives: relative to this configuration file's folder."""

    path: str = "retentionrules-ledger.sqlite"


class Approval(_Model):
    """How long after its as-of date a plan may still be approved."""

    max_age: DurationField = Duration(2, "day")


class Config(_Model):
    timezone: str = "Asia/Shanghai"
    default_channel: OptionalName = "sms"  # "" for none: every `send` must then say `via`
    staff_channel: OptionalName = "phone"
    customers: CustomerSchema = CustomerSchema()
    channels: dict[str, Channel] = Field(default_factory=_default_channels)
    scoring: Scoring = Scoring()
    tiers: dict[str, float] = Field(
        default_factory=lambda: {"B": 1.0, "S": 17.0, "G": 26.0, "P": 36.0}
    )
    stages: Stages = Stages()
    orders: Orders = Orders()
    products: Products = Products()
    contacts: Contacts = Contacts()
    holdout_salt: str = "retentionrules"  # change it to draw a new control group
    ledger: LedgerSettings = LedgerSettings()
    approval: Approval = Approval()
    calendar: dict[str, NamedDateField] = Field(default_factory=dict)
    source: str | None = Field(default=None, exclude=True)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without a calendar, no `calendar` key: the configuration's digest (and so every
        plan id) stays what it was before calendars existed."""
        data: dict[str, Any] = handler(self)
        if not self.calendar:
            data.pop("calendar", None)
        return data

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        """Caught when the configuration is read (by `check` too), not at plan time."""
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingError(
                f"unknown time zone {value!r}",
                hint="use a name from the time zone database, such as Asia/Shanghai or UTC",
            ) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        seen: dict[str, str] = {}
        for name in self.channels:
            # The contact history's channel names are compared trimmed and lower-cased
            # (docs/engine.md); two configured names that compare equal would share a cap.
            key = name.strip(BLANKS).lower()
            if not key:
                raise ValueError("channels: a channel name must not be empty")
            if key in seen:
                raise ValueError(
                    f"channels {seen[key]!r} and {name!r} are the same channel "
                    "(channel names are compared without case and surrounding blanks)"
                )
            seen[key] = name
        declared = self.customers.types()
        for role in ("id", "household"):  # keys are text, however they look (docs/engine.md)
            column = getattr(self.customers, role)
            if column is not None and declared[column] != t.STRING:
                raise ValueError(
                    f"customers.{role} names {column!r}, declared {declared[column]}; "
                    f'keys are compared as text: declare {column} = "string"'
                )
        for name, channel in self.channels.items():
            if channel.consent and declared.get(channel.consent) != t.BOOL:
                raise ValueError(
                    f"channels.{name}.consent names {channel.consent!r}, "
                    "which must be a bool field in customers.fields"
                )
        for name, channel in self.channels.items():
            if channel.address is None or declared.get(channel.address) == t.STRING:
                continue
            if "channels" not in self.model_fields_set and channel.address not in declared:
                # a built-in channel whose address field this schema does not have
                self.channels[name] = channel.model_copy(update={"address": None})
                continue
            raise ValueError(
                f"channels.{name}.address names {channel.address!r}, "
                "which must be a string field in customers.fields"
            )
        zone = self.customers.timezone
        if zone is not None and declared.get(zone) != t.STRING:
            raise ValueError(
                f"customers.timezone names {zone!r}, which must be a string field in "
                "customers.fields holding time zone names such as Asia/Shanghai"
            )
        for setting in ("default_channel", "staff_channel"):
            channel = getattr(self, setting)
            if channel is None or channel in self.channels:
                continue
            if setting in self.model_fields_set:
                raise ValueError(f"{setting} {channel!r} is not configured under [channels]")
            object.__setattr__(self, setting, None)  # a default that names no configured channel
        builtin = {**t.ACTIVITY_FIELDS, **t.derived_fields(self.tier_type())}
        for name, declared_type in declared.items():
            if name in builtin and builtin[name] != declared_type:
                raise ValueError(
                    f"field {name!r} is built in as {builtin[name]}, but declared {declared_type}"
                )
        if self.customers.birthday and declared[self.customers.birthday] not in (
            t.DATE,
            t.ANNIVERSARY,
        ):
            raise ValueError("customers.birthday must name a date or anniversary field")
        self._calendar_names({**declared, **builtin})
        return self

    def _calendar_names(self, fields: dict[str, t.Type]) -> None:
        """A named date is a field: a name a rule can write, like no other field's (DuckDB
        compares column names without case, so neither may differ only in case)."""
        from .parser import RESERVED  # the parser's words; imported here, as it is heavy

        taken = {name.casefold(): ("field", name) for name in fields}
        for name in self.calendar:
            where = ("calendar", name)
            if not _NAME.fullmatch(name) or name.startswith("__"):
                raise CalendarError(
                    f"calendar: {name!r} cannot be a field name; use letters, digits and _, "
                    "starting with a letter (not __), e.g. double_11",
                    where,
                    key=True,
                )
            if name in RESERVED:
                raise CalendarError(
                    f"calendar: {name!r} is a reserved word of the rule language; "
                    f"choose another name, e.g. {name}_day",
                    where,
                    key=True,
                )
            clash = taken.get(name.casefold())
            if clash is not None:
                what, other = clash
                case = "" if other == name else " (names are compared without case)"
                raise CalendarError(
                    f"calendar: {name!r} is already the {what} {other!r}{case}; give the "
                    "named date another name",
                    where,
                    key=True,
                )
            taken[name.casefold()] = ("named date", name)

    def where(self) -> str:
        """Where this configuration came from, as a person would type it."""
        return shown_path(self.source)

    def tier_type(self) -> t.Type:
        ordered = sorted(self.tiers, key=lambda name: self.tiers[name])
        return t.Type(t.Kind.ENUM, "tier", tuple(ordered))

    def field_types(self) -> dict[str, t.Type]:
        """Every field a rule can name: declared, activity, derived and the named dates."""
        return {
            **t.ACTIVITY_FIELDS,
            **self.customers.types(),
            **t.derived_fields(self.tier_type()),
            **dict.fromkeys(self.calendar, t.DATE),
        }


def shown_path(path: str | Path | None) -> str:
    """A configuration file relative to the current folder when it is below it, else as given;
    "the built-in defaults" for none."""
    if path is None:
        return "the built-in defaults"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message says where."""


_BOM = b"\xef\xbb\xbf"


def _text(path: Path) -> str:
    """The file's text: UTF-8, with or without a byte order mark, line ends as Python reads
    text (CRLF and CR as LF)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from error
    data = data[len(_BOM) :] if data.startswith(_BOM) else data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = data[: error.start].decode("utf-8")  # valid: the error is the first bad byte
        before = before.replace("\r\n", "\n").replace("\r", "\n")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        raise ConfigError(
            f"{path}:{line}:{column}: not UTF-8 text: byte 0x{data[error.start]:02X} here is not "
            "part of a valid UTF-8 character (the file looks saved in another encoding, such as "
            "GBK); hint: save the file as UTF-8 (with or without a byte order mark)"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


class TomlError(Exception):
    """TOML that cannot be read, with where (line and column, from 1) and a hint."""

    def __init__(self, message: str, line: int, column: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.hint = message, line, column, hint


_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)|\s*\(at end of document\)")
_DIGITS = re.compile(r"[0-9][0-9_]*")


def read_toml(text: str) -> dict[str, Any]:
    """`tomllib.loads`, failing only with TomlError. Besides bad syntax, tomllib fails in two
    ways of its own on hostile text: RecursionError on arrays or tables nested thousands deep
    (it recurses once per level), and a plain ValueError on an integer longer than Python
    converts (4,300 digits); both would otherwise end a command as an internal error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        found = _POSITION.search(str(error))
        line, column = (1, 1)
        if found is not None and found.group(1):
            line, column = int(found.group(1)), int(found.group(2))
        elif found is not None:  # at the end of the document
            line = text.count("\n") + 1
            column = len(text) - (text.rfind("\n") + 1) + 1
        message = _POSITION.sub("", str(error))
        raise TomlError(f"not valid TOML: {message}", line, column) from None
    except RecursionError:
        raise TomlError(
            "not readable: arrays or tables nested too deeply",
            1,
            1,
            "a few levels of tables and lists are all a file here needs",
        ) from None
    except ValueError as error:  # int() refuses more digits than sys.get_int_max_str_digits()
        limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)()
        runs = (m for m in _DIGITS.finditer(text) if len(m.group().replace("_", "")) > limit)
        start = next((m.start() for m in runs), None)
        if start is None:  # not that: no such number
            raise TomlError(f"not valid TOML: {error}", 1, 1) from None
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        raise TomlError(
            f"not readable: a number with more than {limit:,} digits",
            line,
            column,
            "numbers lie between -10^15 and 10^15",
        ) from None


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config()
    text = _text(path)
    try:
        data = read_toml(text)
    except TomlError as error:
        from .render import caret_line

        lines = text.split("\n")
        source = lines[error.line - 1] if 0 < error.line <= len(lines) else ""
        shown = [f"{shown_path(path)}:{error.line}:{error.column}: {error.message}"]
        if source.strip():
            shown += [f"    {source.rstrip()}", "    " + caret_line(source, error.column, 1)]
        if error.hint:
            shown.append(f"    hint: {error.hint}")
        raise ConfigError("\n".join(shown)) from None
    try:
        return Config.model_validate(data).model_copy(update={"source": str(path)})
    except RecursionError:
        raise ConfigError(f"{path}: values nested too deeply to check") from None
    except ValidationError as error:
        raise ConfigError(_invalid(path, text, error)) from error


def _invalid(path: Path, text: str, error: ValidationError) -> str:
    """Every problem as `FILE:LINE:COL: key: problem`, in our own words (never pydantic's), at
    the value (or the key, when the name is what is wrong; or the nearest table written), with
    the line, a caret under the place and a hint where there is one; `FILE: key: problem` when
    no place is known."""
    from .tomlpos import positions

    try:
        found = positions(text)
    except RecursionError:  # pragma: no cover - tomllib refuses deeper nesting first
        found = {}
    lines = text.split("\n")
    shown = shown_path(path)
    out = []
    for e in error.errors():
        # pydantic names validators in the location (`function-after[...]`): not keys
        loc: tuple[str | int, ...] = tuple(
            k for k in e["loc"] if not str(k).startswith("function-")
        )
        cause = e.get("ctx", {}).get("error")
        key = e["type"] == "extra_forbidden"
        if isinstance(cause, (CalendarError, SettingError)):
            loc, key = loc + cause.below, cause.key
        message, hint = _problem(e, loc, cause)
        named = re.match(r"([A-Za-z_]\w*(?:\.\w+)+) ", message)  # "customers.id names ..."
        if named and tuple(named.group(1).split(".")) in found:
            loc = tuple(named.group(1).split("."))
            message = message[named.end() :]  # said once, as the key: "customers.id: names ..."
        if isinstance(cause, CalendarError) and message.startswith("calendar: "):
            problem = message
        else:
            problem = f"{'.'.join(str(p) for p in loc) or 'top level'}: {message}"
        place = None
        for end in range(len(loc), 0, -1):  # the nearest written place: the key, or a table
            located = found.get(loc[:end])
            if located is not None:
                place = located.key if key and end == len(loc) else located.value
                break
        if place is None:
            out.append(f"{shown}: {problem}")
        else:
            out.append(f"{shown}:{place.line}:{place.column}: {problem}")
            source = lines[place.line - 1] if place.line <= len(lines) else ""
            from .render import excerpt

            out += excerpt(
                source.rstrip(), place.column, place.end_line, place.line, place.end_column
            )
        if hint:
            out.append(f"    hint: {hint}")
    return "\n".join(out)


class SettingError(ValueError):
    """A setting that cannot be used, raised by a validator: `below` is the key under the
    validated table it is about (`("silent",)` under `stages`), `hint` what to do."""

    def __init__(
        self, message: str, below: tuple[str, ...] = (), hint: str | None = None, key: bool = False
    ) -> None:
        super().__init__(message)
        self.below, self.hint, self.key = below, hint, key


def _shown_value(value: Any) -> str:
    """A value from the file as TOML writes it (`"abc"`, `true`, `0` for 0.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


_WANTED = {  # pydantic's error types -> what was expected, and how to write it
    "float_parsing": ("a number", "write numbers without quotes, e.g. cost = 0.1"),
    "float_type": ("a number", "write numbers without quotes, e.g. cost = 0.1"),
    "int_parsing": ("a whole number", "write whole numbers without quotes, e.g. count = 10"),
    "int_type": ("a whole number", "write whole numbers without quotes, e.g. count = 10"),
    "int_from_float": ("a whole number", "write a whole number, e.g. count = 10"),
    "string_type": ("text in quotes", 'write text in double quotes, e.g. "sms"'),
    "bool_type": ("true or false", "write true or false, without quotes"),
    "bool_parsing": ("true or false", "write true or false, without quotes"),
    "dict_type": ("a table", "write a table: [name] on its own line, or name = { key = value }"),
    "model_type": ("a table", "write a table: [name] on its own line, or name = { key = value }"),
    "model_attributes_type": ("a table", "write a table: [name], or name = { key = value }"),
    "list_type": ("a list", "write a list in brackets, e.g. [1, 2, 3]"),
}


def _problem(
    e: Any, loc: tuple[str | int, ...], cause: object
) -> tuple[str, str | None]:
    """A pydantic error in our words, and a hint."""
    kind = e["type"]
    context = e.get("ctx", {})
    if isinstance(cause, ValueError):
        hint = cause.hint if isinstance(cause, SettingError) else None
        return str(cause), hint
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        known = _settings_at(loc[:-1])
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        if close:
            hint = f"did you mean `{close[0]}`?"
        elif known:
            hint = f"the settings here are {', '.join(known)}"
        else:
            hint = "remove it"
        return f"unknown setting `{name}`", hint
    if kind == "missing":
        return "is required here", None
    if kind in _WANTED:
        wanted, hint = _WANTED[kind]
        return f"expected {wanted}, not {_shown_value(e.get('input'))}", hint
    if kind == "finite_number":
        return "must be a finite number (not nan or inf)", None
    bounds = {
        "greater_than": "more than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        limits = {k: _shown_value(v) for k, v in context.items()}
        return f"must be {bounds[kind].format(**limits)}, not {_shown_value(e.get('input'))}", None
    message = str(e["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message, None


def _settings_at(loc: tuple[str | int, ...]) -> list[str]:
    """The setting names of the table at `loc` in the configuration's models ([] if unknown):
    `channels.sms` -> consent, requires_consent, cost, cap, address, send_window."""
    import typing

    kind: Any = Config
    for step in loc:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(str(step))
            if field is None:
                return []
            kind = field.annotation
        elif typing.get_origin(kind) is dict:
            kind = typing.get_args(kind)[1]
        else:
            return []
        while typing.get_origin(kind) in (typing.Union, typing.Annotated) or (
            type(kind).__name__ == "UnionType"
        ):
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            kind = args[0]
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return [name for name, f in kind.model_fields.items() if not f.exclude]
    return []


def find_config(start: Path) -> Path | None:
    """The nearest retentionrules.toml in `start` or a folder above it."""
    folder = start if start.is_dir() else start.parent
    for candidate in (folder.resolve(), *folder.resolve().parents):
        if (candidate / CONFIG_NAME).is_file():
            return candidate / CONFIG_NAME
    return None
