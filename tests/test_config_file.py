"""The fully commented `rules/retentionrules.toml` shows every setting there is: each field of
the configuration's models appears in it (set, or commented out where it has no default), so
a new user finds the channel `cap`, `holdout_salt` and the column keys there."""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from retentionrules.config import Config, load_config

from .conftest import ROOT

FILE = ROOT / "rules" / "retentionrules.toml"


def settings(model: type[BaseModel], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every setting's path through the models; `*` for a table's own names (channels.*)."""
    found = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        found.append((*path, name))
        kind = field.annotation
        while typing.get_origin(kind) in (typing.Union, typing.Annotated) or (
            type(kind).__name__ == "UnionType"
        ):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if typing.get_origin(kind) is dict:
            inner = typing.get_args(kind)[1]
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                found += settings(inner, (*path, name, "*"))
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            found += settings(kind, (*path, name))
    return found


# Settings that no file may write: a category entry of the catalogue has no category of its own.
NOT_WRITABLE = {"products.category.*.category"}


def sections(text: str) -> list[tuple[tuple[str, ...], str]]:
    """Each line with the table it is in (`[a.b]`, or `# [a.b]` for a table shown commented
    out); () before the first table."""
    found, current = [], ()
    for line in text.splitlines():
        header = re.match(r"^#?\s*\[([^\]]+)\]\s*(#.*)?$", line)
        if header:
            current = tuple(part.strip().strip('"') for part in header.group(1).split("."))
        found.append((current, line))
    return found


def written(path: tuple[str, ...], text: str) -> bool:
    """The setting's name as a key (`name =`, set or commented out, or in an inline table) in a
    table its path leads to (`*` stands for any name: channels.*.cap in [channels.sms]); or
    the setting as a table of its own (`[calendar]`, `[customers.fields]`)."""
    *tables, name = path
    key = rf"(^#?\s*|[{{,]\s*){re.escape(name)}\s*="

    def under(section: tuple[str, ...], wanted: list[str]) -> bool:
        return len(section) == len(wanted) and all(
            w in ("*", s) for w, s in zip(wanted, section, strict=True)
        )

    for section, line in sections(text):
        if under(section, tables) and re.search(key, line):
            return True
        if tables and under(section, tables[:-1]) and re.match(  # parent = { name = ... }
            rf"^#?\s*{re.escape(tables[-1])}\s*=\s*\{{.*\b{re.escape(name)}\s*=", line
        ):
            return True
        if section[: len(path)] == tuple(path) or under(section[: len(path)], list(path)):
            return True
    return False


def test_every_setting_of_the_configuration_appears_in_the_commented_file():
    text = FILE.read_text(encoding="utf-8")
    missing = [
        ".".join(path)
        for path in settings(Config)
        if ".".join(path) not in NOT_WRITABLE and not written(path, text)
    ]
    assert missing == []


def test_the_settings_a_new_user_looked_for_are_shown_as_they_are_written():
    text = FILE.read_text(encoding="utf-8")
    for line in ('# cap = { count = 10, per = "40 days" }', 'holdout_salt = "retentionrules"',
                 'customer = "customer_id"', 'sent_at = "sent_at"', "[calendar]",
                 'max_age = "2 days"', 'path = "retentionrules-ledger.sqlite"'):  # fmt: skip
        assert line in text


def test_the_commented_file_is_the_defaults_where_it_says_so():
    """Its values are the built-in defaults, but for what its header names: the quiet period,
    the order lines and the calendar."""
    shown = load_config(FILE).model_dump(mode="json")
    defaults = Config().model_dump(mode="json")
    differ = sorted(k for k in {*shown, *defaults} if shown.get(k) != defaults.get(k))
    assert differ == ["calendar", "contacts", "orders"]
    assert {**shown["contacts"], "quiet_period": None} == defaults["contacts"]
