"""The `retentionrules` command: a thin Typer layer over `retentionrules.api`.

Exit codes: 0 ok, 1 findings (rule errors, files that need formatting), 2 usage or internal error,
130 after Ctrl-C and 143 after SIGTERM (see `interrupts`). Heavy modules are imported inside the
commands so that `--help` starts fast.
"""

from __future__ import annotations

from . import interrupts  # first: a Ctrl-C while the modules below load ends quietly

# isort: split
import copy
import datetime
import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:  # heavy modules load inside the commands, so that --help starts fast
    from rich.console import Console

    from .diagnostics import Diagnostic
    from .loader import Inputs

P = ParamSpec("P")
R = TypeVar("R")


# --format choices: Typer shows and checks the members of an Enum.
class Format(str, Enum):
    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


class Output(str, Enum):
    text = "text"
    json = "json"


class TestFormat(str, Enum):
    text = "text"
    json = "json"
    junit = "junit"
    github = "github"


class DiffFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"


app = typer.Typer(
    name="retentionrules",
    help="A rules engine for keeping customers: check, format and test retention rules, "
    "dry-run the action plan, explain it, and diff the audience of a rule change.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: starts faster, and reads the same in any terminal
)


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"retentionrules {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Options before the command (`retentionrules --version`). Being a callback, it also keeps
    the app a group of commands when `_lean` leaves it only one: without one, Typer would run
    that command with its name taken for an argument."""


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="retentionrules.toml to use (default: the nearest one "
        "above the first rule file, else the built-in defaults).",
        dir_okay=False,
    ),
]
PathsArgument = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Rule files, or folders searched for *.rules (default: the current folder)."
    ),
]


def _interrupted(error: BaseException) -> bool:
    """Whether `error` is DuckDB's report of a Ctrl-C (known by name: importing DuckDB to ask
    would slow every command's start)."""
    return type(error).__name__ == "InterruptException" or str(error) == "Query interrupted"


def _guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Map failures to exit codes with a message: bad rules or data 1, usage or internal 2; Ctrl-C
    130 and SIGTERM 143, once every cleanup ran."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with interrupts.command():
                return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BaseException as error:
            raise typer.Exit(_report(error)) from None

    return run


def _report(error: BaseException) -> int:
    """Say what stopped a command, for people; return the exit code. After Ctrl-C or SIGTERM,
    whatever error the signal caused on its way (DuckDB's own "interrupted", an import cut in
    two) is the signal's."""
    from .errors import (
        ConfigProblems,
        DataError,
        OutputError,
        RuleErrors,
        UsageError,
        from_spark,
        spark_cause,
    )

    if isinstance(error, KeyboardInterrupt) or interrupts.pending() or _interrupted(error):
        message, code = interrupts.outcome()
        typer.echo(message, err=True)
        return code
    if isinstance(error, ConfigProblems):  # located like rule diagnostics: as they are
        typer.echo(str(error), err=True)
        typer.echo("retentionrules: the configuration has errors; nothing was run", err=True)
        return 2
    if isinstance(error, UsageError):
        typer.echo(f"retentionrules: {error}", err=True)
        return 2
    if isinstance(error, OutputError):
        typer.echo(f"retentionrules: cannot write: {error}", err=True)
        return 2
    if isinstance(error, DataError):
        typer.echo(f"retentionrules: bad data: {error}", err=True)
        return 1
    if isinstance(error, RuleErrors):
        from .render import render_text

        typer.echo(render_text(error.report.diagnostics, error.report.sources), err=True)
        typer.echo("retentionrules: the rules have errors; nothing was run", err=True)
        return 1
    if type(error).__name__ == "OutOfMemoryException":  # DuckDB's, known by name (see above)
        typer.echo(
            "retentionrules: out of memory: the run needs more than the engine may use; give "
            "it more with --memory-limit (default: 80% of the machine's memory), or free "
            f"some (DuckDB: {str(error).splitlines()[0]})",
            err=True,
        )
        return 2
    if from_spark(error):  # --engine spark's failures

        typer.echo(f"retentionrules: Spark stopped the run: {spark_cause(str(error))}", err=True)
        typer.echo(
            "for Spark's own log, set SPARK_CONF_DIR to a folder with a log4j2.properties; on "
            "one machine `--engine duckdb` (the default) runs the same plan",
            err=True,
        )
        return 2
    typer.echo(f"retentionrules: internal error: {type(error).__name__}: {error}", err=True)
    typer.echo("please report this with the command and input that caused it", err=True)
    return 2


@app.command(short_help="Check rule files: syntax, names, types, lints.")
@_guarded
def check(
    paths: PathsArgument = None,
    config: ConfigOption = None,
    output_format: Annotated[
        Format,
        typer.Option("--format", "-f", help="text for people; json, github or sarif for CI."),
    ] = Format.text,
    strict: Annotated[bool, typer.Option(help="Exit 1 on warnings too.")] = False,
    whole_project: Annotated[
        bool,
        typer.Option(
            "--project",
            help="Check the whole project of each path given (every rule file under the folder "
            "of its retentionrules.toml): for hooks that pass only the changed files.",
        ),
    ] = False,
) -> None:
    """Parse and type-check rule files against the customer schema; report every problem.

    Exit 0 when clean, 1 on errors (or on warnings with --strict), 2 on usage errors.
    """
    from .api import check_projects, project_folders
    from .diagnostics import Diagnostic
    from .render import render

    given = paths or [Path.cwd()]
    reports = check_projects(project_folders(given) if whole_project else given, config)
    sources = {path: text for report in reports for path, text in report.sources.items()}
    found = sorted((d for r in reports for d in r.diagnostics), key=Diagnostic.sort_key)
    text = render(found, sources, output_format.value)
    if text:
        typer.echo(text)
    errors = sum(d.is_error for d in found)
    if errors or (strict and len(found) > errors):
        raise typer.Exit(1)


@app.command(short_help="Rewrite rule files in the canonical layout.")
@_guarded
def fmt(
    paths: PathsArgument = None,
    check_only: Annotated[
        bool,
        typer.Option("--check", help="Change nothing; exit 1 and list files that would change."),
    ] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Show the changes instead of writing them.")
    ] = False,
) -> None:
    """Rewrite rule files into the canonical layout, keeping comments. Idempotent."""
    from .api import format_source, read_sources, rule_files
    from .errors import OutputError
    from .output import replace_text
    from .render import render_text

    files = rule_files(paths or [Path.cwd()])
    sources, problems = read_sources(files)
    changed, broken, unwritten = [], list(problems), 0
    for path, source in sources.items():
        formatted, errors = format_source(source, path)
        if formatted is None:
            broken.extend(errors)
            continue
        if formatted == source:
            continue
        changed.append(path)
        if diff:
            typer.echo(_unified_diff(source, formatted, path), nl=False)
        elif check_only:
            typer.echo(f"would reformat {path}")
        else:
            try:  # a file that cannot be rewritten stops only itself
                replace_text(Path(path), formatted, source.encode("utf-8"))
            except OutputError as error:
                typer.echo(f"retentionrules: cannot write: {error}", err=True)
                unwritten += 1
                continue
            typer.echo(f"reformatted {path}")
    if broken:
        typer.echo(render_text(broken, sources), err=True)
    if unwritten:
        raise typer.Exit(2)
    if broken or ((check_only or diff) and changed):
        raise typer.Exit(1)


def _unified_diff(before: str, after: str, path: str) -> str:
    """A patch `patch` and `git apply` take: lines cut where the parser cuts them (at `\n` only;
    not at the other line breaks `str.splitlines` knows, such as U+2028 in a comment), and a last
    line without a line end marked as such."""
    import difflib

    from .parser import source_lines

    lines = difflib.unified_diff(
        source_lines(before), source_lines(after), f"a/{path}", f"b/{path}"
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def _as_of(value: str | None) -> datetime.date | None:
    """The --as-of date: a date in [timeutil.MIN_DATE, timeutil.MAX_DATE], the range in which
    calendar arithmetic (windows, caps, anniversaries) stays inside every evaluator's calendar."""
    import re

    from .errors import UsageError
    from .timeutil import MAX_DATE, MIN_DATE

    if value is None:
        return None
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError(value)  # Python 3.11 would also take 20261122 and 2026-W47
        day = datetime.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--as-of {value!r} is not a date (YYYY-MM-DD)") from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise UsageError(f"--as-of {value} is outside the supported range {MIN_DATE} to {MAX_DATE}")
    return day


def _inputs(
    customers: str, orders: str | None, contacts: str | None, products: str | None = None
) -> Inputs:
    """The input files as given: text, so that a URL (`hdfs://...`) stays as written."""
    from .loader import Inputs

    return Inputs.given(customers, orders, contacts, products)


def _console() -> Console:
    """Tables at full width in pipes and CI logs, where no terminal says how wide to be. No markup:
    paths and data (`[/i]x.csv`, a city named `[bold]`) print as they are."""
    from rich.console import Console

    return Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 160)


def _emit(
    as_json: bool,
    result: Any,
    to_json: Callable[[Any], str],
    to_console: Callable[[Any, Console], None],
) -> None:
    """JSON on stdout for machines, or tables for people."""
    if as_json:
        typer.echo(to_json(result))
    else:
        to_console(result, _console())


def _working(message: str) -> AbstractContextManager[Any]:
    """A spinner on stderr for people at a terminal; nothing in pipes and CI logs (where rich is
    not even imported)."""
    import contextlib

    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


RulesOption = Annotated[
    list[Path],
    typer.Option("--rules", "-r", metavar="PATH", help="Rule files or folders (repeatable)."),
]
CustomersOption = Annotated[
    str,
    typer.Option(
        "--customers",
        help="Customer export: .csv, .jsonl or .parquet (with --engine spark also a URL Spark "
        "reads, as hdfs://... or s3a://..., or table:DB.NAME).",
    ),
]
OrdersOption = Annotated[
    str | None,
    typer.Option(
        "--orders",
        help="Orders export (customer_id, order_date, amount): order "
        "dates, counts and spend are derived from it.",
    ),
]
ProductsOption = Annotated[
    str | None,
    typer.Option(
        "--products",
        help="Product catalogue (sku, category, days_per_unit, warranty_days): with order "
        "lines, run-out and warranty dates are derived from it.",
    ),
]
ContactsOption = Annotated[
    str | None,
    typer.Option(
        "--contacts",
        help="Contact history (customer_id, channel, rule, sent_at) for frequency caps.",
    ),
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        metavar="DATE",
        help="The date the plan is for, YYYY-MM-DD (default: today in the configured time zone).",
    ),
]
RejectsOption = Annotated[
    Path | None,
    typer.Option(
        "--rejects",
        help="Write bad input rows here with their reason and go on "
        "(default: stop at the first bad row and write nothing).",
    ),
]
OutputFormatOption = Annotated[
    Output, typer.Option("--format", "-f", help="text for people, json for machines.")
]


MemoryLimitOption = Annotated[
    str | None,
    typer.Option(
        "--memory-limit",
        metavar="SIZE",
        help="Memory the engine may use, such as 4GB or 512MB (default: 80% of the "
        "machine's); what does not fit is spilled to disk, slower but complete.",
    ),
]
TempDirOption = Annotated[
    Path | None,
    typer.Option(
        "--temp-dir",
        metavar="DIR",
        file_okay=False,
        help="Where to spill what does not fit in memory, in a folder of the run's own, "
        "removed when it ends (default: the system's temporary folder).",
    ),
]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="duckdb|spark",
        help="Where to run: duckdb (embedded, the default) or spark (Apache Spark; "
        "pip install 'retentionrules[spark]'). Same result either way.",
    ),
]
SparkMasterOption = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        metavar="URL",
        help="With --engine spark: the Spark master (local[4], spark://host:7077, yarn); "
        "default: the active session's, else local[*].",
    ),
]


def _resources(memory_limit: str | None, temp_dir: Path | None) -> Any:
    from .loader import Resources

    return Resources(memory_limit, temp_dir)


NoLedgerOption = Annotated[
    bool,
    typer.Option(
        "--no-ledger",
        help="Do not read the project's contact ledger as contact history (it is read "
        "whenever it exists, so that what was sent counts against caps and quiet periods).",
    ),
]


@app.command(short_help="Dry-run the rules and write the action plan.")
@_guarded
def plan(
    rules: RulesOption,
    customers: CustomersOption,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="The plan: .jsonl, .csv or .parquet, written atomically, with a "
            "PLAN.meta.json header beside it (default: summary only).",
        ),
    ] = None,
    orders: OrdersOption = None,
    contacts: ContactsOption = None,
    products: ProductsOption = None,
    as_of: AsOfOption = None,
    rejects: RejectsOption = None,
    suppressed: Annotated[
        Path | None,
        typer.Option(
            "--suppressed", help="Write every removed (customer, rule) with its reason code."
        ),
    ] = None,
    config: ConfigOption = None,
    no_ledger: NoLedgerOption = False,
    output_format: OutputFormatOption = Output.text,
    memory_limit: MemoryLimitOption = None,
    temp_dir: TempDirOption = None,
    engine: EngineOption = "duckdb",
    spark_master: SparkMasterOption = None,
) -> None:
    """Dry-run the rules over a customer export: write the action plan and summarise it.

    Policies, in order: match, consent, caps, priority, household, volume, holdout.
    Same inputs and as-of date give a byte-identical plan.
    """
    from .engine import run_plan
    from .summary import plan_json, print_plan

    with _working("planning…"):
        result = run_plan(
            rules,
            _inputs(customers, orders, contacts, products),
            _as_of(as_of),
            out=out,
            rejects=rejects,
            suppressed=suppressed,
            config_path=config,
            use_ledger=not no_ledger,
            resources=_resources(memory_limit, temp_dir),
            engine=engine,
            spark_master=spark_master,
        )
    _emit(output_format is Output.json, result, plan_json, print_plan)


@app.command(short_help="Explain a customer's actions, rule by rule.")
@_guarded
def explain(
    customer_ids: Annotated[list[str], typer.Argument(help="Customer ids to explain.")],
    rules: RulesOption,
    customers: CustomersOption,
    orders: OrdersOption = None,
    contacts: ContactsOption = None,
    products: ProductsOption = None,
    as_of: AsOfOption = None,
    config: ConfigOption = None,
    no_ledger: NoLedgerOption = False,
    output_format: OutputFormatOption = Output.text,
    memory_limit: MemoryLimitOption = None,
    temp_dir: TempDirOption = None,
    engine: EngineOption = "duckdb",
    spark_master: SparkMasterOption = None,
) -> None:
    """Show why customers get, or do not get, each rule's action.

    Prints the customer's derived fields and, rule by rule, each test's value and the policy that
    kept or removed the action.
    """
    from .engine import explain as run_explain
    from .summary import explain_json, print_explanation

    with _working("explaining…"):
        found = run_explain(
            rules,
            _inputs(customers, orders, contacts, products),
            customer_ids,
            _as_of(as_of),
            config,
            use_ledger=not no_ledger,
            resources=_resources(memory_limit, temp_dir),
            engine=engine,
            spark_master=spark_master,
        )
    if output_format is Output.json:
        typer.echo(explain_json(found))
        return
    console = _console()
    for explanation in found:
        print_explanation(explanation, console)


@app.command(short_help="Score customers; show tiers by stage.")
@_guarded
def score(
    customers: CustomersOption,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write every customer's derived fields (.jsonl, .csv, .parquet)."
        ),
    ] = None,
    orders: OrdersOption = None,
    contacts: ContactsOption = None,
    products: ProductsOption = None,
    as_of: AsOfOption = None,
    rejects: RejectsOption = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="retentionrules.toml to use (default: the nearest one in the current folder "
            "or above it, else the built-in defaults; the summary names the one used).",
            dir_okay=False,
        ),
    ] = None,
    output_format: OutputFormatOption = Output.text,
    memory_limit: MemoryLimitOption = None,
    temp_dir: TempDirOption = None,
    engine: EngineOption = "duckdb",
    spark_master: SparkMasterOption = None,
) -> None:
    """Score customers (RFM, tier, stage, day counts) and print the tier x stage distribution."""
    from .engine import score as run_score
    from .summary import print_score, score_json

    with _working("scoring…"):
        result = run_score(
            _inputs(customers, orders, contacts, products),
            _as_of(as_of),
            out=out,
            config_path=config,
            rejects=rejects,
            resources=_resources(memory_limit, temp_dir),
            engine=engine,
            spark_master=spark_master,
        )
    _emit(output_format is Output.json, result, score_json, print_score)


@app.command(name="test", short_help="Run the rule tests and measure rule coverage.")
@_guarded
def test_rules(
    paths: PathsArgument = None,
    config: ConfigOption = None,
    output_format: Annotated[
        TestFormat, typer.Option("--format", "-f", help="text, json, junit (XML) or github.")
    ] = TestFormat.text,
    min_coverage: Annotated[
        str | None,
        typer.Option(
            "--min-coverage",
            metavar="PCT",
            help="Fail when fewer than this percentage of rules fire in some case (80 or 80%).",
        ),
    ] = None,
) -> None:
    """Run the rule tests (*.test.toml) through the same pipeline as `plan`.

    PATHS are rule files, test files and folders; a folder's rules and test files are found at
    any depth. Each test file runs against the rules of its own project (the nearest
    retentionrules.toml above it). Exit 0 when every case passes (and coverage is met), 1 on
    failures, 2 on errors in the rule or test files themselves.
    """
    from .errors import UsageError
    from .testreport import render_stopped

    try:
        _test_rules(paths, config, output_format, _percentage(min_coverage))
    except UsageError as error:  # CI still gets a report in its format, not an empty file
        if output_format is not TestFormat.text:
            typer.echo(render_stopped(str(error), output_format.value))
        raise


def _percentage(value: str | None) -> float | None:
    """--min-coverage: 80 or 80%, from 0 to 100."""
    import math

    from .errors import UsageError

    if value is None:
        return None
    try:
        number = float(value.strip().removesuffix("%"))
    except ValueError:
        number = math.nan
    if not 0 <= number <= 100:  # NaN too
        raise UsageError(f"--min-coverage {value!r}: give a percentage from 0 to 100, e.g. 80%")
    return number


def _test_rules(
    paths: list[Path] | None,
    config: Path | None,
    output_format: TestFormat,
    min_coverage: float | None,
) -> None:
    from .api import check_projects, rule_files
    from .errors import UsageError
    from .testing import TestRun, by_project, run_tests, test_files
    from .testreport import render_run

    given = paths or [Path.cwd()]
    tests = test_files(given)
    if not rule_files(given, tests=True):
        if tests:
            by_project([], tests, config)  # names each test file's project: a usage error
        raise UsageError("no rule files found (looked for *.rules)")
    reports = check_projects(given, config, tests=True)
    broken = [r for r in reports if not r.ok]
    if broken:  # every project's rule errors, before any test runs
        sources = {path: text for report in broken for path, text in report.sources.items()}
        _broken_files([d for r in broken for d in r.diagnostics], sources, output_format)
    runs: dict[str, TestRun] = {}
    problems: list[Diagnostic] = []
    sources = {}
    for report, files in by_project(reports, tests, config):
        assert report.project is not None
        tested = run_tests(report, files)
        if tested.run is None:
            problems += tested.problems
            sources |= tested.sources
        else:
            runs[report.project.name] = tested.run
    if problems:
        _broken_files(problems, sources, output_format)
    if not runs:
        raise UsageError("no test files found (looked for *.test.toml under the paths given)")
    run = TestRun.merge(runs)
    typer.echo(render_run(run, output_format.value))
    if run.failed or (min_coverage is not None and run.coverage < min_coverage):
        if min_coverage is not None and run.coverage < min_coverage:
            typer.echo(
                f"rule coverage {run.coverage:.0f}% is below --min-coverage {min_coverage:g}%",
                err=True,
            )
        raise typer.Exit(1)


def _broken_files(
    diagnostics: list[Diagnostic], sources: dict[str, str], output_format: TestFormat
) -> NoReturn:
    """Rule or test files that stop the tests: the problems for people on stderr and, in a
    format for CI, on stdout too (annotations, JSON, a JUnit suite with an error per problem),
    so that a pull request still shows them. Exit 2."""
    from .diagnostics import Diagnostic
    from .render import render_text
    from .testreport import render_problems

    found = sorted(diagnostics, key=Diagnostic.sort_key)
    typer.echo(render_text(found, sources), err=True)
    if output_format is not TestFormat.text:
        typer.echo(render_problems(found, sources, output_format.value))
    raise typer.Exit(2)


@app.command(name="diff", short_help="Show the audience impact of a rule change.")
@_guarded
def diff_rules(
    old: Annotated[
        str,
        typer.Argument(
            help="The rules before: a path, or REV:PATH for a git revision (main:rules from the "
            "repository's top folder, main:./rules from the current one)."
        ),
    ],
    new: Annotated[list[Path], typer.Argument(help="The rules after: files or folders.")],
    customers: CustomersOption,
    orders: OrdersOption = None,
    contacts: ContactsOption = None,
    products: ProductsOption = None,
    as_of: AsOfOption = None,
    config: ConfigOption = None,
    output_format: Annotated[
        DiffFormat,
        typer.Option("--format", "-f", help="text, markdown (a pull-request comment) or json."),
    ] = DiffFormat.text,
    fail_over: Annotated[
        str | None,
        typer.Option(
            "--fail-over",
            help="Exit 1 when any rule's audience moves by more than N customers "
            "or P% of its audience before.",
        ),
    ] = None,
) -> None:
    """Show how many customers a rule change moves.

    Both versions are planned on the same customers and as-of date; per rule: customers added,
    removed, moved from or to another rule, and the change in estimated cost.
    """
    from .impact import diff
    from .summary import impact_json, impact_markdown, print_impact

    with _working("comparing…"):
        inputs = _inputs(customers, orders, contacts, products)
        impact = diff(old, new, inputs, _as_of(as_of), config)
    if output_format is DiffFormat.markdown:
        typer.echo(impact_markdown(impact))
    else:
        _emit(output_format is DiffFormat.json, impact, impact_json, print_impact)
    if fail_over is not None:
        over = impact.over(fail_over)
        for rule in over:
            typer.echo(
                f"rule {rule.rule}: {rule.moved} customers moved (more than {fail_over})", err=True
            )
        if over:
            raise typer.Exit(1)


def _timestamp(value: str | None, option: str = "--now") -> datetime.datetime | None:
    """An ISO 8601 moment; without an offset it is taken in the shop's time zone."""
    from .errors import UsageError

    if value is None:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not a moment such as 2026-11-22T10:00 or "
            "2026-11-22T10:00:00+08:00"
        ) from None


NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        metavar="TIMESTAMP",
        help="Pin the clock (ISO 8601; without an offset, the shop's time zone): for tests and "
        "replays.",
    ),
]


@app.command(short_help="Approve a plan for sending, after checking it.")
@_guarded
def approve(
    plan: Annotated[Path, typer.Argument(help="The plan to approve.")],
    by: Annotated[
        str | None, typer.Option("--by", help="Who approves (default: your user name).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why, or what was checked.")] = None,
    now: NowOption = None,
    output_format: OutputFormatOption = Output.text,
) -> None:
    """Approve PLAN: check that the plan, its header and their digests agree and that the plan
    is recent enough, show what it will send, and record the approval in PLAN.approval.json.

    Exit 0 when approved; 1 when the plan cannot be approved (edited, torn, too old).
    """
    import getpass

    from .send import approve as run_approve
    from .summary import approval_json, print_approval

    result = run_approve(plan, by or getpass.getuser(), note, _timestamp(now))
    _emit(output_format is Output.json, result, approval_json, print_approval)


@app.command(short_help="Send an approved plan, exactly once, inside send windows.")
@_guarded
def send(
    plan: Annotated[Path, typer.Argument(help="The approved plan.")],
    customers: Annotated[
        Path,
        typer.Option(
            "--customers",
            help="Today's customer export: addresses and consent are read from it at send time.",
        ),
    ],
    to: Annotated[
        str | None, typer.Option("--to", metavar="URL", help="POST batches to this webhook.")
    ] = None,
    outbox: Annotated[
        Path | None,
        typer.Option(
            "--outbox", metavar="DIR", help="Write batches as files into this folder instead."
        ),
    ] = None,
    now: NowOption = None,
    batch: Annotated[int, typer.Option("--batch", metavar="N", help="Messages per batch.")] = 100,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            min=0.1,
            help="How long to wait for the webhook's answer.",
        ),
    ] = 10.0,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            metavar="N",
            min=0,
            help="Tries after the first for a batch the webhook did not acknowledge (429, 5xx, "
            "a timeout, a dropped connection), with exponential backoff and jitter.",
        ),
    ] = 5,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent; send and record nothing.")
    ] = False,
    output_format: OutputFormatOption = Output.text,
) -> None:
    """Send an approved plan to a webhook (--to) or an outbox folder (--outbox).

    Holdouts are never sent; consent is checked again against today's export; messages outside
    their channel's send window are deferred to a later run; every acknowledged message is
    recorded in the contact ledger and never sent again. Exit 0 when everything due was sent
    (deferred messages included), 1 when some could not be (the summary says which and why).
    """
    from .delivery import Outbox, Transport, Webhook
    from .errors import UsageError
    from .send import FAILED
    from .send import send as run_send
    from .summary import print_send, send_json

    if not dry_run and (to is None) == (outbox is None):
        raise UsageError("give one of --to URL or --outbox DIR (or --dry-run)")
    if to is not None:
        Webhook(to, timeout=timeout, attempts=retries + 1)  # a bad URL: usage error, no work
    if outbox is not None and not outbox.is_dir():
        raise UsageError(f"--outbox {outbox}: no such folder")

    def transport(plan_id: str) -> Transport:
        if to is not None:
            return Webhook(to, timeout=timeout, attempts=retries + 1)
        assert outbox is not None
        return Outbox(outbox, plan_id)

    with _progress("sending") as progress:
        report = run_send(
            plan,
            customers,
            None if dry_run else transport,
            now=_timestamp(now),
            batch=batch,
            dry_run=dry_run,
            progress=progress,
        )
    _emit(output_format is Output.json, report, send_json, print_send)
    if report.problems or report.total(FAILED):
        raise typer.Exit(1)


def _progress(what: str) -> AbstractContextManager[Callable[[int, int], None] | None]:
    """A progress bar on stderr for people at a terminal; none in pipes and CI logs."""
    import contextlib

    if not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    return _progress_bar(what)


@contextmanager
def _progress_bar(what: str) -> Iterator[Callable[[int, int], None]]:
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as shown:
        task = shown.add_task(what, total=None)
        yield lambda done, total: shown.update(task, completed=done, total=total)


class Lang(str, Enum):
    en = "en"
    zh = "zh"


@app.command(short_help="Write a plan's report: one self-contained HTML file.")
@_guarded
def report(
    plan: Annotated[Path, typer.Argument(help="The plan to report on.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="The report, .html (default: beside the plan, PLAN-STEM.report.html).",
        ),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            metavar="OTHER_PLAN",
            help="Another plan (of the same customers): show who moved between rules.",
        ),
    ] = None,
    lang: Annotated[Lang, typer.Option("--lang", help="The report's language.")] = Lang.en,
) -> None:
    """Write PLAN's report: the funnel per rule, customers by tier and stage, cost per channel
    and per rule, why actions were removed, the top parameters, the approval, and, with
    --against, the audience that moved. One HTML file: no network, no script; it opens from an
    e-mail attachment or a shared drive."""
    from .report import write_report

    typer.echo(f"wrote {write_report(plan, out, against, lang.value)}")


ledger_app = typer.Typer(
    help="The contact ledger: every message a receiver acknowledged, which plans read as "
    "contact history. Export it, or import sends made by other systems.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(ledger_app, name="ledger", short_help="Export or import the contact ledger.")

LedgerConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="retentionrules.toml whose [ledger] to use (default: the nearest one in the "
        "current folder or above it).",
        dir_okay=False,
    ),
]


@ledger_app.command("export", short_help="Write the ledger as a contact-history file.")
@_guarded
def ledger_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="The file: .csv, .jsonl or .parquet.")],
    config: LedgerConfigOption = None,
) -> None:
    """Write every contact in the ledger as a contact-history file (customer_id, channel, rule,
    sent_at, template, plan_id, idempotency_key, source): what `plan --contacts` reads."""
    from .history import export_ledger

    path, count = export_ledger(out, config)
    typer.echo(f"wrote {count} contacts from {path} to {out}")


@ledger_app.command("import", short_help="Record sends made by other systems.")
@_guarded
def ledger_import(
    history: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="A contact-history file (customer_id, channel, rule, sent_at): .csv, .jsonl "
            "or .parquet.",
        ),
    ],
    config: LedgerConfigOption = None,
) -> None:
    """Record the contacts of FILE in the ledger (sends made by other systems), so that plans
    respect them. Importing the same file again records nothing new."""
    from .history import import_history

    path, new, total = import_history(history, config)
    typer.echo(f"recorded {new} new contacts of {total} in {path}")


def _text_of(path: Path) -> str:
    """A test file's text for showing diagnostics under its lines ("" when unreadable)."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return ""


def _lean(arguments: list[str]) -> typer.Typer:
    """The app with only the command the arguments name. Typer builds every command's
    parameters (their types, defaults and help) before it runs one; building only the one that
    runs saves a fifth of a short command's start-up. Anything else (no command, `--help`, a
    misspelt command) gets the whole app, so help and "no such command" read as always."""
    name = arguments[0] if arguments else None
    commands = [
        c
        for c in app.registered_commands
        if c.callback is not None
        and (c.name or c.callback.__name__.lower().replace("_", "-")) == name
    ]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    lean = copy.copy(app)
    lean.registered_commands, lean.registered_groups = commands, groups
    return lean


def main() -> None:
    """The console script. Ctrl-C and SIGTERM are handled from the first import on (see
    `interrupts`); a command they stopped ends with its message and 130 or 143."""
    interrupts.install()
    try:
        _lean(sys.argv[1:])()
    except KeyboardInterrupt:  # one that no command caught
        interrupts.leave()
    except SystemExit:
        if not interrupts.stopped():
            raise
    if interrupts.stopped():
        interrupts.finish()
