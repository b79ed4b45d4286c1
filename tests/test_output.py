"""Outputs: no input is ever overwritten, a plan and its header are one unit, temporary files are
private and never left behind, and every file is safe to open (CSV with a byte order mark and
defused formula cells; never NaN or Infinity)."""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import json
import math
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retentionrules.engine import run_plan
from retentionrules.errors import DataError, OutputError, UsageError
from retentionrules.loader import Inputs
from retentionrules.output import (
    BOM,
    Outputs,
    UnverifiedPlan,
    _defused_sql,
    defuse,
    json_text,
    lock_file,
    open_plan,
    read_plan_header,
    refuse_aliases,
    remove_stale,
    replace_text,
    sidecar,
    undefuse,
)
from retentionrules.sql import ident, literal

from .conftest import COLUMNS, ROOT, customer, write_csv, write_rules

AS_OF = "2026-11-22"
RULES = "rule all\n  when total_orders = 0\n  then send x via email\n"
BROKEN_RULES = "rule all\n  when stge = sleeping\n  then send x via email\n"
STAGING = ".retentionrules-tmp-"


def shop(tmp_path: Path, rules: str = RULES) -> dict[str, Path]:
    """A rule folder with its configuration, and customer, order and contact exports."""
    folder = write_rules(tmp_path / "rules", rules)
    customers = write_csv(tmp_path / "customers.csv", [customer("C1"), customer("C2")])
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,order_date,amount\nC1,2026-10-01,10\n", encoding="utf-8")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("customer_id,channel,rule,sent_at\nC1,email,all,2026-09-01\n")
    return {
        "rules": folder,
        "rule file": folder / "r.rules",
        "configuration": folder / "retentionrules.toml",
        "customers": customers,
        "orders": orders,
        "contacts": contacts,
    }


def plan_args(files: dict[str, Path]) -> list[object]:
    return [
        "plan",
        "--rules",
        files["rules"],
        "--customers",
        files["customers"],
        "--orders",
        files["orders"],
        "--contacts",
        files["contacts"],
        "--as-of",
        AS_OF,
    ]


def snapshot(folder: Path) -> dict[str, object]:
    """Every name under `folder` with its bytes (or link target): to prove nothing was written."""
    found: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = ("link", os.readlink(path))
        elif path.is_file():
            found[key] = path.read_bytes()
        else:
            found[key] = stat.S_IFMT(path.lstat().st_mode)
    return found


def staging_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(STAGING))


# ---------------------------------------------------------------- no input is ever lost


def test_out_that_is_the_customer_file_is_refused(run_cli, tmp_path):
    files = shop(tmp_path)
    before = snapshot(tmp_path)
    result = run_cli(*plan_args(files), "--out", files["customers"])
    assert result.exit_code == 2
    assert f"--out {files['customers']} is the same file as --customers" in result.output
    assert snapshot(tmp_path) == before  # the export intact, and no header or lock either


@pytest.mark.parametrize("option", ["--out", "--suppressed", "--rejects"])
@pytest.mark.parametrize(
    "target", ["customers", "orders", "contacts", "rule file", "configuration"]
)
def test_a_plan_output_that_is_an_input_is_refused(run_cli, tmp_path, option, target):
    files = shop(tmp_path)
    before = snapshot(tmp_path)
    result = run_cli(*plan_args(files), option, files[target])
    assert result.exit_code == 2, result.output
    assert "is the same file as" in result.output and str(files[target]) in result.output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("option", ["--out", "--rejects"])
@pytest.mark.parametrize("target", ["customers", "orders", "contacts", "configuration"])
def test_a_score_output_that_is_an_input_is_refused(run_cli, tmp_path, option, target):
    files = shop(tmp_path)
    before = snapshot(tmp_path)
    result = run_cli(
        "score",
        "--customers",
        files["customers"],
        "--orders",
        files["orders"],
        "--contacts",
        files["contacts"],
        "--config",
        files["configuration"],
        option,
        files[target],
    )
    assert result.exit_code == 2, result.output
    assert "is the same file as" in result.output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("how", ["symlink", "hard link", "dotdot", "relative", "linked folder"])
def test_an_input_named_another_way_is_still_refused(run_cli, tmp_path, monkeypatch, how):
    files = shop(tmp_path)
    (tmp_path / "sub").mkdir()
    if how == "symlink":
        out = tmp_path / "plan.csv"
        out.symlink_to(files["customers"])
    elif how == "hard link":
        out = tmp_path / "plan.csv"
        os.link(files["customers"], out)
    elif how == "dotdot":
        out = tmp_path / "sub" / ".." / "customers.csv"
    elif how == "relative":
        monkeypatch.chdir(tmp_path / "sub")
        out = Path("../customers.csv")
    else:
        (tmp_path / "alias").symlink_to(tmp_path)
        out = tmp_path / "alias" / "customers.csv"
    before = snapshot(tmp_path)
    result = run_cli(*plan_args(files), "--out", out)
    assert result.exit_code == 2, result.output
    assert f"--out {out} is the same file as --customers {files['customers']}" in result.output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "first, second",
    [
        (("--out", "p.csv"), ("--suppressed", "p.csv")),
        (("--out", "p.csv"), ("--rejects", "sub/../p.csv")),
        (("--out", "p.jsonl"), ("--suppressed", "p.jsonl.meta.json")),
        (("--out", "p.jsonl"), ("--rejects", "p.jsonl.lock")),
        (("--suppressed", "new.csv"), ("--rejects", "dangling.csv")),
        (("--suppressed", "s.csv"), ("--rejects", "hard.csv")),
    ],
)
def test_two_outputs_naming_one_file_are_refused(run_cli, tmp_path, first, second):
    files = shop(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "s.csv").write_text("old\n")
    os.link(tmp_path / "s.csv", tmp_path / "hard.csv")
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "new.csv")
    before = snapshot(tmp_path)
    result = run_cli(
        *plan_args(files), first[0], tmp_path / first[1], second[0], tmp_path / second[1]
    )
    assert result.exit_code == 2, result.output
    assert "are the same file" in result.output
    assert snapshot(tmp_path) == before


def test_aliases_are_refused_before_any_work(run_cli, tmp_path):
    """Broken rules and bad data would stop the run with exit 1; the alias is found first."""
    files = shop(tmp_path, BROKEN_RULES)
    files["customers"].write_text("customer_id\n\n")
    result = run_cli(*plan_args(files), "--out", files["contacts"])
    assert result.exit_code == 2 and "is the same file as --contacts" in result.output


def test_refuse_aliases_names_both_paths(tmp_path):
    export = tmp_path / "c.csv"
    export.write_text("x\n")
    (tmp_path / "link.csv").symlink_to(export)
    with pytest.raises(UsageError) as error:
        refuse_aliases([("--customers", export)], [("--out", tmp_path / "link.csv")])
    assert str(export) in str(error.value) and str(tmp_path / "link.csv") in str(error.value)
    refuse_aliases([("--customers", export)], [("--out", tmp_path / "other.csv")])  # no error


# ---------------------------------------------------------------- what an output name may be


@pytest.mark.parametrize(
    "planted, expected",
    [
        ("folder", "is a folder"),
        ("symlink", "is a symbolic link"),
        ("dangling symlink", "is a symbolic link"),
        ("symlink loop", "is a symbolic link"),
        ("fifo", "is not a regular file"),
    ],
)
@pytest.mark.parametrize("name", ["plan.jsonl", "plan.jsonl.meta.json", "plan.jsonl.lock"])
def test_an_output_name_that_is_not_a_plain_file_is_refused(
    run_cli, tmp_path, planted, expected, name
):
    """Outputs never write through a link (planted or not) nor over a folder or a FIFO; the
    plan's header and lock are held to the same rule."""
    files = shop(tmp_path)
    victim = tmp_path / "victim.jsonl"
    victim.write_text("precious\n")
    path = tmp_path / name
    if planted == "folder":
        path.mkdir()
    elif planted == "symlink":
        path.symlink_to(victim)
    elif planted == "dangling symlink":
        path.symlink_to(tmp_path / "nowhere" / "x")
    elif planted == "symlink loop":
        path.symlink_to(tmp_path / "loop")
        (tmp_path / "loop").symlink_to(path)
    else:
        os.mkfifo(path)
    before = snapshot(tmp_path)
    result = run_cli(*plan_args(files), "--out", tmp_path / "plan.jsonl")
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert snapshot(tmp_path) == before


def test_out_in_a_missing_folder_is_refused(run_cli, tmp_path):
    files = shop(tmp_path)
    result = run_cli(*plan_args(files), "--out", tmp_path / "nowhere" / "plan.jsonl")
    assert result.exit_code == 2 and "no such folder" in result.output


def test_out_in_a_folder_you_cannot_write_is_refused_before_any_work():
    """As an ordinary user (root is made `nobody` in a forked child: root may write anywhere).
    The rules are broken, so a check made after any work would report them instead."""
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        files = shop(base, BROKEN_RULES)
        for path in base.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            code = 1
            try:
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                run_plan([files["rules"]], Inputs(files["customers"]), out=locked / "p.jsonl")
            except OutputError as error:
                code = 3 if "cannot write in this folder" in str(error) else 4
            except BaseException:
                code = 5
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
        assert list(locked.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_nobody(function) -> str:
    """Run `function` in a forked child as the user `nobody` (root may write anywhere, and may
    replace anyone's file); return the message of the OutputError it raised, or what else
    happened."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        outcome = "no error"
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            function()
        except OutputError as error:
            outcome = str(error)
        except BaseException as error:
            outcome = f"unexpected {type(error).__name__}: {error}"
        finally:
            os.write(write, outcome.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


def public_shop(rules: str = RULES) -> Path:
    """A shop in a fresh folder every user may read (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp())
    base.chmod(0o755)
    shop(base, rules)
    for path in base.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return base


def test_an_output_another_user_owns_in_a_sticky_folder_is_refused_before_any_work():
    """In a folder like /tmp (sticky bit) only a file's owner may replace it. Found out at the
    rename, it came after the plan was replaced: the run exited 2 with a new plan in place. The
    rules are broken, so a check made after any work would report them instead."""
    base = public_shop(BROKEN_RULES)
    try:
        drop = base / "drop"
        drop.mkdir()
        drop.chmod(0o1777)
        theirs = drop / "suppressed.csv"
        theirs.write_text("someone else's\n")  # root's: another user, to nobody
        plan = drop / "plan.jsonl"

        def run() -> None:
            run_plan(
                [base / "rules"], Inputs(base / "customers.csv"), out=plan, suppressed=theirs
            )

        message = as_nobody(run)
        assert "suppressed.csv belongs to another user" in message, message
        assert "only a file's owner may replace it" in message
        assert sorted(p.name for p in drop.iterdir()) == ["suppressed.csv"]
        assert theirs.read_text() == "someone else's\n"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_lock_file_the_run_may_not_open_is_refused_before_any_work():
    """Another user's PLAN.lock with mode 0600: the writer could not open it, and found out only
    when committing the plan, after the other outputs were replaced."""
    base = public_shop(BROKEN_RULES)
    try:
        drop = base / "drop"
        drop.mkdir()
        drop.chmod(0o1777)
        plan, suppressed = drop / "plan.jsonl", drop / "s.csv"
        lock_file(plan).write_text("")
        lock_file(plan).chmod(0o600)

        def run() -> None:
            run_plan(
                [base / "rules"], Inputs(base / "customers.csv"), out=plan, suppressed=suppressed
            )

        message = as_nobody(run)
        assert "--out's lock" in message and "may not be opened" in message, message
        assert sorted(p.name for p in drop.iterdir()) == ["plan.jsonl.lock"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_root_without_the_right_to_replace_others_files_is_refused_too(tmp_path):
    """The review's case: root that gave up CAP_FOWNER (setpriv, a container) is as bound by the
    sticky bit as anyone; the check asks the kernel's capabilities, not the user id."""
    files = shop(tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    drop.chmod(0o1777)
    os.chown(drop, 65534, 65534)
    theirs = drop / "sup.csv"
    theirs.write_text("x\n")
    os.chown(theirs, 65534, 65534)
    (drop / "plan.csv").write_text("old\n")
    before = snapshot(drop)
    command = [
        "setpriv", "--bounding-set", "-dac_override,-fowner,-dac_read_search",
        sys.executable, "-m", "retentionrules", *map(str, plan_args(files)),
        "--out", str(drop / "plan.csv"), "--suppressed", str(theirs),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert "sup.csv belongs to another user" in result.stderr
    assert snapshot(drop) == before


@pytest.fixture
def immutable(tmp_path):
    """Mark files immutable (`chattr +i`: nobody, root included, may replace them), the way a
    rename can still fail after every check passed; undone at the end."""
    marked: list[Path] = []

    def mark(path: Path) -> None:
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
        marked.append(path)

    yield mark
    for path in marked:
        subprocess.run(["chattr", "-i", str(path)], check=False, capture_output=True)


def test_a_rename_that_fails_late_names_what_was_written_and_never_leaves_a_new_plan(
    run_cli, tmp_path, immutable
):
    files = shop(tmp_path)
    out, sup, rej = tmp_path / "plan.jsonl", tmp_path / "s.csv", tmp_path / "r.csv"
    outputs = ["--out", out, "--suppressed", sup, "--rejects", rej]
    assert run_cli(*plan_args(files), *outputs).exit_code == 0
    sup.write_text("old suppressed\n")
    old = {p: p.read_bytes() for p in (out, sidecar(out), sup, rej)}
    files["customers"].write_text(files["customers"].read_text().replace("C2", "C3"))
    immutable(rej)
    result = run_cli(*plan_args(files), *outputs)
    assert result.exit_code == 2, result.output
    assert f"{rej}: Operation not permitted" in result.output
    assert f"written: {sup}; not written, left as they were: {rej}, {out}" in result.output
    assert sup.read_bytes() == BOM.encode("utf-8") + b"customer_id,rule,reason\n"  # the new one
    assert {p: p.read_bytes() for p in (out, sidecar(out), rej)} == {
        p: old[p] for p in (out, sidecar(out), rej)
    }
    assert read_plan_header(out)["plan_sha256"] == hashlib.sha256(old[out]).hexdigest()
    assert staging_folders(tmp_path) == []


@pytest.mark.parametrize("which", ["plan", "header"])
def test_a_plan_that_cannot_be_replaced_keeps_the_old_plan_and_its_header(
    run_cli, tmp_path, immutable, which
):
    """The old header was deleted before the plan's rename: when the rename failed, the old plan
    was left without a header. Now it is moved aside and put back."""
    files = shop(tmp_path)
    out = tmp_path / "plan.jsonl"
    assert run_cli(*plan_args(files), "--out", out).exit_code == 0
    old = out.read_bytes(), sidecar(out).read_bytes()
    files["customers"].write_text(files["customers"].read_text().replace("C2", "C3"))
    immutable(out if which == "plan" else sidecar(out))
    result = run_cli(*plan_args(files), "--out", out)
    assert result.exit_code == 2, result.output
    assert "Operation not permitted; nothing was written (every output is as it was)" in (
        result.output
    )
    assert (out.read_bytes(), sidecar(out).read_bytes()) == old
    assert read_plan_header(out) == json.loads(old[1])
    assert staging_folders(tmp_path) == []


@pytest.mark.parametrize(
    "first, second",
    [
        (("--out", "Plan.jsonl"), ("--suppressed", "plan.jsonl")),
        (("--suppressed", "S.CSV"), ("--rejects", "s.csv")),
        (("--out", "p.jsonl"), ("--rejects", "P.JSONL.META.JSON")),
        (("--out", "stra\u00dfe.csv"), ("--rejects", "STRASSE.csv")),
        (("--out", "caf\u00e9.csv"), ("--rejects", "cafe\u0301.csv")),  # NFC and NFD
    ],
)
def test_outputs_whose_names_differ_only_in_letter_case_are_refused(
    run_cli, tmp_path, first, second
):
    """On a file system that ignores case the two names are one file, and neither exists yet,
    so no inode tells: both were staged under one name and the plan held the suppressed rows."""
    files = shop(tmp_path)
    before = snapshot(tmp_path)
    result = run_cli(
        *plan_args(files), first[0], tmp_path / first[1], second[0], tmp_path / second[1]
    )
    assert result.exit_code == 2, result.output
    assert "differ only in letter case" in result.output
    assert snapshot(tmp_path) == before


def test_outputs_in_different_folders_may_share_a_name(run_cli, tmp_path):
    files = shop(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    outputs = ["--out", tmp_path / "a" / "x.csv", "--suppressed", tmp_path / "b" / "X.csv"]
    assert run_cli(*plan_args(files), *outputs).exit_code == 0


@pytest.mark.parametrize("name", ["plan.csv", "plan.jsonl"])
def test_a_replaced_output_keeps_its_permissions(run_cli, tmp_path, name):
    """`chmod 600 plan.csv` made the plan private; a rerun made it readable by all again."""
    files = shop(tmp_path)
    out, sup = tmp_path / name, tmp_path / "s.csv"
    outputs = ["--out", out, "--suppressed", sup]
    assert run_cli(*plan_args(files), *outputs).exit_code == 0
    default = stat.S_IMODE(out.stat().st_mode)
    assert default == 0o666 & ~current_umask()
    modes = {out: 0o600, sidecar(out): 0o640, sup: 0o604}
    for path, mode in modes.items():
        path.chmod(mode)
    files["customers"].write_text(files["customers"].read_text().replace("C2", "C3"))
    assert run_cli(*plan_args(files), *outputs).exit_code == 0
    assert {p: stat.S_IMODE(p.stat().st_mode) for p in modes} == modes
    assert read_plan_header(out)["customers"] == 2


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def mounted(folder: Path, options: str):
    """A tmpfs of its own at `folder` (a small disk, a read-only one), unmounted at the end."""
    folder.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True
    )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_csv_output_needs_no_room_on_disk_beyond_its_own_size(run_cli, tmp_path):
    """The byte order mark was added by copying the whole file: a CSV needed twice its size
    on disk, and a disk with room for the plan failed with 'No space left on device'."""
    big = big_shop(tmp_path, "C", 12_000)
    reference = tmp_path / "reference.csv"
    args = ["plan", "--rules", big["rules"], "--customers", big["customers"], "--as-of", AS_OF]
    assert run_cli(*args, "--out", reference).exit_code == 0
    size = reference.stat().st_size
    assert size > 300_000
    with mounted(tmp_path / "disk", f"size={size + 64 * 1024}") as disk:
        out = disk / "plan.csv"
        result = run_cli(*args, "--out", out)
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == reference.read_bytes()
        assert out.read_bytes().startswith(BOM.encode("utf-8"))


def test_a_read_only_file_system_is_named_as_such(run_cli, tmp_path):
    files = shop(tmp_path)
    with mounted(tmp_path / "ro", "ro,size=64k") as disk:
        result = run_cli(*plan_args(files), "--out", disk / "plan.csv")
    assert result.exit_code == 2
    assert "cannot write in this folder (read-only file system)" in result.output


# ---------------------------------------------------------------- temporary files


def test_a_planted_symlink_at_the_old_temporary_name_is_never_followed(run_cli, tmp_path):
    """The plan used to be written to `.NAME.PID.tmp` beside it, a name anyone could predict:
    DuckDB followed a link planted there. Now the name is unpredictable and private."""
    files = shop(tmp_path)
    victim = tmp_path / "victim.txt"
    for name in ("plan.jsonl", "plan.jsonl.meta.json", "s.csv"):
        (tmp_path / f".{name}.{os.getpid()}.tmp").symlink_to(victim)
    result = run_cli(
        *plan_args(files), "--out", tmp_path / "plan.jsonl", "--suppressed", tmp_path / "s.csv"
    )
    assert result.exit_code == 0, result.output
    assert not victim.exists()
    assert staging_folders(tmp_path) == []
    assert read_plan_header(tmp_path / "plan.jsonl")["actions"] == 1


def test_a_failed_write_leaves_every_output_as_it_was_and_no_temporary_files(tmp_path):
    plan, suppressed = tmp_path / "p.jsonl", tmp_path / "s.csv"
    plan.write_text("old plan\n")
    sidecar(plan).write_text("old header\n")
    suppressed.write_text("old suppressed\n")
    before = snapshot(tmp_path)
    con = duckdb.connect()
    outputs = Outputs([], {"--out": plan, "--suppressed": suppressed}, plan="--out")
    good = "SELECT 'C1' AS customer_id, 1.5 AS cost"
    with pytest.raises(DataError, match="column cost holds inf"):  # met after --out was staged
        outputs.write(con, {"--out": good, "--suppressed": "SELECT 'inf'::DOUBLE AS cost"}, {})
    with pytest.raises(duckdb.Error, match="boom"):  # any other failure while writing
        outputs.write(con, {"--out": good, "--suppressed": "SELECT error('boom') AS x"}, {})
    assert snapshot(tmp_path) == before


TEXT = {"capture_output": True, "text": True, "check": True}
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_stale_temporary_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **TEXT)
    dead = int(finished.stdout)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    holder = None
    try:
        stale = tmp_path / f"{STAGING}{dead}-abc123_x"
        live = tmp_path / f"{STAGING}{sleeper.pid}-abc123_y"
        held = tmp_path / f"{STAGING}{dead}-abc123_z"  # a process in another pid namespace
        for folder in (stale, live, held):
            folder.mkdir(mode=0o700)
            (folder / "plan.jsonl.part").write_text("half a plan")
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(held)], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout.readline() == "locked\n"
        victim = tmp_path / "victim"
        victim.mkdir()
        (victim / "keep").write_text("keep")
        (tmp_path / f"{STAGING}{dead}-abc123_l").symlink_to(victim)
        (tmp_path / f"{STAGING}{dead}-abc123_f").write_text("a file, not ours")

        assert remove_stale(tmp_path) == [stale]
        assert not stale.exists() and live.exists() and held.exists()
        assert (victim / "keep").read_text() == "keep"
        assert (tmp_path / f"{STAGING}{dead}-abc123_f").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
        if holder is not None:
            holder.kill()
            holder.wait()


def test_the_next_write_in_a_folder_removes_what_a_killed_run_left(run_cli, tmp_path):
    files = shop(tmp_path)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **TEXT)
    stale = tmp_path / f"{STAGING}{int(finished.stdout)}-abc123_x"
    stale.mkdir(mode=0o700)
    (stale / "plan.jsonl.part").write_text("half a plan")
    assert run_cli(*plan_args(files), "--out", tmp_path / "plan.jsonl").exit_code == 0
    assert staging_folders(tmp_path) == []


# ---------------------------------------------------------------- the plan and its header


@pytest.mark.parametrize("name", ["plan.jsonl", "plan.csv", "plan.parquet"])
def test_the_header_carries_the_plans_digest_and_reruns_are_byte_identical(
    run_cli, tmp_path, name
):
    files = shop(tmp_path)
    out = tmp_path / name
    assert run_cli(*plan_args(files), "--out", out).exit_code == 0
    first = out.read_bytes(), sidecar(out).read_bytes()
    header = json.loads(first[1])
    assert header["plan_sha256"] == hashlib.sha256(first[0]).hexdigest()
    assert header["format_version"] == 3
    assert read_plan_header(out) == header
    assert run_cli(*plan_args(files), "--out", out).exit_code == 0
    assert (out.read_bytes(), sidecar(out).read_bytes()) == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(name)) == [
        name,
        f"{name}.lock",
        f"{name}.meta.json",
    ]


def test_the_reader_refuses_a_plan_without_its_own_header(run_cli, tmp_path):
    files = shop(tmp_path)
    out, other = tmp_path / "plan.jsonl", tmp_path / "other.jsonl"
    assert run_cli(*plan_args(files), "--out", out).exit_code == 0
    files["customers"].write_text(files["customers"].read_text().replace("C2", "C3"))
    assert run_cli(*plan_args(files), "--out", other).exit_code == 0
    with open_plan(out) as verified:
        assert verified.file.read() == out.read_bytes()

    def reason() -> str:
        with pytest.raises(UnverifiedPlan) as error:
            read_plan_header(out)
        return error.value.reason

    header = sidecar(out).read_bytes()
    shutil.copy(sidecar(other), sidecar(out))  # another run's header
    assert reason() == "mismatch"
    sidecar(out).write_bytes(header)
    out.write_bytes(out.read_bytes().replace(b"C2", b"C9"))  # the plan edited by hand
    assert reason() == "mismatch"
    shutil.copy(other, out)
    shutil.copy(sidecar(other), sidecar(out))
    assert read_plan_header(out) == json.loads(sidecar(other).read_bytes())
    sidecar(out).write_text(json.dumps({"plan_sha256": float("nan")}))  # Python writes NaN
    assert reason() == "bad header"
    sidecar(out).write_text(json.dumps({"plan_id": "x"}))  # a format_version 1 header
    assert reason() == "bad header"
    sidecar(out).unlink()
    assert reason() == "no header"
    out.unlink()
    assert reason() == "unreadable"


def test_a_plan_is_read_whole_even_when_a_new_one_replaces_it(run_cli, tmp_path):
    files = shop(tmp_path)
    out = tmp_path / "plan.jsonl"
    assert run_cli(*plan_args(files), "--out", out).exit_code == 0
    first = out.read_bytes()
    with open_plan(out) as verified:
        files["customers"].write_text(files["customers"].read_text().replace("C2", "C3"))
        assert run_cli(*plan_args(files), "--out", out).exit_code == 0
        assert verified.file.read() == first != out.read_bytes()


def reading(out: Path) -> tuple[str | None, bool]:
    """read_plan_header in a thread: (its UnverifiedPlan reason or None, whether it returned within
    ten seconds). A hang must fail the test, not hang the suite."""
    found: list[str | None] = []

    def read() -> None:
        try:
            read_plan_header(out)
            found.append(None)
        except UnverifiedPlan as error:
            found.append(error.reason)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    return (found[0] if found else None), not thread.is_alive()


@pytest.mark.parametrize(
    "planted, reason",
    [("fifo", "unreadable"), ("link to /dev/zero", "unreadable"), ("2 MB file", "bad header")],
)
def test_a_header_that_is_not_a_small_file_is_refused_without_hanging(
    run_cli, tmp_path, planted, reason
):
    """A FIFO at the header's name hung the reader forever (holding the shared lock, so every
    writer waited too); a link to /dev/zero filled the memory."""
    files = shop(tmp_path)
    out = tmp_path / "plan.jsonl"
    assert run_cli(*plan_args(files), "--out", out).exit_code == 0
    header = sidecar(out)
    header.unlink()
    if planted == "fifo":
        os.mkfifo(header)
    elif planted == "link to /dev/zero":
        header.symlink_to("/dev/zero")
    else:
        header.write_text(json.dumps({"plan_sha256": "0" * 64, "pad": "x" * 2_000_000}))
    assert reading(out) == (reason, True)


def test_reading_a_plan_never_creates_its_lock_file(run_cli, tmp_path):
    """A reader may read a plan in a folder it may not write in: it opens the lock file if there
    is one, and never makes one."""
    files = shop(tmp_path)
    out = tmp_path / "plan.jsonl"
    assert run_cli(*plan_args(files), "--out", out).exit_code == 0
    lock_file(out).unlink()
    assert read_plan_header(out)["actions"] == 1
    with open_plan(out) as verified:
        assert verified.file.read() == out.read_bytes()
    assert not lock_file(out).exists()


TRICKY = st.sampled_from(list('"\\:,-NIaN{}[]x上\n'))  # what JSON text and the rewrite are made of
NASTY_TEXT = st.text(
    alphabet=TRICKY | st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**60), 2**60)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.tuples(NASTY_TEXT, NUMBERS | NASTY_TEXT), min_size=1, max_size=6))
def test_json_text_columns_never_hold_nan_or_infinity(items):
    """The rejects' `record` is DuckDB's to_json of the row, which spells a non-finite number
    NaN, Infinity or -Infinity: not JSON. Such numbers are written as strings, and nothing else
    (quoted text that reads `NaN` included) changes."""
    fields = {f"k{i}_{key}": value for i, (key, value) in enumerate(items)}
    sql = ", ".join(f"{ident(k)} := {value_sql(v)}" for k, v in fields.items())
    query = f"SELECT 1 AS row, CAST(to_json(struct_pack({sql})) AS VARCHAR) AS record"
    folder = Path(tempfile.mkdtemp())
    try:
        for name in ("r.jsonl", "r.csv", "r.parquet"):
            out = folder / name
            Outputs([], {"r": out}, json_text={"r": ["record"]}).write(CON, {"r": query})
            (record,) = CON.execute(f"SELECT record FROM {literal(str(out))}").fetchone()
            parsed = json.loads(undefuse(record), parse_constant=refuse_constant)
            assert parsed == {k: expected_json(v) for k, v in fields.items()}
    finally:
        shutil.rmtree(folder)


def value_sql(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"CAST({literal(str(value))} AS DOUBLE)"
    return literal(value)


def expected_json(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[str(value)]
    return value


def refuse_constant(name: str) -> object:
    raise AssertionError(f"{name} in JSON")


def test_the_rejects_record_of_a_parquet_row_with_nan_is_json(run_cli, tmp_path):
    files = shop(tmp_path)
    customers = tmp_path / "c.parquet"
    duckdb.execute(f"""COPY (SELECT * REPLACE (CASE WHEN customer_id = 'C2'
            THEN CAST('nan' AS DOUBLE) ELSE CAST(spend_12m AS DOUBLE) END AS spend_12m,
            CASE WHEN customer_id = 'C2' THEN 'soon' ELSE first_order_date END
            AS first_order_date), CAST('-inf' AS DOUBLE) AS extra
        FROM read_csv({literal(str(files["customers"]))}))
        TO {literal(str(customers))}""")
    for name in ("r.jsonl", "r.csv"):
        result = run_cli(
            "plan", "--rules", files["rules"], "--customers", customers, "--as-of", AS_OF,
            "--rejects", tmp_path / name,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        query = f"SELECT record FROM {literal(str(tmp_path / name))}"
        (record,) = duckdb.execute(query).fetchone()
        parsed = json.loads(undefuse(record), parse_constant=refuse_constant)
        assert parsed["customer_id"] == "C2" and parsed["extra"] == "-Infinity"
        assert parsed["spend_12m"] == "NaN"


def big_shop(folder: Path, prefix: str, n: int) -> dict[str, Path]:
    files = {"rules": write_rules(folder / "rules", RULES)}
    files["customers"] = folder / f"{prefix}.csv"
    duckdb.execute(f"""
        COPY (SELECT '{prefix}' || lpad(CAST(i AS VARCHAR), 7, '0') AS customer_id,
                {", ".join(f"'' AS {c}" for c in COLUMNS[1:7])},
                0 AS orders_12m, 0 AS spend_12m, 0 AS total_orders,
                TRUE AS sms_opt_in, TRUE AS email_opt_in, '' AS last_contacted
              FROM range({n}) r(i)) TO '{files["customers"]}' (HEADER)""")
    return files


def command(files: dict[str, Path], out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "retentionrules",
        "plan",
        "--rules",
        str(files["rules"]),
        "--customers",
        str(files["customers"]),
        "--as-of",
        AS_OF,
        "--out",
        str(out),
    ]


def check_pair(out: Path, pairs: dict[bytes, bytes]) -> str:
    """What is on disk is a whole plan with its own header, or a whole plan without a header
    (or nothing yet); never a torn plan, never a plan beside another run's header. The reader
    agrees. Returns which state it was."""
    plan = out.read_bytes() if out.exists() else None
    header = sidecar(out).read_bytes() if sidecar(out).exists() else None
    assert plan is None or plan in pairs, "a torn or foreign plan file"
    if header is None:
        with pytest.raises(UnverifiedPlan):
            read_plan_header(out)
        return "no plan" if plan is None else "plan without header"
    assert plan is not None and pairs[plan] == header, "a plan beside another run's header"
    assert read_plan_header(out) == json.loads(header)
    return "pair"


def spawn(files: dict[str, Path], out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command(files, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_for(predicate, processes: list[subprocess.Popen], limit: float = 30.0) -> bool:
    """Poll until `predicate()` holds or every process has ended; True if it held."""
    deadline = time.monotonic() + limit
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.0003)
    return False


def writing(folder: Path, prefixes: tuple[str, ...]) -> bool:
    """One of the runs has made its staging folder: it is writing its outputs."""
    return any(name.startswith(prefixes) for name in os.listdir(folder))


def committing(out: Path, inode: int | None, had_header: bool) -> bool:
    """A run has begun to commit its plan: the old header is gone, or the plan replaced."""
    if had_header and not sidecar(out).exists():
        return True
    try:
        return out.stat().st_ino != inode
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def racing_shops(tmp_path_factory):
    """Two shops whose plans differ, and the plan and header each writes when left alone."""
    folder = tmp_path_factory.mktemp("race")
    shops = [big_shop(folder / "a", "A", 3_000), big_shop(folder / "b", "B", 2_500)]
    pairs: dict[bytes, bytes] = {}
    durations = []
    for files in shops:
        out = folder / f"reference-{files['customers'].stem}.jsonl"
        start = time.monotonic()
        subprocess.run(command(files, out), check=True, capture_output=True)
        durations.append(time.monotonic() - start)
        pairs[out.read_bytes()] = sidecar(out).read_bytes()
    return shops, pairs, max(durations)


def test_kill_9_at_any_instant_never_leaves_a_torn_plan(racing_shops, tmp_path):
    """Seeded kills of the real command, three runs at a time on one --out (inputs alternating):
    at random instants of the whole run, at random instants once one starts writing, or all at
    the moment one begins to commit (the old header just removed, or the plan just renamed)."""
    shops, pairs, duration = racing_shops
    rng = random.Random(8)
    out = tmp_path / "plan.jsonl"
    seen: set[str] = set()
    for batch in range(8):
        processes = [spawn(shops[(batch + k) % 2], out) for k in range(3)]
        prefixes = tuple(f"{STAGING}{p.pid}-" for p in processes)
        moment = batch % 3
        if moment == 0:
            begun = time.monotonic()
            instants = sorted(rng.uniform(0, 1.5 * duration) for _ in processes)
            for process, instant in zip(processes, instants, strict=True):
                time.sleep(max(0.0, begun + instant - time.monotonic()))
                process.kill()
        else:
            if moment == 1:
                wait_for(functools.partial(writing, tmp_path, prefixes), processes)
            else:
                inode = out.stat().st_ino if out.exists() else None
                had_header = sidecar(out).exists()
                wait_for(functools.partial(committing, out, inode, had_header), processes)
            for process in processes:
                if moment == 1:
                    time.sleep(rng.uniform(0, 0.03))
                process.kill()
        for process in processes:
            process.wait(timeout=60)
        seen.add(check_pair(out, pairs))
        left = staging_folders(tmp_path)
        assert all(stat.S_IMODE((tmp_path / n).stat().st_mode) == 0o700 for n in left)
    assert "plan without header" in seen, seen  # the kills did land inside a commit
    subprocess.run(command(shops[0], out), check=True, capture_output=True)
    assert check_pair(out, pairs) == "pair"
    assert staging_folders(tmp_path) == []  # what the killed runs left is cleaned up


def test_ctrl_c_while_writing_leaves_no_temporary_files(racing_shops, tmp_path):
    """SIGINT the moment the run's private folder appears: even there (the folder made, its name
    not yet known to the run) it is removed, and the run exits 130."""
    shops, pairs, _ = racing_shops
    out = tmp_path / "plan.jsonl"
    process = spawn(shops[0], out)
    assert wait_for(functools.partial(writing, tmp_path, (f"{STAGING}{process.pid}-",)), [process])
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert staging_folders(tmp_path) == []
    assert check_pair(out, pairs) in ("no plan", "plan without header", "pair")


def test_sigterm_while_writing_cleans_up_like_ctrl_c_and_exits_143(racing_shops, tmp_path):
    """SIGTERM (`timeout`, a CI cancel) ended the run silently with 143 and left its private
    folder behind until the next run in that folder."""
    shops, _, _ = racing_shops
    out = tmp_path / "plan.csv"
    suppressed = tmp_path / "s.csv"
    process = subprocess.Popen(
        [*command(shops[0], out), "--suppressed", str(suppressed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert wait_for(functools.partial(writing, tmp_path, (f"{STAGING}{process.pid}-",)), [process])
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == "retentionrules: terminated"
    assert staging_folders(tmp_path) == []


def test_sigterm_inside_a_query_exits_143_not_as_an_internal_error(racing_shops, tmp_path):
    """DuckDB reports the signal as its own interruption: still 143. Whenever the signal comes, the
    plan is absent or whole with its header; a run that had finished may still die of it while
    Python shuts down (-15)."""
    shops, _, duration = racing_shops
    rng = random.Random(143)
    for attempt in range(3):
        out = tmp_path / f"plan{attempt}.jsonl"
        process = subprocess.Popen(
            command(shops[1], out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        time.sleep(rng.uniform(0.3, max(0.4, duration * 0.8)))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert "Traceback" not in err and "internal error" not in err, err
        assert staging_folders(tmp_path) == []
        if out.exists() or process.returncode in (0, -signal.SIGTERM):
            assert read_plan_header(out)["customers"] == 2_500  # it had been written
        if process.returncode in (0, -signal.SIGTERM):
            continue
        assert process.returncode == 143, err
        assert err.strip().splitlines()[-1] == "retentionrules: terminated"


def test_two_runs_racing_to_one_out_leave_a_consistent_pair(racing_shops, tmp_path):
    """Different inputs, one --out, twice over; a reader polling meanwhile always gets a
    whole plan with its own header: it waits on the lock while a run commits."""
    shops, pairs, _ = racing_shops
    out = tmp_path / "plan.jsonl"
    plan, header = next(iter(pairs.items()))  # start from a finished pair, as a run leaves it
    out.write_bytes(plan)
    sidecar(out).write_bytes(header)
    # with its lock file: without one a reader goes without the lock (a plan in a folder it may
    # not write in), and a writer that creates it meanwhile can then make the read fail
    lock_file(out).touch()
    reads = 0
    for _ in range(2):
        processes = [
            subprocess.Popen(command(files, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for files in shops
        ]
        while any(p.poll() is None for p in processes):
            with open_plan(out) as verified:
                assert json.loads(pairs[verified.file.read()]) == verified.header
            reads += 1
            time.sleep(0.002)  # a reader, not a lock hog: writers wait for a gap
        for process in processes:
            assert process.wait() == 0, process.stderr.read()
        assert check_pair(out, pairs) == "pair"
    assert reads > 3
    assert staging_folders(tmp_path) == []


# ---------------------------------------------------------------- safe to open


HOSTILE_IDS = ["=1+1", "+1", "-1", "@SUM(A1)", "'quoted", "上海客户", "plain"]
BALANCE = 'balance = "number"\n'


def hostile_shop(tmp_path: Path) -> dict[str, Path]:
    config = (ROOT / "examples" / "retentionrules.toml").read_text(encoding="utf-8")
    config = config.replace('last_contacted = "date"\n', f'last_contacted = "date"\n{BALANCE}')
    rules = RULES + "rule other\n  when total_orders = 0\n  then send y via email\n"
    folder = write_rules(tmp_path / "rules", rules, config)
    rows = [customer(i, balance=-5) for i in HOSTILE_IDS]
    rows[0].update(city="\tTAB", category="\rCR")
    rows[1].update(city="上海", category="=cmd|' /C calc'!A0")
    rows.append(customer("=bad", spend_12m="lots", balance=1))
    customers = write_csv(tmp_path / "customers.csv", rows, [*COLUMNS, "balance"])
    settings = folder / "retentionrules.toml"
    return {"rules": folder, "customers": customers, "configuration": settings}


def read_csv(path: Path) -> list[dict[str, str]]:
    """How a program reads our CSV back: strip the BOM, strip one leading `'` of each cell."""
    raw = path.read_bytes()
    assert raw.startswith(BOM.encode("utf-8"))
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_outputs_have_a_bom_and_defuse_formula_cells(run_cli, tmp_path):
    files = hostile_shop(tmp_path)
    common = ["--customers", files["customers"], "--as-of", AS_OF, "--rejects"]
    plan = run_cli(
        "plan",
        "--rules",
        files["rules"],
        *common,
        tmp_path / "rejects.csv",
        "--out",
        tmp_path / "plan.csv",
        "--suppressed",
        tmp_path / "suppressed.csv",
    )
    assert plan.exit_code == 0, plan.output
    score = run_cli(
        "score",
        "--config",
        files["configuration"],
        *common,
        tmp_path / "score-rejects.csv",
        "--out",
        tmp_path / "score.csv",
    )
    assert score.exit_code == 0, score.output

    planned = read_csv(tmp_path / "plan.csv")
    assert [r["customer_id"] for r in planned] == [defuse(i) for i in HOSTILE_IDS]
    assert [undefuse(r["customer_id"]) for r in planned] == HOSTILE_IDS
    assert planned[0]["customer_id"] == "'=1+1" and planned[4]["customer_id"] == "''quoted"
    assert {r["estimated_cost"] for r in planned} == {"0.02"}
    suppressed = read_csv(tmp_path / "suppressed.csv")
    assert sorted(undefuse(r["customer_id"]) for r in suppressed) == sorted(HOSTILE_IDS)
    assert {r["customer_id"] for r in suppressed} >= {"'=1+1", "'@SUM(A1)", "''quoted"}
    scored = {undefuse(r["customer_id"]): r for r in read_csv(tmp_path / "score.csv")}
    assert scored["=1+1"]["city"] == "'\tTAB" and scored["=1+1"]["category"] == "'\rCR"
    assert scored["+1"]["city"] == "上海" and scored["+1"]["category"].startswith("'=cmd")
    for row in scored.values():  # numbers are never touched
        assert row["balance"].startswith("-") and float(row["balance"]) == -5
    for name in ("rejects.csv", "score-rejects.csv"):
        (rejected,) = read_csv(tmp_path / name)
        assert rejected["row"] == "8" and json.loads(rejected["record"])["customer_id"] == "=bad"


@pytest.mark.parametrize("name", ["plan.jsonl", "plan.parquet"])
def test_json_lines_and_parquet_are_written_unchanged(run_cli, tmp_path, name):
    files = hostile_shop(tmp_path)
    out = tmp_path / name
    result = run_cli(
        "plan",
        "--rules",
        files["rules"],
        "--customers",
        files["customers"],
        "--as-of",
        AS_OF,
        "--rejects",
        tmp_path / "r.jsonl",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert not out.read_bytes().startswith(BOM.encode("utf-8"))
    ids = [r[0] for r in duckdb.sql(f"SELECT customer_id FROM '{out}'").fetchall()]
    assert ids == HOSTILE_IDS


def test_an_empty_csv_output_has_its_bom_and_header(tmp_path):
    con = duckdb.connect()
    for name, expected in [("e.csv", BOM.encode() + b"customer_id,n\n"), ("e.jsonl", b"")]:
        Outputs([], {"o": tmp_path / name}).write(
            con, {"o": "SELECT 'x' AS customer_id, 1 AS n WHERE false"}
        )
        assert (tmp_path / name).read_bytes() == expected


@pytest.mark.parametrize("first", ["customer_id", "a,b", 'say "hi"', "two\nlines", "上海"])
def test_a_csv_starts_with_its_mark_whatever_its_first_column_is_called(tmp_path, first):
    """DuckDB writes the mark as the start of the first column's name; a name it puts in quotes
    would put a quote first, so the mark then goes in front of the file in place (here over more
    than one block of the in-place move)."""
    con = duckdb.connect()
    query = f"SELECT 'C' || i AS {ident(first)}, i AS n FROM range(150000) t(i)"
    out = tmp_path / "o.csv"
    Outputs([], {"o": out}).write(con, {"o": query})
    plain = tmp_path / "plain.csv"
    con.execute(f"COPY ({query}) TO {literal(str(plain))} (FORMAT CSV, HEADER)")
    assert plain.stat().st_size > 1 << 20
    assert out.read_bytes() == BOM.encode("utf-8") + plain.read_bytes()
    assert read_csv(out)[0] == {first: "C0", "n": "0"}


@pytest.mark.parametrize("kind", ["DOUBLE", "FLOAT"])
def test_non_finite_numbers_never_reach_an_output(tmp_path, kind):
    con = duckdb.connect()
    for name in ("o.jsonl", "o.csv", "o.parquet"):
        for value in ("nan", "inf", "-inf"):
            query = f"SELECT 'C1' AS customer_id, CAST('{value}' AS {kind}) AS spend UNION ALL "
            query += "SELECT 'C2', NULL"
            with pytest.raises(DataError, match=f"{name}: column spend holds {value}"):
                Outputs([], {"o": tmp_path / name}).write(con, {"o": query})
            assert list(tmp_path.iterdir()) == []


def test_json_we_print_never_holds_nan_or_infinity():
    assert json_text({"cost": 1.5, "name": "上海"}) == '{\n  "cost": 1.5,\n  "name": "上海"\n}'
    with pytest.raises(OutputError, match=r"rules\[1\].cost = inf"):
        json_text({"rules": [{"cost": 1.0}, {"cost": float("inf")}]})


def test_a_score_that_overflows_is_never_written(run_cli, tmp_path):
    """Weights near the largest double make rfm_score infinite. Whether the configuration is
    refused (exit 2) or the write is (exit 1), no file may carry Infinity."""
    config = (ROOT / "examples" / "retentionrules.toml").read_text(encoding="utf-8")
    config = config.replace("weights = { recency = 1,", "weights = { recency = 1e308,")
    settings = tmp_path / "retentionrules.toml"
    settings.write_text(config, encoding="utf-8")
    rows = [customer("C1", last_order_date="2026-11-01", orders_12m=1, total_orders=1)]
    customers = write_csv(tmp_path / "customers.csv", rows)
    for name in ("s.jsonl", "s.csv"):
        result = run_cli(
            "score", "--customers", customers, "--config", settings, "--as-of", AS_OF,
            "--out", tmp_path / name,
        )
        assert result.exit_code in (1, 2), result.output
        assert not (tmp_path / name).exists()


texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


CON = duckdb.connect()


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            texts,
            st.integers(-(2**62), 2**62),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=12,
    )
)
def test_csv_cells_read_back_exactly_after_stripping_one_quote(rows):
    folder = Path(tempfile.mkdtemp())
    try:
        con = CON
        con.execute("CREATE OR REPLACE TABLE t (i INTEGER, s VARCHAR, n BIGINT, x DOUBLE)")
        for i, row in enumerate(rows):
            con.execute("INSERT INTO t VALUES (?, ?, ?, ?)", [i, *row])
        out = folder / "t.csv"
        Outputs([], {"o": out}).write(con, {"o": "SELECT s, n, x FROM t ORDER BY i"})
        got = read_csv(out)
        assert [undefuse(r["s"]) for r in got] == [s for s, _, _ in rows]
        for cell, (text, number, real) in zip(got, rows, strict=True):
            assert not cell["s"].startswith(("=", "+", "-", "@", "\t", "\r"))
            assert int(cell["n"]) == number and float(cell["x"]) == real  # untouched numbers
            assert cell["s"] == text or cell["s"] == "'" + text
    finally:
        shutil.rmtree(folder)


def test_defuse_marks_exactly_the_formula_prefixes_and_quote():
    for text in ["=A1", "+1", "-1", "@x", "\tx", "\rx", "'x", "''"]:
        assert defuse(text) == "'" + text and undefuse(defuse(text)) == text
    for text in ["", "a=1", " =1", "上海", "{}", "1", "\nx"]:
        assert defuse(text) == text and undefuse(defuse(text)) == text


# ---------------------------------------------------------------- fmt rewriting rule files

UNFORMATTED = "rule a\n  when   total_orders=0\n  then send x via email\n"
FORMATTED = "rule a\n  when total_orders = 0\n  then send x via email\n"


def test_fmt_keeps_the_rule_files_permissions(run_cli, tmp_path):
    folder = write_rules(tmp_path / "rules", UNFORMATTED)
    rule_file = folder / "r.rules"
    rule_file.chmod(0o640)
    assert run_cli("fmt", folder).exit_code == 0
    assert rule_file.read_text() == FORMATTED
    assert stat.S_IMODE(rule_file.stat().st_mode) == 0o640
    assert sorted(p.name for p in folder.iterdir()) == ["r.rules", "retentionrules.toml"]


def test_fmt_rewrites_the_file_a_symlinked_rule_file_points_to_and_keeps_the_link(
    run_cli, tmp_path
):
    shared = write_rules(tmp_path / "shared", UNFORMATTED) / "r.rules"
    shared.chmod(0o604)
    project = tmp_path / "project"
    project.mkdir()
    (project / "retentionrules.toml").write_text("")
    link = project / "shared.rules"
    link.symlink_to(shared)
    assert run_cli("fmt", project).exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(shared)
    assert shared.read_text() == FORMATTED and stat.S_IMODE(shared.stat().st_mode) == 0o604
    assert staging_folders(shared.parent) == [] and staging_folders(project) == []


def test_fmt_never_follows_a_link_planted_at_a_temporary_name(run_cli, tmp_path):
    """`fmt` used to write `.NAME.tmp` beside the rule file, following a link planted there."""
    folder = write_rules(tmp_path / "rules", UNFORMATTED)
    victim = tmp_path / "victim.txt"
    (folder / ".r.rules.tmp").symlink_to(victim)
    assert run_cli("fmt", folder).exit_code == 0
    assert not victim.exists() and (folder / "r.rules").read_text() == FORMATTED


def test_fmt_leaves_another_users_rule_file_in_a_sticky_folder_alone():
    """Writable by all, but in a sticky folder only its owner may replace it: refused up front,
    with a message, rather than failing at the rename."""
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o1777)
        theirs = base / "r.rules"
        theirs.write_text(UNFORMATTED)
        theirs.chmod(0o666)
        message = as_nobody(lambda: replace_text(theirs, FORMATTED, UNFORMATTED.encode()))
        assert "rule file" in message and "belongs to another user" in message, message
        assert "have its owner format it" in message
        assert theirs.read_text() == UNFORMATTED and staging_folders(base) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("name", ["", ".", "..", "/"])
def test_an_output_that_names_a_folder_is_a_usage_error_not_an_internal_error(
    run_cli, tmp_path, name
):
    files = shop(tmp_path)
    result = run_cli(*plan_args(files), "--out", name)
    assert result.exit_code == 2 and "names a folder, not a file" in result.output
    scored = run_cli("score", "--customers", files["customers"], "--out", name)
    assert scored.exit_code == 2 and "names a folder, not a file" in scored.output


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=6))
def test_csv_defusing_in_sql_is_defuse_for_any_text(text):
    """The SQL that defuses every CSV text cell agrees with `defuse`, first characters beyond
    ASCII and empty text included: a formula cell can never reach a spreadsheet by one path."""
    con = duckdb.connect()
    (shown,) = con.execute(f"SELECT {_defused_sql('CAST($1 AS VARCHAR)')}", [text]).fetchone()
    assert shown == defuse(text)
