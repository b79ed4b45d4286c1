#!/usr/bin/env python3
"""Benchmark: the standard job's `plan`, paired run by run with each of its peers (bench/JOB.md).

usage: python bench/plan_speed.py [--rows N] [--pairs K] [--skip-slow] [--out-json FILE]

Every command is a fresh process on the same generated CSV. For each peer P the script runs
`retentionrules plan` (A) and P (B) in turn, A B A B ..., K pairs, so drift in the machine's
speed hits both alike, and reports per peer: the median wall time of each side, the median of
the per-pair ratios A/B and their spread (min-max), the peak resident memory from the OS
(ru_maxrss from os.wait4 of the child: the largest process of the child's tree, here the child
itself) and user+sys CPU seconds. Peers:
  duckdb-sql       the job hand-written as one DuckDB query (standard_job/handwritten.sql)
  polars           the job hand-written as one lazy Polars query (standard_job/polars_job.py)
  csv-read-floor   DuckDB reading and typing every column of the file, nothing else
  reference        standard_job/reference_job.py, the job in plain Python (slow: one pair)
  rule-engine      standard_job/rule_engine_job.py, a per-record rules library (slow: one pair)
Every peer's rows are compared with the reference's (which runs even with --skip-slow, untimed).

Start-up is measured apart: `plan` of the first 1,000 customers of the same file, paired with
`python -c "import duckdb"`, its floor.

Before timing, the retentionrules package is byte-compiled (`python -m compileall`): an editable
install under PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module at every start.
Needs `pip install -e '.[bench]'` (polars, rule-engine). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOB = HERE / "standard_job"
AS_OF = "2026-11-22"
STARTUP_ROWS = 1_000
QUIET_LOAD = 0.5  # a 1-minute load average below this before the run counts as a quiet machine
PLAN = "retentionrules plan"
SLOW = ("reference", "rule-engine")


@dataclass
class Run:
    """One child process: wall seconds, peak resident MB, user and system CPU seconds."""

    wall: float
    peak_mb: float
    user: float
    sys: float

    @property
    def cpu(self) -> float:
        return self.user + self.sys


@dataclass
class Peer:
    name: str
    label: str  # for the README table
    command: list[str]
    out: Path | None  # its rows, compared with the reference's
    action_column: str = "action"


def run(command: list[str]) -> Run:
    """Run one child process to its end; its wall time, and its resources from os.wait4."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    assert process.stderr is not None
    errors = process.stderr.read().decode()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{errors}")
    # ru_maxrss is in KiB on Linux.
    return Run(elapsed, usage.ru_maxrss / 1024, usage.ru_utime, usage.ru_stime)


def paired(a: list[str], b: list[str], pairs: int, name: str) -> list[tuple[Run, Run]]:
    """A B A B ...: `pairs` runs of each command in turn."""
    result = []
    for index in range(pairs):
        first, second = run(a), run(b)
        result.append((first, second))
        print(
            f"  {name} pair {index + 1}/{pairs}: plan {first.wall:.3f} s, "
            f"{name} {second.wall:.3f} s, ratio {first.wall / second.wall:.2f}",
            file=sys.stderr,
        )
    return result


def rows_of(path: Path, action_column: str) -> set[tuple[str, ...]]:
    with path.open(newline="") as handle:
        return {
            (r["customer_id"], r["rule"], r[action_column], r["channel"])
            for r in csv.DictReader(handle)
        }


def plan_command(customers: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "retentionrules",
        "plan",
        "--rules",
        str(JOB),
        "--customers",
        str(customers),
        "--as-of",
        AS_OF,
        "--out",
        str(out),
        "--format",
        "json",
    ]


def duckdb_command(sql: str, *parameters: str) -> list[str]:
    """A fresh Python running one DuckDB statement, with its `?` parameters."""
    code = "import duckdb, sys; duckdb.connect().execute(sys.argv[1], sys.argv[2:]).fetchall()"
    return [sys.executable, "-c", code, sql, *parameters]


def peers(customers: Path, work: Path) -> list[Peer]:
    sql = (JOB / "handwritten.sql").read_text().replace("$CUSTOMERS", str(customers))
    sql = sql.replace("$OUT", str(work / "duckdb.csv"))
    python = sys.executable
    return [
        Peer(
            "duckdb-sql",
            "the job hand-written as one DuckDB query",
            duckdb_command(sql),
            work / "duckdb.csv",
        ),
        Peer(
            "polars",
            "the job hand-written as one lazy Polars query",
            [python, str(JOB / "polars_job.py"), str(customers), str(work / "polars.csv")],
            work / "polars.csv",
        ),
        # The floor of reading the file: DuckDB parses and types every column and keeps nothing.
        # count() of each column (not count(*), which DuckDB answers without parsing any column)
        # makes the reader cast every value of all 13 columns, as the plan must to validate them;
        # `CREATE TABLE AS SELECT *` would add building an in-memory table, which is a choice of
        # the job, not a cost of reading. The types are auto-detected, as in handwritten.sql.
        Peer(
            "csv-read-floor",
            "DuckDB reading and typing every column (the CSV read floor)",
            duckdb_command(
                "SELECT count(COLUMNS(*)) FROM read_csv(?, header = true)", str(customers)
            ),
            None,
        ),
        Peer(
            "reference",
            "`reference_job.py` (plain Python)",
            [python, str(JOB / "reference_job.py"), str(customers), str(work / "reference.csv")],
            work / "reference.csv",
        ),
        Peer(
            "rule-engine",
            "`rule-engine` (a per-record rules library)",
            [
                python,
                str(JOB / "rule_engine_job.py"),
                str(customers),
                str(work / "rule_engine.csv"),
            ],
            work / "rule_engine.csv",
        ),
    ]


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def compile_package() -> str:
    """Byte-compile the retentionrules package as an install would; the folder compiled."""
    spec = importlib.util.find_spec("retentionrules")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("retentionrules is not installed: pip install -e '.[bench]'")
    folder = next(iter(spec.submodule_search_locations))
    subprocess.run([sys.executable, "-m", "compileall", "-q", folder], check=True)
    return folder


def median(values: list[float]) -> float:
    return statistics.median(values)


def head(source: Path, target: Path, rows: int) -> None:
    with source.open() as handle, target.open("w") as out:
        out.writelines(itertools.islice(handle, rows + 1))  # the header and `rows` rows


def summarise(pairs: list[tuple[Run, Run]]) -> dict[str, float]:
    ratios = [a.wall / b.wall for a, b in pairs]
    return {
        "plan_s": median([a.wall for a, _ in pairs]),
        "peer_s": median([b.wall for _, b in pairs]),
        "peer_peak_mb": max(b.peak_mb for _, b in pairs),
        "peer_cpu_s": median([b.cpu for _, b in pairs]),
        "ratio": median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="customers (1,000,000)")
    parser.add_argument("--pairs", type=int, default=7, help="pairs per fast peer (7)")
    parser.add_argument(
        "--skip-slow", action="store_true", help="leave the Python peers out of the timings"
    )
    parser.add_argument("--out-json", type=Path, help="write every run's raw figures here")
    args = parser.parse_args()
    if args.pairs < 1 or args.rows < STARTUP_ROWS:
        parser.error(f"--pairs must be at least 1 and --rows at least {STARTUP_ROWS}")

    data = HERE / "data"
    data.mkdir(exist_ok=True)
    customers = data / f"customers_{args.rows}.csv"
    if not customers.exists():
        subprocess.run(
            [sys.executable, JOB / "gen_customers.py", str(args.rows), str(customers)], check=True
        )
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    before = loadavg()
    quiet = before != "unknown" and float(before.split()[0]) < QUIET_LOAD
    compiled = compile_package()
    print(f"byte-compiled {compiled} (python -m compileall -q) before timing", flush=True)
    print(f"load average before: {before}")
    print(f"cores: {cores} ({usable} usable by this process)", flush=True)

    standard: dict[str, list[tuple[Run, Run]]] = {}
    startup: list[tuple[Run, Run]] = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        ours = work / "ours.csv"
        plan = plan_command(customers, ours)
        jobs = peers(customers, work)
        if args.skip_slow:
            # The reference is the oracle every peer's rows are checked against: run it once,
            # untimed.
            reference = next(p for p in jobs if p.name == "reference")
            run(reference.command)
        for peer in jobs:
            if args.skip_slow and peer.name in SLOW:
                continue
            count = 1 if peer.name in SLOW else args.pairs
            standard[peer.name] = paired(plan, peer.command, count, peer.name)

        # Start-up before the rows are compared: holding them grows this process by hundreds of
        # MB, and Linux carries a parent's peak into a child's ru_maxrss (fork, then exec), so
        # every later child would show at least that peak.
        small = work / f"customers_{STARTUP_ROWS}.csv"
        head(customers, small, STARTUP_ROWS)
        floor = [sys.executable, "-c", "import duckdb"]
        startup = paired(plan_command(small, work / "small.csv"), floor, args.pairs, "import")

        truth = rows_of(work / "reference.csv", "action")
        same = {PLAN: rows_of(ours, "template") == truth}
        for peer in jobs:
            if peer.name in standard:
                same[peer.name] = (
                    "n/a" if peer.out is None else rows_of(peer.out, peer.action_column) == truth
                )
    after = loadavg()

    def yes(value: bool | str) -> str:
        return value if isinstance(value, str) else ("yes" if value else "NO")

    plan_runs = [a for pairs in standard.values() for a, _ in pairs]
    labels = {p.name: p.label for p in jobs}
    print()
    print(
        f"standard job, {args.rows:,} customers, {len(truth):,} actions, CSV plan out; "
        f"{args.pairs} pairs per fast peer (the Python peers one pair); "
        f"{dt.date.today().isoformat()}"
    )
    print()
    print(
        table_row(
            [
                "peer",
                "median s",
                "`plan` s in its pairs",
                "peak MB",
                "cpu s",
                "ours / peer (median of pairs)",
                "spread",
                "same rows",
            ]
        )
    )
    print(table_row(["---"] * 8))
    print(
        table_row(
            [
                f"`{PLAN}`",
                f"{median([r.wall for r in plan_runs]):.2f}",
                "—",
                f"{max(r.peak_mb for r in plan_runs):.0f}",
                f"{median([r.cpu for r in plan_runs]):.2f}",
                "1.00",
                "—",
                yes(same[PLAN]),
            ]
        )
    )
    for name, pairs in standard.items():
        figures = summarise(pairs)
        print(
            table_row(
                [
                    labels[name],
                    f"{figures['peer_s']:.2f}",
                    f"{figures['plan_s']:.2f}",
                    f"{figures['peer_peak_mb']:.0f}",
                    f"{figures['peer_cpu_s']:.2f}",
                    f"{figures['ratio']:.2f}",
                    f"{figures['ratio_min']:.2f}-{figures['ratio_max']:.2f}",
                    yes(same[name]),
                ]
            )
        )
    figures = summarise(startup)
    print()
    print(f"start-up: `plan` of the first {STARTUP_ROWS:,} customers, {args.pairs} pairs")
    print()
    print(table_row(["command", "median s", "peak MB", "cpu s", "ours / floor", "spread"]))
    print(table_row(["---"] * 6))
    print(
        table_row(
            [
                f"`{PLAN}`, {STARTUP_ROWS:,} customers",
                f"{figures['plan_s']:.3f}",
                f"{max(a.peak_mb for a, _ in startup):.0f}",
                f"{median([a.cpu for a, _ in startup]):.3f}",
                f"{figures['ratio']:.2f}",
                f"{figures['ratio_min']:.2f}-{figures['ratio_max']:.2f}",
            ]
        )
    )
    print(
        table_row(
            [
                '`python -c "import duckdb"`',
                f"{figures['peer_s']:.3f}",
                f"{figures['peer_peak_mb']:.0f}",
                f"{figures['peer_cpu_s']:.3f}",
                "1.00",
                "—",
            ]
        )
    )
    print()
    print(f"load average before: {before}")
    print(f"load average after:  {after}")
    print(
        f"cores: {cores} ({usable} usable); the machine looked "
        + (
            f"quiet (1-minute load {before.split()[0]} < {QUIET_LOAD} before the run)"
            if quiet
            else f"BUSY (1-minute load {before.split()[0]}, not below {QUIET_LOAD}, before "
            "the run): figures are not those of a quiet machine"
        )
    )
    if args.out_json:
        record = {
            "date": dt.date.today().isoformat(),
            "rows": args.rows,
            "actions": len(truth),
            "pairs": args.pairs,
            "python": sys.version.split()[0],
            "byte_compiled": compiled,
            "cores": cores,
            "usable_cores": usable,
            "loadavg_before": before,
            "loadavg_after": after,
            "quiet": quiet,
            "units": "wall, user and sys in seconds; peak_mb is ru_maxrss / 1024 (MiB)",
            "standard_job": {
                name: {
                    "same_rows": same[name],
                    "pairs": [{"plan": asdict(a), name: asdict(b)} for a, b in pairs],
                }
                for name, pairs in standard.items()
            },
            "plan_same_rows": same[PLAN],
            "startup": {
                "rows": STARTUP_ROWS,
                "pairs": [{"plan": asdict(a), "import duckdb": asdict(b)} for a, b in startup],
            },
        }
        args.out_json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"raw figures: {args.out_json}")


if __name__ == "__main__":
    main()
