"""The engine's SQL rendered for Apache Spark: the one place where DuckDB's SQL becomes Spark's.

The pipeline writes its SQL once, in DuckDB's dialect, through the quoting choke point
(`sql.ident`, `sql.literal`). For `--engine spark` every statement goes through `to_spark`:
sqlglot parses it as DuckDB SQL and generates Spark SQL, and the transforms below fix what
sqlglot's translation leaves wrong or missing for the constructs this engine uses:

- `SELECT * EXCLUDE (...)` / `* REPLACE (...)`: expanded into explicit columns from the schemas
  of the tables the statement reads (sqlglot's `qualify`), since Spark has neither;
- `rowid`, DuckDB's row number of a stored table: the column `__row` the Spark loader gives
  every table it makes (the input order);
- `[a, b, c][i]`, a 1-based index into a constant list: `element_at(array(a, b, c), i)`;
- the holdout bucket `('0x' || substr(md5(k), 1, 8))::UBIGINT`: `conv(..., 16, 10)`;
- `regexp_full_match(x, p)`: `x RLIKE '^(?:p)$'` (the patterns are plain ASCII classes, which
  RE2 and Java read alike);
- `isfinite(x)`: neither NaN nor an infinity; `trunc(x)` of a double: `x - x % 1`;
- `timezone(zone, instant)`: `from_utc_timestamp(instant, zone)` (the Spark session runs in UTC,
  so a parsed instant's wall-clock time is UTC's); a text cast to an instant gets the seconds and
  the offset's minutes Spark's cast needs (`20:00Z` is `20:00:00Z`, `+08` is `+08:00`);
- date arithmetic: `date - date` is `datediff`, `date_diff('day', a, b)` is `datediff(b, a)`;
- NULL ordering: DuckDB sorts NULLs last, Spark first; sqlglot writes `NULLS LAST` where it
  differs (checked by the tests, which compare the plans byte for byte);
- several `unnest` side by side in one select (walked in step): one `inline(arrays_zip(...))`;
- JSON values (JSON lines inputs): on Spark a cell is the value's JSON text
  (`spark._json_texts`), so `json_type(text)` is read off the text, with DuckDB's names (an
  integer is a BIGINT, a positive one beyond BIGINT up to 2^64 - 1 a UBIGINT, beyond that a
  DOUBLE, as DuckDB types it), `->> '$'` is `get_json_object(text, '$')` (sqlglot's), and
  `CAST(x AS UBIGINT)` is a DECIMAL(20, 0).

Strings compare by their UTF-8 bytes on both engines (code-point order), so ties on ids break the
same way.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.optimizer.qualify import qualify


class _DuckDB(DuckDB):
    """DuckDB's dialect, with list indexes kept as written (1-based): sqlglot otherwise shifts
    an index to 0-based only where it can type it, which leaves `[...][idx + 1]` ambiguous."""

    INDEX_OFFSET = 0


Schema = Mapping[str, Mapping[str, str]]  # table -> column -> Spark type ("string", "date"...)


def parse(sql: str) -> exp.Expr:
    """A statement of the engine's SQL (DuckDB's dialect)."""
    tree = sqlglot.parse_one(sql, read=_DuckDB)
    assert tree is not None
    return tree


def _call(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _is_date(node: exp.Expr) -> bool:
    """A DATE literal as sqlglot parses `DATE 'YYYY-MM-DD'`."""
    return (
        isinstance(node, exp.Cast)
        and node.to.this == exp.DataType.Type.DATE
        and isinstance(node.this, exp.Literal)
    )


def _finite(value: exp.Expr) -> exp.Expr:
    infinity = exp.cast(exp.Literal.string("inf"), exp.DataType.build("double"))
    return exp.paren(
        exp.and_(
            exp.not_(_call("isnan", value.copy())),
            exp.NEQ(this=exp.Abs(this=value.copy()), expression=infinity),
        )
    )


_JSON_TYPE = (  # DuckDB's json_type of a JSON text (x), as Spark reads it; NULL stays NULL
    "CASE WHEN x = 'null' THEN 'NULL' WHEN x = 'true' OR x = 'false' THEN 'BOOLEAN' "
    "WHEN starts_with(x, '\"') THEN 'VARCHAR' WHEN starts_with(x, '{') THEN 'OBJECT' "
    "WHEN starts_with(x, '[') THEN 'ARRAY' "
    "WHEN regexp_full_match(x, '-?[0-9]+') THEN CASE WHEN TRY_CAST(x AS BIGINT) IS NOT NULL "
    "THEN 'BIGINT' WHEN TRY_CAST(x AS DECIMAL(20, 0)) BETWEEN 0 AND 18446744073709551615 "
    "THEN 'UBIGINT' "
    "ELSE 'DOUBLE' END WHEN x IS NOT NULL THEN 'DOUBLE' END"
)


def _json_type(value: exp.Expr) -> exp.Expr:
    template = sqlglot.parse_one(_JSON_TYPE, read=_DuckDB)
    return template.transform(
        lambda n: value.copy() if isinstance(n, exp.Column) and n.name == "x" else n
    )


def _full_time(text: exp.Expr) -> exp.Expr:
    """A timestamp with an offset as Spark's cast reads it: Spark takes `20:00:00Z` and
    `+08:00`, not `20:00Z` nor `+08`; the seconds and the offset's minutes are added."""
    seconds = _call(
        "regexp_replace",
        text,
        exp.Literal.string("^([0-9-]{10}[T ][0-9]{2}:[0-9]{2})(?![0-9:])"),
        exp.Literal.string("$1:00"),
    )
    return _call(
        "regexp_replace",
        seconds,
        exp.Literal.string("([+-][0-9]{2})$"),
        exp.Literal.string("$1:00"),
    )


def _row_number(node: exp.Expr) -> exp.Expr:
    """DuckDB's `rowid` of a stored table: the `__row` column every Spark table has."""
    if isinstance(node, exp.Column) and node.name.lower() == "rowid":
        return exp.column("__row", table=node.table or None)
    return node


def _rewrite(node: exp.Expr) -> exp.Expr:
    """One node's DuckDB construct as Spark needs it (see the module docstring)."""
    name = node.name.lower() if isinstance(node, exp.Anonymous) else ""
    args = node.expressions if isinstance(node, exp.Anonymous) else []
    if isinstance(node, exp.RegexpFullMatch) or name == "regexp_full_match":
        value, pattern = (node.this, node.expression) if not args else (args[0], args[1])
        anchored = exp.Literal.string(f"^(?:{pattern.name})$")
        return exp.RegexpLike(this=value, expression=anchored)
    if name == "isfinite":
        return _finite(args[0])
    if name == "timezone" and len(args) == 2:
        return _call("from_utc_timestamp", args[1].transform(_rewrite), args[0])
    if isinstance(node, exp.Bracket) and isinstance(node.this, exp.Array):
        (index,) = node.expressions  # 1-based, as written (see _DuckDB), as element_at counts
        return _call("element_at", node.this, index)
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.UBIGINT:
        inner = node.this.unnest() if isinstance(node.this, exp.Paren) else node.this
        if isinstance(inner, exp.DPipe) and inner.this.name == "0x":
            digits = _call("conv", inner.expression, exp.Literal.number(16), exp.Literal.number(10))
            return exp.cast(digits, exp.DataType.build("bigint"))
        return exp.cast(node.this.transform(_rewrite), exp.DataType.build("decimal(20, 0)"))
    if isinstance(node, exp.TryCast) and node.to.this == exp.DataType.Type.TIMESTAMPTZ:
        node.set("this", _full_time(node.this))
        return node
    if isinstance(node, exp.JSONType) or name == "json_type":
        return _json_type(node.this if not args else args[0]).transform(_rewrite)
    if isinstance(node, exp.Sub) and _is_date(node.expression):
        return exp.DateDiff(this=node.this, expression=node.expression)
    if isinstance(node, exp.DateDiff) and node.unit and node.unit.name.lower() == "day":
        return _call("datediff", node.this, node.expression)
    if isinstance(node, exp.Trunc) or name == "trunc":
        value = node.this if not args else args[0]
        return exp.paren(
            exp.Sub(
                this=value.copy(),
                expression=exp.Mod(this=value.copy(), expression=exp.Literal.number(1)),
            )
        )
    return node


def _zip_unnests(node: exp.Expr) -> exp.Expr:
    """Several `unnest(list) AS name` side by side in one select: DuckDB walks the lists in step
    (row i of each together, NULL past a shorter one's end), Spark takes one generator a select.
    `inline(arrays_zip(a, b)) AS (x, y)` is the same walk in one generator."""
    if not isinstance(node, exp.Select):
        return node
    projections = node.expressions
    where = [
        i
        for i, p in enumerate(projections)
        if isinstance(p, exp.Alias) and isinstance(p.this, (exp.Explode, exp.Unnest))
    ]
    if len(where) < 2 or where != list(range(where[0], where[0] + len(where))):
        return node  # one unnest, or not side by side: as sqlglot writes it
    lists = [projections[i].this.this for i in where]
    names = [exp.to_identifier(projections[i].alias) for i in where]
    zipped = exp.Aliases(this=_call("inline", _call("arrays_zip", *lists)), expressions=names)
    node.set("expressions", [*projections[: where[0]], zipped, *projections[where[-1] + 1 :]])
    return node


def render(tree: exp.Expr, schema: Schema | None = None) -> str:
    """A parsed statement (a query) as Spark SQL. `schema`: the columns of the tables it reads,
    for expanding `* EXCLUDE` / `* REPLACE` and the aliases a select refers to within itself
    (DuckDB's lateral aliases, which Spark does not take inside a window)."""
    tree = tree.copy()
    tree = tree.transform(_row_number)
    if schema is not None:
        tree = qualify(
            tree,
            schema={k: dict(v) for k, v in schema.items()},
            dialect=_DuckDB,
            validate_qualify_columns=False,
            quote_identifiers=True,
            identify=True,
        )
        for select in tree.find_all(exp.Select):  # `c.rowid AS __row, c.*`: __row once
            seen: set[str] = set()
            kept = []
            for column in select.expressions:
                if column.alias_or_name not in seen or not column.alias_or_name:
                    kept.append(column)
                seen.add(column.alias_or_name)
            select.set("expressions", kept)
    tree = tree.transform(_zip_unnests).transform(_rewrite)
    return tree.sql(dialect="spark")


def to_spark(sql: str, schema: Schema | None = None) -> str:
    """The engine's DuckDB SQL as Spark SQL: the one rendering function."""
    return render(parse(sql), schema)
