"""The `retentionrules` command: a thin Typer layer over `retentionrules.api`.

Exit codes: 0 ok, 1 findings (rule errors, files that need formatting), 2 usage or internal error.
Heavy modules are imported inside the commands so that `--help` starts fast.
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="retentionrules",
    help="A rules engine for keeping customers: check, format, plan and explain retention rules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(str, Enum):
    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


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


def _guarded(command):
    """Turn usage errors into exit 2 with a message, and anything unexpected into exit 2 too."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        from .api import UsageError

        try:
            return command(*args, **kwargs)
        except UsageError as error:
            typer.echo(f"retentionrules: {error}", err=True)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as error:
            typer.echo(f"retentionrules: internal error: {type(error).__name__}: {error}", err=True)
            typer.echo("please report this with the command and input that caused it", err=True)
            raise typer.Exit(2) from None

    return run


@app.command()
@_guarded
def check(
    paths: PathsArgument = None,
    config: ConfigOption = None,
    output_format: Annotated[
        Format,
        typer.Option("--format", "-f", help="text for people; json, github or sarif for CI."),
    ] = Format.text,
    strict: Annotated[bool, typer.Option(help="Exit 1 on warnings too.")] = False,
) -> None:
    """Parse and type-check rule files against the customer schema; report every problem.

    Exit 0 when clean, 1 on errors (or on warnings with --strict), 2 on usage errors.
    """
    from .api import check_paths
    from .render import render

    report = check_paths(paths or [Path.cwd()], config)
    text = render(report.diagnostics, report.sources, output_format.value)
    if text:
        typer.echo(text)
    if report.errors or (strict and report.warnings):
        raise typer.Exit(1)


@app.command()
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
    import difflib

    from .api import format_source, read_sources, rule_files
    from .render import render_text

    files = rule_files(paths or [Path.cwd()])
    sources, problems = read_sources(files)
    changed, broken = [], list(problems)
    for path, source in sources.items():
        formatted, errors = format_source(source, path)
        if formatted is None:
            broken.extend(errors)
            continue
        if formatted == source:
            continue
        changed.append(path)
        if diff:
            typer.echo(
                "".join(
                    difflib.unified_diff(
                        source.splitlines(keepends=True),
                        formatted.splitlines(keepends=True),
                        f"a/{path}",
                        f"b/{path}",
                    )
                ),
                nl=False,
            )
        elif check_only:
            typer.echo(f"would reformat {path}")
        else:
            _write_atomically(Path(path), formatted)
            typer.echo(f"reformatted {path}")
    if broken:
        typer.echo(render_text(broken, sources), err=True)
    if broken or ((check_only or diff) and changed):
        raise typer.Exit(1)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        sys.exit(130)
