"""Positions in TOML: every key tomllib reads is found where it was written, whatever the style."""

from __future__ import annotations

import datetime as dt
import json
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from retentionrules.tomlpos import positions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib


def text_at(source: str, span) -> str:
    return source[span.offset : span.end_offset]


def test_keys_and_values_in_arrays_of_tables_inline_tables_and_dotted_keys():
    source = """as_of = 2026-11-22  # a comment
[defaults]
customer = { sms_opt_in = true, "quoted key" = 1 }

[[case]]
name = "first"

[[case]]
name = 'second'
derived.tier = "Gold"
contacts = [
  { channel = "sms", sent_at = 2026-11-20T08:00:00Z },  # trailing
  { channel = "email" },
]
[case.customer]
city = \"\"\"上海
multi\"\"\"
"""
    found = positions(source)
    assert text_at(source, found[("case", 1, "derived", "tier")].value) == '"Gold"'
    assert found[("case", 1, "derived", "tier")].key.line == 10
    assert found[("case", 1, "contacts", 1, "channel")].key.line == 13
    sent = found[("case", 1, "contacts", 0, "sent_at")]
    assert text_at(source, sent.value) == "2026-11-20T08:00:00Z"
    assert (sent.key.line, sent.key.column) == (12, 22)
    assert found[("case", 1, "customer", "city")].value.end_line == 17
    assert found[("defaults", "customer", "quoted key")].key.column == 33
    assert found[("case", 0)].key.line == 5  # a header locates its table
    assert found[("case", 0, "name")].value.column == 8


KEYS = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,6}", fullmatch=True),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=5),
)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
    st.dates(dt.date(1900, 1, 1), dt.date(2199, 12, 31)),
)


def key_text(key: str) -> str:
    if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        return key
    return json.dumps(key)  # a TOML basic string is a JSON string, for what JSON escapes


def value_text(value, draw) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        literal = all(c == "\t" or (" " <= c != "\x7f" and c != "'") for c in value)
        if literal and draw(st.booleans()):
            return f"'{value}'"
        return json.dumps(value, ensure_ascii=draw(st.booleans()))
    if isinstance(value, list):
        sep = draw(st.sampled_from([", ", ",\n  ", " ,  # c\n "]))
        return "[" + sep.join(value_text(v, draw) for v in value) + "]"
    items = ", ".join(f"{key_text(k)} = {value_text(v, draw)}" for k, v in value.items())
    return "{ " + items + " }" if items else "{}"


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=8,
)


@st.composite
def documents(draw):
    """A TOML document in a mix of styles, with the data tomllib should read from it."""
    lines = []
    top = draw(st.dictionaries(KEYS, VALUES, max_size=4))
    for key, value in top.items():
        lines.append(f"{key_text(key)} = {value_text(value, draw)}")
    names = KEYS.filter(lambda k: k not in top)
    tables = draw(st.dictionaries(names, st.integers(1, 3), max_size=2))
    for name, count in tables.items():
        for _ in range(count):
            lines.append(f"\n[[ {key_text(name)} ]]  # a table of the array")
            body = draw(st.dictionaries(KEYS, VALUES, max_size=3))
            for key, value in body.items():
                if isinstance(value, dict) and value and draw(st.booleans()):
                    for inner, leaf in value.items():  # dotted keys
                        dotted = f"{key_text(key)} . {key_text(inner)}"
                        lines.append(f"{dotted} = {value_text(leaf, draw)}")
                else:
                    lines.append(f"{key_text(key)}= {value_text(value, draw)}")
    return "\n".join(lines) + "\n"


def leaf_paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaf_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from leaf_paths(value, (*prefix, index))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(documents())
def test_every_key_tomllib_reads_is_located_at_its_own_text(source):
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError:
        return  # the generator made a repeated key: not TOML, nothing to locate
    found = positions(source)
    for path in leaf_paths(data):
        if not path:
            continue
        assert path in found, (path, source)
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        value = parent[path[-1]]
        if isinstance(path[-1], str):
            key = text_at(source, found[path].key)
            assert tomllib.loads(f"{key} = 1") == {path[-1]: 1}, (path, key)
        if not found[path].is_table:  # tables given by headers or dotted keys have no text
            written = text_at(source, found[path].value)
            assert tomllib.loads(f"v = {written}")["v"] == value, (path, written)


def test_never_raises_on_text_it_does_not_understand():
    for text in ["[[", "a = ", 'a = "x', "a = [1,", "= 3", "[a.]\nb=1", "a = '''x", "\x00"]:
        positions(text)
