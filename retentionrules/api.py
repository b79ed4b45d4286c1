"""The Python API behind the CLI: usable from a notebook, returns data, prints nothing.

>>> from retentionrules.api import check_paths
>>> report = check_paths(["rules/"])
>>> report.ok, report.ruleset.rules[0].name
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import ast, ir, parser
from .ast import Span
from .checker import check
from .config import Config, ConfigError, find_config, load_config
from .diagnostics import Diagnostic, apply_noqa, noqa_codes
from .errors import UsageError
from .formatter import Layout, format_file, logical_lines

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
    """The text of each rule file exactly as stored (a byte order mark and CRLF line ends too, so
    that `fmt` can keep the one and rewrite the other); RR001 for a file that cannot be read."""
    sources: dict[str, str] = {}
    problems: list[Diagnostic] = []
    for path in files:
        try:
            if not stat.S_ISREG(path.stat().st_mode):  # a folder, FIFO, device: may never end
                problems.append(Diagnostic("RR001", "cannot read: not a regular file", str(path)))
                continue
            data = path.read_bytes()
        except OSError as error:
            problems.append(Diagnostic("RR001", f"cannot read: {error.strerror}", str(path)))
            continue
        try:
            sources[str(path)] = data.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(_not_utf8(str(path), data, error.start))
    return sources, problems


_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _not_utf8(path: str, data: bytes, index: int) -> Diagnostic:
    """RR001 at the first byte that is not UTF-8, by line and column as an editor counts them
    (characters, not bytes; the text before it is valid UTF-8)."""
    before = parser.normalize(data[:index].decode("utf-8"))
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    encoding = next((name for bom, name in _OTHER_BOMS if data.startswith(bom)), None)
    saved_as = encoding or "another encoding, such as GBK"
    return Diagnostic(
        "RR001",
        f"not UTF-8 text: byte 0x{data[index]:02X} here is not part of a valid UTF-8 character "
        f"(the file looks saved as {saved_as})",
        path,
        Span(line, column, line, column + 1),
        hint="save the file as UTF-8 (with or without a byte order mark)",
    )


def check_sources(sources: dict[str, str], config: Config) -> Report:
    """Check rule files given as text. The report keeps each text normalized as parsed (without
    a byte order mark, CRLF and CR read as LF), so that its spans and lines agree with it."""
    texts = {path: parser.normalize(text) for path, text in sources.items()}
    parsed = [parser.parse(text, path) for path, text in texts.items()]
    diagnostics = [d for result in parsed for d in result.diagnostics]
    files = [result.file for result in parsed]
    checked = check(files, config)
    diagnostics.extend(checked.diagnostics)
    kept = apply_noqa(diagnostics, _noqa_scopes(files))
    return Report(texts, sorted(kept, key=Diagnostic.sort_key), checked.ruleset)


def _noqa_scopes(files: list[ast.RuleFile]) -> Callable[[Diagnostic], frozenset[str]]:
    """What `# noqa` silences where: a trailing comment's markers cover the warnings reported on
    the logical line it is beside (a statement header, one clause, a one-liner's `when ... then`
    head, a segment), as `formatter.Layout.beside` decides for fmt too; own-line comments cover
    nothing."""
    layouts: dict[str, Layout] = {}
    silenced: dict[tuple[str, int], frozenset[str]] = {}
    for rule_file in files:
        marked = [(c, noqa_codes(c.text)) for c in rule_file.comments if not c.own_line]
        marked = [(comment, codes) for comment, codes in marked if codes]
        if not marked:
            continue  # most files: no need to lay them out
        layout = layouts[rule_file.path] = logical_lines(rule_file)
        for comment, codes in marked:
            index = layout.beside(comment.span.line, comment.span.column)
            if index is not None:
                key = (rule_file.path, index)
                silenced[key] = silenced.get(key, frozenset()) | codes

    def scope(d: Diagnostic) -> frozenset[str]:
        layout = layouts.get(d.path)
        index = layout.beside(d.span.line, d.span.column) if layout and d.span.line else None
        return silenced.get((d.path, index), frozenset()) if index is not None else frozenset()

    return scope


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
    """The canonical text, or None and the syntax errors that prevent formatting.

    The canonical text has LF line ends; a byte order mark at the start is kept (it is how
    some editors on Windows know the file is UTF-8, and it changes no meaning)."""
    text = parser.normalize(source)
    result = parser.parse(text, path)
    errors = [d for d in result.diagnostics if d.is_error]
    if errors:
        return None, errors
    bom = parser.BOM if source.startswith(parser.BOM) else ""
    return bom + format_file(result.file, text), []
