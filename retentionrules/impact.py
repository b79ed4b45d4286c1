"""The audience impact of a rule change: who gains, loses or changes their action.

Both rule sets are planned on the same customers at the same as-of date with the same pipeline
as `plan`; a customer's planned action (sent or held out) is compared rule by rule. Rule identity
is the rule's name: a renamed rule shows as one removed and one added.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from .api import RULE_SUFFIX, one_project
from .config import CONFIG_NAME
from .engine import run_plan, today
from .errors import RuleErrors, UsageError
from .loader import Inputs
from .planner import assignments


@dataclass
class RuleImpact:
    rule: str
    before: int = 0
    after: int = 0
    added: list[str] = field(default_factory=list)  # customers who get this rule now
    removed: list[str] = field(default_factory=list)  # customers who no longer do
    moved_in: dict[str, int] = field(default_factory=dict)  # from which rule they came
    moved_out: dict[str, int] = field(default_factory=dict)  # to which rule they went
    cost_before: float = 0.0
    cost_after: float = 0.0

    @property
    def moved(self) -> int:
        """Customers whose action under this rule changed, in either direction."""
        return len(self.added) + len(self.removed)


@dataclass
class Impact:
    rules: list[RuleImpact]
    as_of: dt.date
    customers: int

    def over(self, limit: str) -> list[RuleImpact]:
        """Rules whose audience moved more than `limit`: a count (`500`) or a share (`5%`)."""
        try:
            if limit.endswith("%"):
                share = float(limit[:-1])
                return [r for r in self.rules if 100 * r.moved / max(r.before, 1) > share]
            return [r for r in self.rules if r.moved > int(limit)]
        except ValueError:
            raise UsageError(
                f"--fail-over {limit!r}: give a number (500) or a share (5%)"
            ) from None


def _git(args: list[str], cwd: Path) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout


@dataclass(frozen=True)
class _Snapshot:
    """The rule files of `REV:PATH`, copied into a temporary folder with every configuration
    that governs them at that revision, and how to name them for people (`REV:PATH`, never the
    temporary folder)."""

    folder: Path  # the temporary copy of the repository's tree (the part needed)
    path: Path  # PATH inside `folder`
    revision: str

    def shown(self, text: str) -> str:
        """`text` with the temporary folder's paths written as `REV:path`, as git names them."""
        return text.replace(f"{self.folder}{os.sep}", f"{self.revision}:").replace(
            str(self.folder), f"{self.revision}:."
        )


def _top(folder: Path) -> Path:
    """The top folder of the git repository holding `folder` (or its nearest existing parent)."""
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return Path(_git(["rev-parse", "--show-toplevel"], folder).decode().strip())


def _revision_path(path: str) -> tuple[Path, PurePosixPath]:
    """The repository and PATH of `REV:PATH` inside it, read as git reads it: from the
    repository's top folder, unless it starts with `./` or `../` (then from the current folder);
    an absolute PATH names its own repository."""
    absolute = Path(path).is_absolute()
    here = Path(path) if absolute else Path.cwd() / path
    top = _top(here if absolute else Path.cwd())
    if not (absolute or path in (".", "..") or path.startswith(("./", "../"))):
        return top, PurePosixPath(path)
    try:
        return top, PurePosixPath(here.resolve().relative_to(top.resolve()).as_posix())
    except ValueError:
        raise UsageError(f"{path}: outside the git repository at {top}") from None


def _known_revision(spec: str, revision: str, path: str, top: Path) -> None:
    """A revision git does not know (`main` where the branch is called `trunk`): a usage error
    that says so and names the branches there are."""
    try:
        _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"],
             top)  # fmt: skip
        return
    except subprocess.CalledProcessError:
        pass
    try:
        listed = _git(["for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/tags"], top)
        branches = listed.decode("utf-8", "replace").split()
    except subprocess.CalledProcessError:
        branches = []
    shown = ", ".join(branches[:8]) + (", ..." if len(branches) > 8 else "")
    example = f"; e.g. {branches[0]}:{path}" if branches else ""
    raise UsageError(
        f"{spec}: the git repository at {top} has no revision {revision!r}"
        + (f" (its branches and tags: {shown}{example})" if branches else " (it has no commits)")
    )


def _git_snapshot(spec: str, folder: Path) -> _Snapshot:
    """`REV:PATH` -> the rule files of PATH at REV, copied into `folder`, with every
    retentionrules.toml below PATH and the nearest one above it at REV, so that the old rules
    are grouped into projects, checked and planned exactly as they were. A configuration is
    always written at the copy's top (empty: the built-in defaults), so that no file outside
    the copy is ever taken for the old rules' configuration."""
    revision, _, path = spec.partition(":")
    try:
        top, relative = _revision_path(path)
    except (subprocess.CalledProcessError, FileNotFoundError, OSError):
        raise UsageError(f"{spec}: {path or '.'} is not inside a git repository") from None
    _known_revision(spec, revision, path, top)
    try:
        listed = _git(["ls-tree", "-r", "-z", "--name-only", revision, "--", str(relative)], top)
    except subprocess.CalledProcessError as error:
        reason = error.stderr.decode("utf-8", "replace").strip() or "unknown revision"
        raise UsageError(f"{spec}: not a git revision and path ({reason})") from None
    names = [name.decode("utf-8", "surrogateescape") for name in listed.split(b"\0") if name]
    if not names:
        raise UsageError(
            f"{spec}: {path or '.'} is not in the repository at {revision} (read from the "
            f"repository's top folder {top}; write {revision}:./PATH for a path from the "
            "current folder)"
        )
    wanted = [n for n in names if n.endswith(RULE_SUFFIX) or PurePosixPath(n).name == CONFIG_NAME]
    for name in wanted:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_git(["show", f"{revision}:{name}"], top))
    snapshot = _Snapshot(folder, folder / relative, revision)
    if not any(n.endswith(RULE_SUFFIX) for n in wanted):
        raise UsageError(f"{spec}: no rule files at that revision")
    for parent in relative.parents:  # the nearest configuration above PATH
        candidate = (parent / CONFIG_NAME).as_posix()
        try:
            text = _git(["show", f"{revision}:{candidate}"], top)
        except subprocess.CalledProcessError:
            continue
        config = folder / candidate
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_bytes(text)
        break
    root = folder / CONFIG_NAME
    if not root.exists():
        root.write_text("", encoding="utf-8")
    return snapshot


def _planned_snapshot(
    snapshot: _Snapshot, inputs: Inputs, as_of: dt.date, config: Path | None
) -> tuple[dict[str, str], dict[str, float], int]:
    """The old side at a revision, with the temporary folder's paths named as `REV:path` in
    whatever stops it: rule diagnostics, mixed projects, configuration errors."""
    try:
        return _planned([snapshot.path], inputs, as_of, config)
    except RuleErrors as error:
        report = error.report
        report.diagnostics = [
            replace(d, path=snapshot.shown(d.path)) for d in report.diagnostics
        ]
        report.sources = {snapshot.shown(k): v for k, v in report.sources.items()}
        raise
    except UsageError as error:
        raise UsageError(snapshot.shown(str(error))) from None


def _planned(
    paths: list[str | Path], inputs: Inputs, as_of: dt.date, config: Path | None
) -> tuple[dict[str, str], dict[str, float], int]:
    result = run_plan(paths, inputs, as_of, config_path=config)
    costs = {c.rule: c.cost for c in result.plan.counts}
    return assignments(result.plan), costs, result.stats.customers


def _changes(
    plan: dict[str, str], other: dict[str, str]
) -> dict[str, tuple[int, list[str], dict[str, int]]]:
    """Per rule of `plan`: its audience, the customers `other` treats otherwise, and the rules
    `other` gives them instead. Called both ways round: removed/moved out, added/moved in."""
    sides: dict[str, tuple[int, list[str], dict[str, int]]] = {}
    for customer, rule in sorted(plan.items()):
        size, changed, moved = sides.get(rule, (0, [], {}))
        if other.get(customer) != rule:
            changed.append(customer)
            if customer in other:
                moved[other[customer]] = moved.get(other[customer], 0) + 1
        sides[rule] = (size + 1, changed, moved)
    return sides


def diff(
    old: str,
    new: list[Path],
    inputs: Inputs,
    as_of: dt.date | None = None,
    config: Path | None = None,
) -> Impact:
    """Plan `old` (paths, or `REV:PATH` of git) and `new` on the same data; compare by rule.

    Each side is one project, planned with its own configuration (or both with `config`); the
    as-of date defaults to today in the new side's time zone.
    """
    after_project = one_project(new, config)
    as_of = as_of or today(after_project.config())
    with tempfile.TemporaryDirectory() as folder:
        if not Path(old).exists() and ":" in old:
            snapshot = _git_snapshot(old, Path(folder))
            before, cost_before, customers = _planned_snapshot(snapshot, inputs, as_of, config)
        else:
            before, cost_before, customers = _planned([Path(old)], inputs, as_of, config)
    after, cost_after, _ = _planned([*after_project.files], inputs, as_of, config)
    names = list(dict.fromkeys([*cost_before, *cost_after]))
    impacts = {
        name: RuleImpact(
            name, cost_before=cost_before.get(name, 0.0), cost_after=cost_after.get(name, 0.0)
        )
        for name in names
    }
    for rule, side in _changes(before, after).items():
        impacts[rule].before, impacts[rule].removed, impacts[rule].moved_out = side
    for rule, side in _changes(after, before).items():
        impacts[rule].after, impacts[rule].added, impacts[rule].moved_in = side
    return Impact(list(impacts.values()), as_of, customers)
