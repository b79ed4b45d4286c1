#!/usr/bin/env python3
"""Benchmark: the standard job's `plan`, end to end, beside its peers in one run (bench/JOB.md).

usage: python bench/plan_speed.py [--rows N] [--repeat K] [--slow-repeat K] [--skip-slow]

Peers, each a fresh process on the same generated CSV, timed as wall clock with its peak memory:
  retentionrules   retentionrules plan (check, load + validate, derive, plan, write plan + header)
  duckdb-sql       the job hand-written as one DuckDB query (standard_job/handwritten.sql)
  reference        standard_job/reference_job.py, the job in plain Python
  rule-engine      standard_job/rule_engine_job.py, a per-record rules library
                   (pip install rule-engine)
Every peer's rows are compared with the reference's. Ratios are ours / peer, from medians.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOB = HERE / "standard_job"
AS_OF = "2026-11-22"


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{process.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024


def rows_of(path: Path, action_column: str) -> set[tuple[str, ...]]:
    with path.open(newline="") as handle:
        return {
            (r["customer_id"], r["rule"], r[action_column], r["channel"])
            for r in csv.DictReader(handle)
        }


def peers(customers: Path, work: Path) -> dict[str, tuple[list[str], Path, str]]:
    sql = (JOB / "handwritten.sql").read_text().replace("$CUSTOMERS", str(customers))
    sql = sql.replace("$OUT", str(work / "duckdb.csv"))
    (work / "job.sql").write_text(sql)
    python = sys.executable
    return {
        "retentionrules": (
            [
                python,
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
                str(work / "ours.csv"),
                "--format",
                "json",
            ],
            work / "ours.csv",
            "template",
        ),
        "duckdb-sql": (
            [
                python,
                "-c",
                "import duckdb, sys; duckdb.connect().execute(open(sys.argv[1]).read())",
                str(work / "job.sql"),
            ],
            work / "duckdb.csv",
            "action",
        ),
        "reference": (
            [python, str(JOB / "reference_job.py"), str(customers), str(work / "reference.csv")],
            work / "reference.csv",
            "action",
        ),
        "rule-engine": (
            [
                python,
                str(JOB / "rule_engine_job.py"),
                str(customers),
                str(work / "rule_engine.csv"),
            ],
            work / "rule_engine.csv",
            "action",
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9, help="runs of the fast peers")
    parser.add_argument("--slow-repeat", type=int, default=1, help="runs of the Python peers")
    parser.add_argument("--skip-slow", action="store_true", help="leave out rule-engine")
    args = parser.parse_args()
    data = HERE / "data"
    data.mkdir(exist_ok=True)
    customers = data / f"customers_{args.rows}.csv"
    if not customers.exists():
        subprocess.run(
            [sys.executable, JOB / "gen_customers.py", str(args.rows), str(customers)], check=True
        )
    results: dict[str, tuple[float, float, int]] = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        jobs = peers(customers, work)
        if args.skip_slow:
            jobs.pop("rule-engine")
        slow = {"reference", "rule-engine"}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in jobs}
        # Peers take turns within each round, so drift in the machine's speed hits all alike.
        for round_ in range(max(args.repeat, args.slow_repeat)):
            for name, (command, _, _) in jobs.items():
                if round_ < (args.slow_repeat if name in slow else args.repeat):
                    runs[name].append(run(command))
                    seconds = runs[name][-1][0]
                    print(f"  round {round_ + 1} {name}: {seconds:.2f} s", file=sys.stderr)
        for name, timings in runs.items():
            results[name] = (
                statistics.median(t for t, _ in timings),
                max(m for _, m in timings),
                len(timings),
            )
        truth = rows_of(jobs["reference"][1], "action")
        agree = {name: rows_of(out, column) == truth for name, (_, out, column) in jobs.items()}
    ours = results["retentionrules"][0]
    print(
        f"standard job, {args.rows:,} customers, {len(truth):,} actions; "
        f"medians of the runs shown; {os.cpu_count()} cores"
    )
    print(f"{'peer':<16}{'runs':>5}{'median s':>10}{'peak MB':>9}{'ours/peer':>11}  same rows")
    for name, (seconds, memory, repeat) in results.items():
        print(
            f"{name:<16}{repeat:>5}{seconds:>10.2f}{memory:>9.0f}{ours / seconds:>11.2f}  "
            f"{'yes' if agree[name] else 'NO'}"
        )


if __name__ == "__main__":
    main()
