"""The Python API behind the CLI: usable from a notebook, returns data, prints nothing.

>>> from retentionrules.api import check_paths
>>> report = check_paths(["rules/"])
>>> report.ok, report.ruleset.rules[0].name
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .ast import Span
from .checker import check
from .config import Config, ConfigError, find_config, load_config
from .diagnostics import Diagnostic, apply_noqa
from .errors import UsageError
from .formatter import format_file
from .parser import parse

RULE_SUFFIX = ".rules"


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus every `*.rules` file below named folders, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(path.rglob(f"*{RULE_SUFFIX}")))
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def resolve_config(paths: Sequence[Path], config_path: Path | None = None) -> Config:
    """An explicit --config, else the nearest retentionrules.toml above the first rule file."""
    try:
        if config_path is not None:
            if not config_path.is_file():
                raise UsageError(f"{config_path}: no such configuration file")
            return load_config(config_path)
        return load_config(find_config(paths[0] if paths else Path.cwd()))
    except ConfigError as error:
        raise UsageError(str(error)) from error


@dataclass
class Report:
    """Everything a check found: sources by path, diagnostics, the checked rule set."""

    sources: dict[str, str]
    diagnostics: list[Diagnostic]
    ruleset: ir.RuleSet = field(default_factory=lambda: ir.RuleSet(()))

    @property
    def errors(self) -> int:
        return sum(d.is_error for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return len(self.diagnostics) - self.errors

    @property
    def ok(self) -> bool:
        return self.errors == 0


def read_sources(files: Sequence[Path]) -> tuple[dict[str, str], list[Diagnostic]]:
    sources: dict[str, str] = {}
    problems: list[Diagnostic] = []
    for path in files:
        try:
            sources[str(path)] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            problems.append(
                Diagnostic(
                    "RR001",
                    "not UTF-8 text",
                    str(path),
                    _byte_span(error.object, error.start),
                    hint="save the file as UTF-8",
                )
            )
        except OSError as error:
            problems.append(Diagnostic("RR001", f"cannot read: {error.strerror}", str(path)))
    return sources, problems


def _byte_span(data: bytes, index: int) -> Span:
    line = data.count(b"\n", 0, index) + 1
    column = index - (data.rfind(b"\n", 0, index) + 1) + 1
    return Span(line, column, line, column + 1)


def check_sources(sources: dict[str, str], config: Config) -> Report:
    parsed = [parse(text, path) for path, text in sources.items()]
    diagnostics = [d for result in parsed for d in result.diagnostics]
    files = [result.file for result in parsed]
    checked = check(files, config)
    diagnostics.extend(checked.diagnostics)
    kept = apply_noqa(diagnostics, sources)
    return Report(sources, sorted(kept, key=Diagnostic.sort_key), checked.ruleset)


def check_paths(paths: Iterable[str | Path], config_path: Path | None = None) -> Report:
    """Check rule files; files under different retentionrules.toml are separate rule sets."""
    files = rule_files(paths)
    if not files:
        raise UsageError("no rule files found (looked for *.rules)")
    groups: dict[Path | None, list[Path]] = {}
    for path in files:
        groups.setdefault(config_path or find_config(path), []).append(path)
    reports = [_check_group(group, config) for config, group in groups.items()]
    merged = Report({}, [])
    for report in reports:
        merged.sources.update(report.sources)
        merged.diagnostics.extend(report.diagnostics)
    merged.diagnostics.sort(key=Diagnostic.sort_key)
    merged.ruleset = (
        reports[0].ruleset
        if len(reports) == 1
        else ir.RuleSet(tuple(r for report in reports for r in report.ruleset.rules))
    )
    return merged


def _check_group(files: list[Path], config_path: Path | None) -> Report:
    config = resolve_config(files, config_path)
    sources, unreadable = read_sources(files)
    report = check_sources(sources, config)
    report.sources.update({d.path: "" for d in unreadable})
    report.diagnostics = sorted([*unreadable, *report.diagnostics], key=Diagnostic.sort_key)
    return report


def format_source(source: str, path: str = "<string>") -> tuple[str | None, list[Diagnostic]]:
    """The canonical text, or None and the syntax errors that prevent formatting."""
    result = parse(source, path)
    errors = [d for d in result.diagnostics if d.is_error]
    if errors:
        return None, errors
    return format_file(result.file, source), []
