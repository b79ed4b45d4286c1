"""Outputs: no input is ever overwritten, a plan and its header are one unit, temporary files are
private and never left behind, and every file is safe to open (CSV with a byte order mark and
defused formula cells; never NaN or Infinity)."""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
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
    defuse,
    json_text,
    open_plan,
    read_plan_header,
    refuse_aliases,
    remove_stale,
    sidecar,
    undefuse,
)

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
    assert header["format_version"] == 2
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


def test_two_runs_racing_to_one_out_leave_a_consistent_pair(racing_shops, tmp_path):
    """Different inputs, one --out, twice over; a reader polling meanwhile always gets a
    whole plan with its own header: it waits on the lock while a run commits."""
    shops, pairs, _ = racing_shops
    out = tmp_path / "plan.jsonl"
    plan, header = next(iter(pairs.items()))  # start from a finished pair
    out.write_bytes(plan)
    sidecar(out).write_bytes(header)
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

