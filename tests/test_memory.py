"""Plans bigger than the memory they are given: `--memory-limit` caps the engine, what does not
fit is spilled into a folder of the run's own and removed after, and running out is an error
that says what to do. The plan is the same, limited or not."""

import os
import subprocess
import sys

import pytest

from retentionrules.engine import run_plan
from retentionrules.errors import UsageError
from retentionrules.loader import Inputs, Resources, connect

from .conftest import ROOT

JOB = ROOT / "bench" / "standard_job"
AS_OF = "2026-11-22"


@pytest.fixture(scope="module")
def customers(tmp_path_factory):
    """100,000 customers of the standard job: about 25 MB in DuckDB, more than the limits below."""
    path = tmp_path_factory.mktemp("memory") / "customers.csv"
    subprocess.run([sys.executable, JOB / "gen_customers.py", "100000", path], check=True)
    return path


def test_a_plan_under_a_memory_limit_spills_into_its_own_folder_and_is_the_same_plan(
    customers, tmp_path
):
    free = tmp_path / "free.csv"
    run_plan([JOB], Inputs(customers), AS_OF, out=free, use_ledger=False)
    spill = tmp_path / "spill"
    spill.mkdir()
    limited = tmp_path / "limited.csv"
    result = run_plan(
        [JOB],
        Inputs(customers),
        AS_OF,
        out=limited,
        use_ledger=False,
        resources=Resources("24MB", spill),
    )
    assert limited.read_bytes() == free.read_bytes()
    con = result.plan.con
    spilled = [
        row[0] for row in con.execute("SELECT path FROM duckdb_temporary_files()").fetchall()
    ]
    assert spilled, "24 MB is less than the plan's tables: some must be on disk"
    (folder,) = spill.iterdir()
    assert folder.name.startswith("retentionrules-spill-")
    assert folder.stat().st_mode & 0o777 == 0o700, "spilled rows hold customer ids: private"
    assert all(path.startswith(str(folder)) for path in spilled)
    con.close()
    assert not any(folder.iterdir()), "DuckDB removes what it spilled when the run ends"


def test_a_run_leaves_nothing_in_its_temp_dir(customers, tmp_path):
    """The console script, start to end: spill folder and all gone when the process ends."""
    spill = tmp_path / "spill"
    spill.mkdir()
    done = subprocess.run(
        [
            sys.executable, "-m", "retentionrules", "plan", "--rules", JOB, "--customers",
            customers, "--as-of", AS_OF, "--no-ledger", "--memory-limit", "24MB",
            "--temp-dir", spill, "--out", tmp_path / "plan.csv",
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not any(spill.iterdir())


def test_a_temp_dir_that_cannot_be_written_is_a_usage_error(customers, tmp_path, run_cli):
    """Not blamed on the input: the spill folder is made before any row is read. /proc is a
    folder in which no one, root included, can make one."""
    out = tmp_path / "plan.csv"
    result = run_cli(
        "plan", "--rules", JOB, "--customers", customers, "--as-of", AS_OF, "--no-ledger",
        "--temp-dir", "/proc", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--temp-dir /proc: cannot make a folder there to spill into" in result.output
    assert "bad data" not in result.output and not out.exists()


def test_running_out_of_memory_is_an_error_that_names_the_option(customers, tmp_path, run_cli):
    out = tmp_path / "plan.csv"
    result = run_cli(
        "plan",
        "--rules",
        JOB,
        "--customers",
        customers,
        "--as-of",
        AS_OF,
        "--no-ledger",
        "--memory-limit",
        "8MB",
        "--out",
        out,
    )
    assert result.exit_code == 2, result.output
    assert "out of memory" in result.output and "--memory-limit" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("size", ["lots", "4", "-1GB", "4 GB please", "", "0GB", "0.0MB"])
def test_a_memory_limit_is_a_size(size, run_cli):
    result = run_cli("plan", "--rules", JOB, "--customers", JOB / "x.csv", "--memory-limit", size)
    assert result.exit_code == 2
    assert "--memory-limit: expected a size such as 4GB" in result.output


def test_a_temp_dir_must_be_a_folder(tmp_path):
    with pytest.raises(UsageError, match="no such folder"):
        Resources("1GB", tmp_path / "missing")
    with pytest.raises(UsageError, match="expected Resources"):
        run_plan([JOB], Inputs(JOB / "x.csv"), AS_OF, resources="1GB")  # type: ignore[arg-type]


def test_a_written_plan_releases_the_exports_unless_asked_to_keep_them(tmp_path):
    """What lowers the peak: once the plan is built, writing it reuses the exports' memory. A
    notebook that wants the derived fields after asks to keep them."""
    shop = ROOT / "examples"
    inputs = Inputs(shop / "customers.csv")
    written = run_plan([shop / "rules"], inputs, AS_OF, out=tmp_path / "a.csv", use_ledger=False)
    tables = {row[0] for row in written.plan.con.execute("SHOW TABLES").fetchall()}
    assert "customers" not in tables and "derived" not in tables
    assert written.plan.con.execute("SELECT count(*) FROM planned").fetchone()[0] > 0
    kept = run_plan(
        [shop / "rules"],
        inputs,
        AS_OF,
        out=tmp_path / "b.csv",
        use_ledger=False,
        keep_derived=True,
    )
    assert kept.plan.con.execute("SELECT count(*) FROM derived").fetchone()[0] == 300
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_a_memory_limit_beyond_what_duckdb_counts_is_a_usage_error(run_cli):
    result = run_cli(
        "plan", "--rules", JOB, "--customers", JOB / "job.rules", "--memory-limit", "999999999999TB"
    )
    assert result.exit_code == 2 and "--memory-limit 999999999999TB:" in result.output
    assert "internal error" not in result.output


def test_a_killed_runs_spill_folder_is_removed_by_the_next_run(tmp_path):
    """SIGKILL leaves a run's spill folder (rows with customer ids) behind: the next run in the
    same --temp-dir removes it, and leaves a running one's alone."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = tmp_path / f"retentionrules-spill-{finished.pid}-abc123"
    live = tmp_path / f"retentionrules-spill-{os.getpid()}-def456"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "duckdb_temp_storage-0.tmp").write_bytes(b"C0000001")
    connect(Resources(None, tmp_path)).close()
    assert not dead.exists() and live.exists()


def test_a_killed_runs_rows_folder_is_removed_by_the_next_run_that_makes_one(
    tmp_path, monkeypatch
):
    """Rows on their way (Spark's staged plan, a re-read file) sit in a private folder that a
    run killed with SIGKILL leaves behind: the next run that makes one removes it (not a
    running process's), and removes its own when done."""
    import tempfile

    from retentionrules import loader

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    loader._sweep.cache_clear()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = tmp_path / f"retentionrules-rows-{finished.pid}-abc123"
    live = tmp_path / f"retentionrules-rows-{os.getpid()}-def456"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "part-00000.parquet").write_bytes(b"C0000001")
    with loader.private_folder() as own:
        assert own.stat().st_mode & 0o777 == 0o700
        assert not dead.exists() and live.exists()
    assert not own.exists()
    loader._sweep.cache_clear()
