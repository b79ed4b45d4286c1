"""The Python API behind the CLI: usable from a notebook, returns data, prints nothing.

>>> from retentionrules.api import check_paths
>>> report = check_paths(["rules/"])
>>> report.ok, report.ruleset.rules[0].name
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import ast, ir, parser
from .ast import Span
from .checker import check
from .config import CONFIG_NAME, Config, ConfigError, find_config, load_config, shown_path
from .diagnostics import Code, Diagnostic, apply_noqa, noqa_codes
from .errors import ConfigProblems, UsageError
from .formatter import Layout, format_file, logical_lines

RULE_SUFFIX = ".rules"
TEST_SUFFIX = ".test.toml"  # rule tests (`retentionrules test`); never read as rules


def rule_files(paths: Iterable[str | Path], tests: bool = False) -> list[Path]:
    """Files named directly, plus every `*.rules` file below named folders, in a stable order;
    a file reached twice (`rules` and `rules/../rules`, a symlink) is read once.

    A named test file (`*.test.toml`) is never read as rules: a usage error that says what it
    is, or, for `retentionrules test` (`tests`), which takes test files and rules together,
    left to the caller."""
    found: dict[Path, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            listed = sorted(path.rglob(f"*{RULE_SUFFIX}"))
        elif not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        elif path.name.endswith(TEST_SUFFIX):
            if tests:
                continue
            raise UsageError(
                f"{path}: a rule test file, not a rule file; run it with `retentionrules test`"
            )
        else:
            listed = [path]
        for file in listed:
            found.setdefault(file_key(file), file)
    return list(found.values())


def file_key(path: Path) -> Path:
    """What makes two paths the same file: where they lead (`rules` and `rules/../rules`, a
    symbolic link). A link that leads nowhere (a loop) is its own: reading it then says why."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symbolic link loop, before Python 3.13
        return path.absolute()


@dataclass(frozen=True)
class Project:
    """Rule files checked, tested and planned together under one configuration: the nearest
    retentionrules.toml above them, the one given with --config, or else the built-in defaults.
    """

    config_path: Path | None
    files: tuple[Path, ...]

    @property
    def name(self) -> str:
        """The configuration file as a person would type it (relative to the current folder
        when it is below it), or "the built-in defaults"."""
        return shown_path(self.config_path)

    def config(self) -> Config:
        try:
            return load_config(self.config_path)
        except ConfigError as error:
            raise ConfigProblems(str(error)) from error


def projects(
    paths: Iterable[str | Path], config_path: Path | None = None, tests: bool = False
) -> list[Project]:
    """The rule files under `paths`, grouped into projects, in the order they were found
    (`tests`: named test files among `paths` are left out, see `rule_files`)."""
    files = rule_files(paths, tests)
    if not files:
        raise UsageError("no rule files found (looked for *.rules)")
    if config_path is not None:
        if not config_path.is_file():
            raise UsageError(f"{config_path}: no such configuration file")
        return [Project(config_path, tuple(files))]
    groups: dict[Path | None, list[Path]] = {}
    for path in files:
        groups.setdefault(find_config(path), []).append(path)
    return [Project(config, tuple(group)) for config, group in groups.items()]


def project_folders(paths: Iterable[str | Path]) -> list[Path]:
    """The whole project of each path, as a folder to check: the folder of the nearest
    retentionrules.toml above a file (or of the file itself, a `retentionrules.toml` included),
    else the file's own folder; a folder stays as it is. A pre-commit hook passes only the
    changed files, and a rule using a segment defined in another file needs that file too."""
    folders: dict[Path, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            folder = path
        elif not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        else:
            config = path if path.name == CONFIG_NAME else find_config(path)
            folder = config.parent if config is not None else path.parent
            if not path.is_absolute():  # as given: diagnostics name files as CI annotates them
                folder = Path(os.path.relpath(folder.resolve(), Path.cwd().resolve()))
        folders.setdefault(file_key(folder), folder)
    return list(folders.values())


def one_project(paths: Iterable[str | Path], config_path: Path | None = None) -> Project:
    """The single project `paths` belong to. Rules from several projects are never planned
    together: each would be checked under its own configuration and planned under another's."""
    found = projects(paths, config_path)
    if len(found) > 1:
        names = " and ".join(project.name for project in found[:2])
        more = f" (and {len(found) - 2} more)" if len(found) > 2 else ""
        raise UsageError(
            f"the rules belong to different projects, each with its own configuration: "
            f"{names}{more}; give the rules of one project, or one configuration with --config"
        )
    return found[0]


def config_for_data(config_path: Path | None = None) -> Config:
    """The configuration of a command that reads no rules (score): --config, else the nearest
    retentionrules.toml in the current folder or above it, else the built-in defaults."""
    if config_path is not None and not config_path.is_file():
        raise UsageError(f"{config_path}: no such configuration file")
    return Project(config_path or find_config(Path.cwd()), ()).config()


@dataclass
class Report:
    """Everything a check of one project found: sources by path, diagnostics, and the checked
    rule set (which carries the configuration it was checked against)."""

    sources: dict[str, str]
    diagnostics: list[Diagnostic]
    ruleset: ir.RuleSet
    project: Project | None = None

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
                problem = "cannot read: not a regular file"
                problems.append(Diagnostic(Code.RR001, problem, str(path)))
                continue
            data = path.read_bytes()
        except OSError as error:
            problems.append(Diagnostic(Code.RR001, f"cannot read: {error.strerror}", str(path)))
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
        Code.RR001,
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


def check_project(project: Project) -> Report:
    """Check one project's rule files against its own configuration."""
    config = project.config()
    sources, unreadable = read_sources(list(project.files))
    report = check_sources(sources, config)
    report.sources.update({d.path: "" for d in unreadable})
    report.diagnostics = sorted([*unreadable, *report.diagnostics], key=Diagnostic.sort_key)
    report.project = project
    return report


def check_projects(
    paths: Iterable[str | Path], config_path: Path | None = None, tests: bool = False
) -> list[Report]:
    """Check rule files project by project, each against its own configuration (`tests`:
    named test files among `paths` are left out, see `rule_files`)."""
    return [check_project(project) for project in projects(paths, config_path, tests)]


def check_paths(paths: Iterable[str | Path], config_path: Path | None = None) -> Report:
    """Check the rule files of one project (a usage error if they belong to several)."""
    return check_project(one_project(paths, config_path))


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
