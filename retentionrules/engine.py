"""Running the engine: check the rules, load the data, derive, plan, write. Returns data.

>>> from retentionrules.engine import run_plan
>>> from retentionrules.loader import Inputs
>>> result = run_plan("examples/rules", Inputs("examples/customers.csv"), "2026-11-22")
>>> result.plan.counts

The functions here are the Python API the command line is a thin layer over: paths may be
text or Paths, the as-of date a date or ISO text; anything else is a UsageError that says so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import re
import tempfile
import threading
import urllib.parse
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import duckdb

from . import ir
from .api import Report, check_paths, config_for_data, rule_files
from .ast import Span
from .config import BLANKS, Config, find_config, shown_path
from .derive import (
    create_derived,
    customer_fields,
    distribution,
    purchases_known,
    scores_sql,
)
from .derive import release as release_derived
from .errors import DataError, RuleErrors, UsageError
from .history import ledger_history
from .interpreter import evaluate
from .ir import bought_column, units_bought_column
from .loader import (
    ORDER_FIELDS,
    TABLE_PREFIX,
    Inputs,
    LoadStats,
    Resources,
    connect,
    load,
    rejects_sql,
)
from .loader import release as release_inputs
from .output import Outputs, digest_file, digest_text
from .planner import (
    IN_PLAN,
    Outcome,
    Plan,
    build_plan,
    outcomes,
    plan_rows_sql,
    suppressed_sql,
)
from .policies import SEND, Reason
from .timeutil import MAX_DATE, MIN_DATE, shift
from .types import ACTIVITY_FIELDS
from .words import counted

PathLike: TypeAlias = "str | os.PathLike[str]"  # a path from Python: text or a Path
RulePaths: TypeAlias = "Sequence[PathLike] | PathLike"  # rule files and folders, or one
AsOf: TypeAlias = "dt.date | str | None"  # a date, or ISO text; None: today in the shop's zone

# 2: the header carries the plan's sha256 and is written last; 3: and the configuration
FORMAT_VERSION = 3
_NO_REJECTS = "SELECT NULL AS file, NULL AS row, NULL AS reason, NULL AS record LIMIT 0"


@dataclass
class PlanResult:
    plan: Plan
    stats: LoadStats
    meta: dict[str, Any]
    report: Report
    written: list[Path] = field(default_factory=list)


def today(config: Config) -> dt.date:
    """Today in the configured time zone: the default as-of date."""
    return dt.datetime.now(zoneinfo.ZoneInfo(config.timezone)).date()


def _as_of(given: AsOf, config: Config) -> dt.date:
    """The as-of date: given (a date, a datetime's date, or ISO text such as "2026-11-22"), or
    today; inside the range calendar arithmetic is defined for."""
    if isinstance(given, str):
        try:  # only YYYY-MM-DD, as --as-of: Python 3.11 would also take 20261122 and 2026-W47
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", given.strip()):
                raise ValueError(given)
            given = dt.date.fromisoformat(given.strip())
        except ValueError:
            raise UsageError(f"as-of date {given!r}: give a date as YYYY-MM-DD") from None
    elif isinstance(given, dt.datetime):  # a moment: its date in the shop's time zone
        if given.tzinfo is not None:
            given = given.astimezone(zoneinfo.ZoneInfo(config.timezone))
        given = given.date()
    elif given is not None and not isinstance(given, dt.date):
        raise UsageError(f"as-of date: a date or YYYY-MM-DD text, not {type(given).__name__}")
    as_of = given or today(config)
    if not MIN_DATE <= as_of <= MAX_DATE:
        raise UsageError(
            f"as-of date {as_of} is outside the supported range {MIN_DATE} to {MAX_DATE}"
        )
    return as_of


def _path(value: PathLike | None, what: str) -> Path | None:
    """A path given to the API as text or a Path; None stays None."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        return Path(value)
    raise UsageError(f"{what}: a path, not {type(value).__name__}")


def _rule_paths(rule_paths: RulePaths) -> list[str | Path]:
    """Rule files and folders; one path on its own is one path, not a sequence of letters."""
    given: object = rule_paths  # from Python, anything may come: checked, not trusted
    if isinstance(given, (str, os.PathLike)):
        return [Path(given)]
    if isinstance(given, bytes) or not isinstance(given, Sequence):
        raise UsageError(f"rule paths: a path or a list of paths, not {type(given).__name__}")
    paths: list[str | Path] = []
    for path in given:
        if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
            raise UsageError(f"rule path: a path, not {type(path).__name__}")
        paths.append(Path(path))
    return paths


def _ids(customers: Sequence[str] | str) -> list[str]:
    """Customer ids to explain: one id on its own is one id, not a list of letters; a whole
    number is the id it spells (ids are text, and `3` in an export is the id "3")."""
    given: Sequence[object] = [customers] if isinstance(customers, (str, int)) else customers
    if not isinstance(given, Sequence) or isinstance(given, bytes):
        raise UsageError(f"customers: an id or a list of ids, not {type(customers).__name__}")
    ids = []
    for value in given:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise UsageError(f"customer id: text such as 'C1', not {type(value).__name__}")
        ids.append(value)
    return ids


def _inputs(inputs: Inputs | PathLike) -> Inputs:
    """The files to read: an Inputs, or the customer export's path alone."""
    if isinstance(inputs, Inputs):
        return inputs
    if isinstance(inputs, (str, os.PathLike)) and not isinstance(inputs, bytes):
        return Inputs(Path(inputs))
    raise UsageError(
        f"inputs: Inputs(customers, orders, contacts) or the customer export's path, "
        f"not {type(inputs).__name__}"
    )


def checked_rules(rule_paths: Sequence[str | Path], config_path: Path | None) -> Report:
    """The rules of one project, checked; RuleErrors if any has an error. The rule set carries
    the configuration it was checked against, and everything after this point uses that one."""
    report = check_paths(rule_paths, config_path)
    if not report.ok:
        raise RuleErrors(report)
    return report


class _Digest(threading.Thread):
    """Hash the input files while DuckDB works (hashing releases the GIL)."""

    def __init__(self, inputs: Inputs) -> None:
        super().__init__(daemon=True)
        self.inputs = inputs
        self.parts: dict[str, str] = {}  # "customers", "orders", ... -> sha256
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            for role in ("customers", "orders", "contacts", "products"):
                path = getattr(self.inputs, role)
                if path is not None and (
                    str(path).startswith(TABLE_PREFIX) or role in self.inputs.urls
                ):
                    self.parts[role] = ""  # a table's or a URL's: its rows', once read (`tables`)
                elif path is not None:
                    self.parts[role] = digest_file(path)
        except OSError as error:
            self.error = error

    def tables(self, digests: Mapping[str, str]) -> None:
        """The digests of the catalogue tables and URLs among the inputs, computed where their
        rows are (`spark.rows_digest`), in their places."""
        for role in self.parts:
            where = str(self.inputs.where(role))
            if where.startswith(TABLE_PREFIX) or role in self.inputs.urls:
                self.parts[role] = digests[where]

    @property
    def value(self) -> str:
        """All the input files as one digest (the sha256 of their digests, in order)."""
        return digest_text(*self.parts.values()) if self.parts else ""


def needed_fields(ruleset: ir.RuleSet, inputs: Inputs) -> dict[str, str | None]:
    """The declared customer fields the export must have as columns: the id, what the rules read
    (through their segments and derived fields), the consent fields of the channels they use,
    the household when a rule is once per household, and what scoring reads (unless an orders
    export gives it). Any other declared field may be absent: it is missing for every customer,
    so an orders-only shop need not invent empty columns."""
    config = ruleset.config
    schema = config.customers
    readable = set(schema.fields) | set(ACTIVITY_FIELDS)
    used = ir.fields_used(rule.condition for rule in ruleset.rules)
    needed = {schema.id, *(used & readable)}
    if "days_to_birthday" in used and schema.birthday:
        needed.add(schema.birthday)
    reaches = False  # some rule's action goes through a channel: the quiet period applies
    for rule in ruleset.rules:
        channel = config.channels.get(rule.action.channel or "")
        reaches = reaches or channel is not None
        if channel is not None and channel.requires_consent and channel.consent:
            needed.add(channel.consent)
        if rule.once_per_household and schema.household:
            needed.add(schema.household)
    if inputs.orders is None:  # scoring reads them, and tier, stage and every score with it
        needed |= set(ORDER_FIELDS)
    why = {}
    if not inputs.has_contacts and reaches and config.contacts.quiet_period:
        # without a contact history, the export's last_contacted is the quiet period's only clue
        why["last_contacted"] = (
            f"the quiet period ({config.contacts.quiet_period}) reads it when no contact "
            "history is given (--contacts)"
        )
    elif not inputs.has_contacts and "days_since_last_contact" in used:
        why["last_contacted"] = "days_since_last_contact is computed from it"
    return {**dict.fromkeys(needed), **why}


@dataclass
class Prepared:
    """Rules checked, data loaded and validated, fields derived: ready to plan or explain."""

    con: Any  # a DuckDB connection, or a spark.SparkConnection (the same interface)
    report: Report
    stats: LoadStats
    as_of: dt.date
    inputs: Inputs  # as loaded: with what the ledger gave, if it did
    ledger: str | None = None  # the ledger read as contact history
    ledger_digest: str = ""  # of what it gave: a plan id changes when the ledger does


def _resources(resources: Resources | None) -> Resources | None:
    """The API's check of `resources` (the CLI builds it from --memory-limit and --temp-dir)."""
    if resources is not None and not isinstance(resources, Resources):
        raise UsageError(f"resources: expected Resources, not {type(resources).__name__}")
    return resources


def prepare(
    rule_paths: RulePaths,
    inputs: Inputs | PathLike,
    as_of: AsOf,
    config_path: PathLike | None = None,
    rejects: PathLike | None = None,
    use_ledger: bool = True,
    resources: Resources | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> Prepared:
    """Check the rules, load and validate the data (with the project's contact ledger, when it
    has one, as contact history), derive every field. `engine`: "duckdb" (in this process) or
    "spark" (a Spark session, `spark_master` or the active one: docs/engine.md)."""
    inputs = _inputs(inputs)
    report = checked_rules(_rule_paths(rule_paths), _path(config_path, "config_path"))
    rejects = _path(rejects, "rejects")
    ruleset = report.ruleset
    config = ruleset.config
    as_of = _as_of(as_of, config)
    con = _connection(engine, spark_master, resources, inputs, rejects)
    with tempfile.TemporaryDirectory(prefix="retentionrules-ledger-") as folder:
        history = ledger_history(ruleset, as_of, Path(folder)) if use_ledger else None
        ledger, digest = None, ""
        if history is not None:
            file, _count, ledger = history
            inputs = dataclasses.replace(inputs, ledger=file)
            digest = digest_file(file)
        stats = _load(con, config, inputs, as_of, rejects, needed_fields(ruleset, inputs))
    orders, contacts = inputs.orders is not None, inputs.has_contacts
    conditions = [rule.condition for rule in ruleset.rules]
    categories, units = ir.categories_used(conditions), ir.units_categories_used(conditions)
    create_derived(con, config, as_of, orders, contacts, stats.order_lines, categories, units)
    return Prepared(con, report, stats, as_of, inputs, ledger, digest)


ENGINES = ("duckdb", "spark")


# The master URLs Spark takes (checked before a JVM starts, which takes seconds to fail).
_SPARK_MASTER = re.compile(
    r"local(\[([1-9]\d*|\*)(,[1-9]\d*)?\])?|local-cluster\[\d+,\d+,\d+\]|yarn"
    r"|(spark|mesos)://\S+|k8s://\S+"
)


def _connection(
    engine: str,
    spark_master: str | None,
    resources: Resources | None,
    inputs: Inputs,
    rejects: Path | None,
) -> Any:
    """A DuckDB connection within `resources`, or a Spark session behind the same interface
    (`spark.py`), whose resources are the cluster's, once what Spark cannot do is ruled out."""
    if engine not in ENGINES:
        raise UsageError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    resources = _resources(resources)
    if engine == "duckdb":
        if spark_master is not None:
            raise UsageError("--spark-master goes with --engine spark")
        for role, url in inputs.urls.items():
            raise UsageError(
                f"--{role} {url}: DuckDB reads files on this machine; a URL is read by "
                "--engine spark"
            )
        for role in ("customers", "orders", "contacts", "products"):
            if str(getattr(inputs, role)).startswith(TABLE_PREFIX):
                raise UsageError(
                    f"--{role} {getattr(inputs, role)}: a table of the Spark catalogue is read "
                    "by --engine spark"
                )
        return connect(resources)
    if resources is not None and resources != Resources():
        raise UsageError(
            "--memory-limit and --temp-dir go with --engine duckdb: Spark's memory is the "
            "cluster's (spark.executor.memory, spark.local.dir)"
        )
    if spark_master is not None and not _SPARK_MASTER.fullmatch(spark_master):
        raise UsageError(
            f"--spark-master {spark_master!r}: expected local, local[N], local[*], "
            "spark://HOST:PORT, yarn, k8s://URL or mesos://HOST:PORT"
        )
    try:
        from .spark import SparkConnection, refusals, session
    except ImportError:  # sqlglot, which the spark extra installs with PySpark
        raise UsageError(
            "--engine spark needs PySpark and sqlglot: pip install 'retentionrules[spark]'"
        ) from None
    refusals(inputs, rejects)
    return SparkConnection(session(spark_master))


def _load(
    con: Any,
    config: Config,
    inputs: Inputs,
    as_of: dt.date,
    rejects: Path | None,
    needed: dict[str, str | None] | None = None,
) -> LoadStats:
    """`loader.load`, or its Spark counterpart for a Spark connection."""
    if isinstance(con, duckdb.DuckDBPyConnection):
        return load(con, config, inputs, as_of, rejects, needed)
    from . import spark

    return spark.load(con, config, inputs, as_of, rejects, needed)


def _written_from(con: Any, queries: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """Where the outputs are written from: DuckDB itself, or, for Spark, a local DuckDB holding
    each output's rows streamed from Spark in their order (the same writer then writes them)."""
    if isinstance(con, duckdb.DuckDBPyConnection):
        return con, queries
    from .spark import fetch

    local = connect()
    written = {}
    for n, (role, query) in enumerate(queries.items()):
        fetch(con, query, local, f"__output{n}")
        written[role] = f"SELECT * FROM __output{n}"
    return local, written


def run_plan(
    rule_paths: RulePaths,
    inputs: Inputs | PathLike,
    as_of: AsOf = None,
    *,
    out: PathLike | None = None,
    rejects: PathLike | None = None,
    suppressed: PathLike | None = None,
    config_path: PathLike | None = None,
    use_ledger: bool = True,
    resources: Resources | None = None,
    keep_derived: bool = False,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> PlanResult:
    """Plan, and write the plan, its header, the suppressed pairs and the rejects when asked.

    Nothing is written unless every step before succeeded. Before writing, the exports and the
    derived fields are released (the plan's own tables on `result.plan.con` hold all it
    writes): at a million customers the peak is a third lower. `keep_derived` keeps them
    readable after, for a notebook or a test that compares the plan with the fields.
    """
    rule_paths, inputs = _rule_paths(rule_paths), _inputs(inputs)
    out, rejects = _path(out, "out"), _path(rejects, "rejects")
    suppressed, config_path = _path(suppressed, "suppressed"), _path(config_path, "config_path")
    outputs = Outputs(
        _named_inputs(rule_paths, inputs, [config_path]),
        {"--out": out, "--suppressed": suppressed, "--rejects": rejects},
        plan="--out",
        json_text={"--rejects": ["record"]},
    )
    digest = _Digest(inputs)
    digest.start()
    ready = prepare(
        rule_paths, inputs, as_of, config_path, rejects, use_ledger, resources, engine,
        spark_master,
    )
    con, report, stats, as_of = ready.con, ready.report, ready.stats, ready.as_of
    plan = build_plan(con, report.ruleset, as_of, ready.inputs)
    if ready.ledger is not None:
        plan.notes.append(
            f"contact history: {counted(stats.ledger_contacts, 'contact')} from the ledger "
            f"{shown_path(ready.ledger)}"
        )
    if stats.unknown_history or stats.unreadable_contacts:
        plan.notes.append(_unknown_history_note(stats))
    if stats.unreadable_customers:
        plan.notes.append(
            f"{counted(stats.unreadable_customers, 'customer row')} set aside could not be read "
            "far enough to tell whose they were: if one is another row's customer (a withdrawn "
            "consent, say), that customer is planned from the other row; fix them"
        )
    if stats.future_contacts:  # not an error, but never silent
        plan.notes.append(
            f"{counted(stats.future_contacts, 'contact')} dated after the as-of date were left out"
        )
    if stats.unconfigured_channels:
        plan.notes.append(_unconfigured_channels_note(stats.unconfigured_channels))
    conditions = [rule.condition for rule in report.ruleset.rules]
    bought = [bought_column(c) for c in ir.categories_used(conditions)]
    bought += [units_bought_column(c) for c in ir.units_categories_used(conditions)]
    if bought and not purchases_known(report.ruleset.config, stats.order_lines):
        plan.notes.append(_no_purchases_note(bought, ready.inputs))
    digest.join()
    if digest.error is not None:
        raise DataError(f"cannot read input: {digest.error}")
    digest.tables(getattr(con, "digests", {}))
    if ready.ledger_digest:
        digest.parts["ledger"] = ready.ledger_digest
    meta = _meta(report, digest, as_of, plan, stats)
    plan.plan_id = meta["plan_id"]
    if out is not None:  # what `retentionrules report` shows, while the plan's tables are here
        from .report import record

        meta["report"] = record(plan)
    result = PlanResult(plan, stats, meta, report)
    _finite_costs(plan)
    if outputs and not keep_derived and engine == "duckdb":  # writing then reuses their memory
        release_derived(con)
        release_inputs(con)
    if outputs:
        queries = {
            "--out": plan_rows_sql(plan, meta["plan_id"]),
            "--suppressed": suppressed_sql(plan),
            "--rejects": rejects_sql(con) or _NO_REJECTS,
        }
        if not isinstance(con, duckdb.DuckDBPyConnection):  # the plan's rows from `planned`
            queries["--out"] = f"SELECT * FROM planned WHERE {IN_PLAN} ORDER BY input_row"
        queries = {role: queries[role] for role in outputs.targets}
        writer, queries = _written_from(con, queries)
        if writer is not con and "--out" in queries:  # Spark: the plan rows from its winners
            writer.execute(f"CREATE VIEW planned AS {queries['--out']}")
            queries["--out"] = plan_rows_sql(plan, meta["plan_id"])
        header, result.written = outputs.write(writer, queries, meta)
        result.meta = header or meta
    return result


def _unknown_history_note(stats: LoadStats) -> str:
    """Rows of the contact history set aside with --rejects: whose caps cannot be judged."""
    notes = []
    if stats.unknown_history:
        notes.append(
            f"{counted(stats.unknown_history, 'customer')} held back from every message and call "
            "(reason unknown_history): rows of their contact history were set aside, so their "
            "caps and quiet period cannot be judged"
        )
    if stats.unreadable_contacts:
        notes.append(
            f"{counted(stats.unreadable_contacts, 'contact row')} could not be read far enough "
            "to tell whose they were: fix them, or those customers may be contacted too soon"
        )
    return "; ".join(notes)


def _no_purchases_note(columns: list[str], inputs: Inputs) -> str:
    """Rules test purchases by category, and no purchase's category can be known."""
    why = (
        "no orders export was given (--orders)"
        if inputs.orders is None
        else "the orders export has no category (name `category` or `sku` under [orders])"
    )
    tests = ", ".join(f"`{column}`" for column in columns)
    return f"{tests}: no purchase in a category is known ({why}), so no customer has bought any"


def _unconfigured_channels_note(channels: dict[str, int]) -> str:
    """Contacts on channels the configuration does not know: never silent, since a channel
    written two ways (`text` and `sms`) would leave that channel's cap uncounted."""
    shown = ", ".join(f"{name or '(blank)'}: {count}" for name, count in list(channels.items())[:5])
    more = f" and {len(channels) - 5} more" if len(channels) > 5 else ""
    return (
        f"{sum(channels.values())} contacts on channels not configured under [channels] "
        f"({shown}{more}) count toward the quiet period and rule caps, not toward any channel's "
        "cap; if one is a configured channel under another name, fix the contact history"
    )


def _local(inputs: Inputs, role: str) -> Path | None:
    """An input as a file of this machine, for the outputs' aliasing checks: a `file:` URL is
    its path (`file:///data/c.csv`, `file:/data/c.csv`); another URL is no file here."""
    where = inputs.where(role) if getattr(inputs, role) is not None else None
    if not isinstance(where, str):
        return where
    parsed = urllib.parse.urlparse(where)
    if parsed.scheme.lower() == "file" and parsed.netloc in ("", "localhost"):
        return Path(urllib.parse.unquote(parsed.path))
    return None


def _named_inputs(
    rule_paths: Sequence[str | Path], inputs: Inputs, configs: list[Path | None]
) -> list[tuple[str, Path | None]]:
    """Every file a run reads, with its role: no output may be one of them."""
    files = rule_files(rule_paths)
    configs = [*configs, *(find_config(f) for f in files)]
    return [
        *((f"--{role}", _local(inputs, role)) for role in ("customers", "orders", "contacts")),
        ("--products", _local(inputs, "products")),
        *(("rule file", f) for f in files),
        *(("configuration", c) for c in dict.fromkeys(configs)),
    ]


def _finite_costs(plan: Plan) -> None:
    """A rule's total cost can overflow with huge per-message costs: stop before writing a plan
    or printing a summary that would carry Infinity."""
    for counts in plan.counts:
        if not math.isfinite(counts.cost):
            raise DataError(
                f"rule {counts.rule}: the estimated cost is {counts.cost} (too large to hold); "
                "nothing was written. Check the costs in the configuration"
            )


def _meta(
    report: Report, inputs: _Digest, as_of: dt.date, plan: Plan, stats: LoadStats
) -> dict[str, Any]:
    """The plan's header. It carries the configuration the rules were checked against, so that
    `approve` and `send` use exactly that one (consent fields, channels, windows, the ledger)."""
    rules_digest = digest_text(*(report.sources[p] for p in sorted(report.sources)))
    config_digest = digest_text(plan.config.model_dump_json())
    plan_id = digest_text(rules_digest, config_digest, inputs.value, as_of.isoformat())[:16]
    return {
        "format_version": FORMAT_VERSION,
        "plan_id": plan_id,
        "as_of": as_of.isoformat(),
        "rules_digest": rules_digest,
        "config_digest": config_digest,
        "input_digest": inputs.value,
        "input_digests": inputs.parts,
        "config": plan.config.model_dump(mode="json"),
        "config_source": plan.config.source,
        "actions": plan.actions,
        "customers": stats.customers,
        "rejected_rows": stats.total_rejected,
    }


# ---------------------------------------------------------------- explain


@dataclass(frozen=True)
class TestTrace:
    """One top-level test of a rule's condition: its source text, its value for the customer,
    and the fields it reads with the customer's values (a segment's, through the segment)."""

    text: str
    value: Any
    reads: dict[str, Any] = field(default_factory=dict)


@dataclass
class RuleTrace:
    rule: str
    conditions: list[TestTrace]  # each top-level test, once, in source order
    matched: bool
    outcome: str  # planned, holdout, not matched, or the reason it was removed and what caused it


@dataclass
class Explanation:
    customer: str
    fields: dict[str, Any]
    rules: list[RuleTrace]


def explain(
    rule_paths: RulePaths,
    inputs: Inputs | PathLike,
    customers: Sequence[str] | str,
    as_of: AsOf = None,
    config_path: PathLike | None = None,
    use_ledger: bool = True,
    resources: Resources | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> list[Explanation]:
    """Why each customer got, or did not get, each rule's action (the plan runs over everyone:
    household and volume limits depend on the other customers)."""
    inputs = _inputs(inputs)
    customers = _ids(customers)
    ready = prepare(
        rule_paths, inputs, as_of, config_path, None, use_ledger, resources, engine, spark_master
    )
    con, report, as_of = ready.con, ready.report, ready.as_of
    plan = build_plan(con, report.ruleset, as_of, ready.inputs)
    # Contact details (a channel's address field) are for `send` alone: never shown here.
    details = {c.address for c in plan.config.channels.values() if c.address}
    details.discard(plan.config.customers.id)
    found = []
    for given in customers:
        customer = given.strip(BLANKS)  # ids are compared as the export's are (docs/engine.md)
        fields = customer_fields(con, plan.config, customer)
        if fields is None:
            raise UsageError(f"customer {given!r} is not in {inputs.customers}")
        traces = rule_traces(plan, report, fields, customer, as_of)
        shown = {k: v for k, v in fields.items() if k not in details}
        found.append(Explanation(customer, shown, traces))
    return found


def rule_traces(
    plan: Plan, report: Report, fields: dict[str, Any], customer: str, as_of: dt.date
) -> list[RuleTrace]:
    """Rule by rule: the value of each top-level test (reference interpreter) and what the plan
    did with it; a removal by a cap, the quiet period or the household says who or what caused
    it."""
    traces = []
    for i, (rule, outcome) in enumerate(
        zip(plan.ruleset.rules, outcomes(plan, customer), strict=True)
    ):
        matched = bool(evaluate(rule.condition, fields, as_of))
        conditions = _conditions(rule, fields, report, as_of)
        said = describe(outcome)
        cause = _cause(plan, rule, i, outcome, fields, customer)
        outcome_text = f"{said} ({cause})" if cause else said
        traces.append(RuleTrace(rule.name, conditions, matched, outcome_text))
    return traces


def describe(outcome: Outcome) -> str:
    """An outcome in words, as explain and failing rule tests print it."""
    if outcome.reason is Reason.HOLDOUT:
        return "planned as holdout (not sent)"
    if outcome.planned:
        return "planned"
    if outcome.reason is Reason.PRIORITY:
        return f"removed: priority (lost to {outcome.winner})"
    if outcome.reason is not None:
        return f"removed: {outcome.reason.value}"
    return "not matched"


_SHOWN_CONTACTS = 3  # a cap reached by more contacts names the latest few and counts the rest


def _cause(
    plan: Plan, rule: ir.Rule, index: int, outcome: Outcome, fields: dict[str, Any], customer: str
) -> str:
    """What made a removal: the household member who was kept instead, or the contacts that
    fill a cap or fall in the quiet period ("" for other outcomes). Read from the plan's tables
    and the contact history, for one customer: explain and failing tests only."""
    config = plan.config
    reason = outcome.reason
    if reason is Reason.HOUSEHOLD:
        column = config.customers.household
        household = fields.get(column) if column else None
        kept = plan.con.execute(
            "SELECT p.customer_id, p.status FROM planned p JOIN flags f USING (customer_id) "
            "WHERE p.idx = ? AND f.household = ? AND p.status <> ? LIMIT 1",
            [index, household, Reason.HOUSEHOLD.value],
        ).fetchone()
        if kept is None:
            return f"household {household}"
        removed = kept[1] not in (SEND, Reason.HOLDOUT.value)
        later = f"; it was then removed: {kept[1]}" if removed else ""
        return (
            f"household {household} keeps {kept[0]}: highest rfm_score, then lowest id{later}"
        )
    if reason is Reason.QUIET_PERIOD:
        quiet = config.contacts.quiet_period
        assert quiet is not None  # the planner removes for it only when there is one
        since = shift(plan.as_of, quiet, -1)
        found = _contacts(plan, customer, "sent_at >= ?", [since])
        found = found or f"last contacted {_shown(fields.get('last_contacted'))}"
        return f"{found}, within the quiet period of {quiet}"
    if reason is Reason.CHANNEL_CAP:
        channel = config.channels[rule.action.channel or ""]
        assert channel.cap is not None
        since = shift(plan.as_of, channel.cap.per, -1)
        name = rule.action.channel
        found = _contacts(plan, customer, "channel = lower(?) AND sent_at >= ?", [name, since])
        return f"{name} allows {channel.cap.count} per {channel.cap.per}: {found}"
    if reason is Reason.RULE_CAP:
        assert rule.cap is not None
        since = shift(plan.as_of, rule.cap[1], -1)
        found = _contacts(plan, customer, "rule = ? AND sent_at >= ?", [rule.name, since])
        return f"the rule allows {rule.cap[0]} per {rule.cap[1]}: {found}"
    return ""


def _contacts(plan: Plan, customer: str, where: str, values: list[Any]) -> str:
    """The customer's contacts up to the as-of date that match `where`, latest first, in words:
    `sms 2026-11-20 (winback_gold), ...`; "" when there is no contact history."""
    try:
        rows = plan.con.execute(
            f"SELECT channel, sent_at, rule FROM contacts WHERE customer_id = ? AND {where} "
            "AND sent_at <= ? ORDER BY sent_at DESC, channel, rule",
            [customer, *values, plan.as_of],
        ).fetchall()
    except duckdb.CatalogException:  # no contact history was loaded
        return ""
    shown = [
        f"contacted {_shown(sent)} by {channel or '(no channel)'}"
        + (f" for {rule}" if rule else "")
        for channel, sent, rule in rows[:_SHOWN_CONTACTS]
    ]
    more = len(rows) - _SHOWN_CONTACTS
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _shown(value: Any) -> str:
    """A field's value as a trace shows it: dates as YYYY-MM-DD, whole numbers without `.0`,
    truth values as true/false, nothing as `missing`."""
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def shown_reads(reads: dict[str, Any]) -> str:
    """`(stage: silent, tier: G)`: the values a test read, for a trace's line."""
    if not reads:
        return ""
    return "(" + ", ".join(f"{k}: {_shown(v)}" for k, v in reads.items()) + ")"


def test_line(test: TestTrace) -> str:
    """`false  stage = sleeping  (stage: silent)`: a test's value, its text, what it read."""
    reads = shown_reads(test.reads)
    return f"{'true ' if test.value else 'false'}  {test.text}" + (f"  {reads}" if reads else "")


def _conditions(
    rule: ir.Rule, fields: dict[str, Any], report: Report, as_of: dt.date
) -> list[TestTrace]:
    """Each top-level test once. The checker lowers one test to several (`x within 30 days` is
    two comparisons, from one span of source): operands from the same span are one test."""
    source = report.sources.get(rule.path, "")
    operands = rule.condition.operands if isinstance(rule.condition, ir.And) else (rule.condition,)
    groups: list[list[ir.Expr]] = []
    for operand in operands:
        if groups and operand.span.end_offset and _same(groups[-1][-1].span, operand.span):
            groups[-1].append(operand)
        else:
            groups.append([operand])
    tests = []
    for group in groups:
        test = group[0] if len(group) == 1 else ir.And(tuple(group), span=group[0].span)
        names = ir.fields_used([test])
        reads = {name: value for name, value in fields.items() if name in names}
        tests.append(TestTrace(_text(source, test.span), evaluate(test, fields, as_of), reads))
    return tests


def _same(a: Span, b: Span) -> bool:
    return (a.offset, a.end_offset) == (b.offset, b.end_offset)


def _text(source: str, span: Span) -> str:
    return " ".join(source[span.offset : span.end_offset].split()) if span.end_offset else "?"


# ---------------------------------------------------------------- score


@dataclass
class ScoreResult:
    stats: LoadStats
    distribution: list[tuple[str | None, str, int]]  # (tier, stage, customers)
    tiers: tuple[str, ...]
    config: str  # the configuration file used, or "the built-in defaults"


def score(
    inputs: Inputs | PathLike,
    as_of: AsOf = None,
    *,
    out: PathLike | None = None,
    config_path: PathLike | None = None,
    rejects: PathLike | None = None,
    resources: Resources | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> ScoreResult:
    """The derived-field table for every customer, and the tier x stage distribution."""
    inputs = _inputs(inputs)
    out, rejects = _path(out, "out"), _path(rejects, "rejects")
    config_path = _path(config_path, "config_path")
    config = config_for_data(config_path)
    configs = [config_path or find_config(Path.cwd())]
    outputs = Outputs(
        _named_inputs([], inputs, configs),
        {"--out": out, "--rejects": rejects},
        json_text={"--rejects": ["record"]},
    )
    as_of = _as_of(as_of, config)
    con = _connection(engine, spark_master, resources, inputs, rejects)
    stats = _load(con, config, inputs, as_of, rejects)
    orders, contacts = inputs.orders is not None, inputs.contacts is not None
    create_derived(con, config, as_of, orders, contacts, stats.order_lines)
    if outputs:
        queries = {"--out": scores_sql(config), "--rejects": rejects_sql(con) or _NO_REJECTS}
        writer, queries = _written_from(con, {r: queries[r] for r in outputs.targets})
        outputs.write(writer, queries)
    return ScoreResult(stats, distribution(con), config.tier_type().values, config.where())
