#!/usr/bin/env python3
"""Benchmark: `check` of a generated 1,000-rule file, and `retentionrules --help` start-up.

usage: python bench/check_speed.py [--rules N] [--repeat K]

Targets: check of 1,000 rules under 1 s; --help under 0.3 s. Prints medians of K runs,
wall time of the whole command as a user sees it (a fresh process each run).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONDITIONS = [
    "stage = {stage} and tier >= {tier}",
    'days_since_last_order between {a} and {b} and city = "{city}"',
    "birthday within {a} days and tier in [S, G, P]",
    'spend_12m >= {money} and orders_12m > {a} or category starts with "app"',
    "last_order_date before {b} days ago and not email_opt_in",
    "avg_order_value * 2 > {money} and total_orders != 1",
]


def generate(count: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    parts = ["segment best = tier >= G\n"]
    for i in range(count):
        condition = rng.choice(CONDITIONS).format(
            stage=rng.choice(["active", "silent", "sleeping", "lost"]),
            tier=rng.choice("BSGP"),
            a=rng.randrange(1, 30),
            b=rng.randrange(31, 400),
            city=rng.choice(["Shanghai", "上海", "Beijing"]),
            money=rng.randrange(100, 3000),
        )
        channel = rng.choice(["sms", "email"])
        parts.append(
            f'rule r{i:04d} "generated rule {i}"\n  when {condition} and best\n'
            f"  then send offer_{i % 17} via {channel} with amount = {i % 50}\n"
            f"  priority {rng.randrange(0, 100)}\n  cap 1 per {rng.randrange(1, 30)} days\n"
        )
    return "\n".join(parts)


def median_seconds(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    exe = [sys.executable, "-m", "retentionrules"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.rules"
        path.write_text(generate(args.rules), encoding="utf-8")
        check = median_seconds([*exe, "check", str(path)], args.repeat)
        run = subprocess.run(
            [*exe, "check", str(path)], capture_output=True, text=True, check=False
        )
        fmt = median_seconds([*exe, "fmt", "--check", str(path)], args.repeat)
    help_time = median_seconds([*exe, "--help"], args.repeat)
    print(f"{'measure':<36}{'median s':>10}{'target s':>10}")
    print(f"{f'check, {args.rules} rules':<36}{check:>10.3f}{1.0:>10.1f}")
    print(f"{f'fmt --check, {args.rules} rules':<36}{fmt:>10.3f}{'-':>10}")
    print(f"{'retentionrules --help':<36}{help_time:>10.3f}{0.3:>10.1f}")
    last = (run.stdout.strip() or run.stderr.strip()).splitlines()[-1:]
    print(f"(check exit code {run.returncode}; it said: {' '.join(last)})")


if __name__ == "__main__":
    main()
