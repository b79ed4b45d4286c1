"""The audience impact of a rule change: who gains, loses or changes their action.

Both rule sets are planned on the same customers at the same as-of date with the same pipeline
as `plan`; a customer's planned action (sent or held out) is compared rule by rule. Rule identity
is the rule's name: a renamed rule shows as one removed and one added.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .api import RULE_SUFFIX, one_project
from .config import CONFIG_NAME
from .engine import run_plan, today
from .errors import UsageError
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


def _git_snapshot(spec: str, folder: Path) -> tuple[Path, Path | None]:
    """`REV:PATH` -> the rule files of PATH at REV, copied into `folder`, and the configuration
    they were written against at REV (the nearest retentionrules.toml above PATH at REV), so that
    the old rules are checked and planned exactly as they were."""
    revision, _, path = spec.partition(":")
    here = Path(path or ".")
    try:
        top = Path(
            _git(["rev-parse", "--show-toplevel"], here if here.is_dir() else here.parent)
            .decode()
            .strip()
        )
        relative = here.resolve().relative_to(top.resolve())
        listed = _git(["ls-tree", "-r", "-z", "--name-only", revision, "--", str(relative)], top)
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError, OSError) as error:
        raise UsageError(f"{spec}: not a git revision and path ({error})") from None
    names = [name.decode("utf-8", "surrogateescape") for name in listed.split(b"\0") if name]
    for name in names:
        if name.endswith(RULE_SUFFIX):
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_git(["show", f"{revision}:{name}"], top))
    if not list(folder.rglob(f"*{RULE_SUFFIX}")):
        raise UsageError(f"{spec}: no rule files at that revision")
    for parent in (relative, *relative.parents):
        candidate = (parent / CONFIG_NAME).as_posix()
        try:
            text = _git(["show", f"{revision}:{candidate}"], top)
        except subprocess.CalledProcessError:
            continue
        config = folder / candidate
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_bytes(text)
        return folder / relative, config
    return folder / relative, None


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
        old_path, old_config = Path(old), config
        if not old_path.exists() and ":" in old:
            old_path, snapshot_config = _git_snapshot(old, Path(folder))
            old_config = config or snapshot_config
            if old_config is None:  # no configuration at that revision: the built-in defaults
                old_config = Path(folder) / CONFIG_NAME
                old_config.write_text("", encoding="utf-8")
        before, cost_before, customers = _planned([old_path], inputs, as_of, old_config)
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
