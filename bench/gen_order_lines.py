#!/usr/bin/env python3
"""Deterministic synthetic order lines at scale, for the playbook benchmark: N customers
(C0000001 ...), about LINES order lines in all, over the two years before 2026-11-22, with the
demo shop's SKUs (examples/products.csv). Generated inside DuckDB (hash-based, no Python loop),
so that 5,000,000 lines take seconds.

usage: python bench/gen_order_lines.py N LINES OUT.csv
"""

from __future__ import annotations

import sys

import duckdb

from retentionrules.sql import literal

SKUS = [
    ("FORMULA-900G", "formula"),
    ("DIAPERS-L-60", "diapers"),
    ("TISSUE-24", "tissue"),
    ("DETERGENT-2L", "detergent"),
    ("KETTLE-17", "small_appliances"),
    ("AIRCON-15", "large_appliances"),
    ("FRIDGE-300", "large_appliances"),
    ("TSHIRT-M", "apparel"),
    ("JACKET-L", "apparel"),
    ("PAINT-5L", "building"),
    ("TILE-60", "building"),
    ("FAUCET-01", "building"),
]


def main() -> None:
    customers, lines, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    con = duckdb.connect()
    con.execute("CREATE TABLE skus (i INTEGER, sku VARCHAR, category VARCHAR)")
    con.executemany("INSERT INTO skus VALUES (?, ?, ?)", [[i, *s] for i, s in enumerate(SKUS)])
    # Two lines per order on average: order k holds lines 2k and 2k+1 when the hash says so.
    con.execute(
        f"""
        COPY (
          WITH l AS (
            SELECT n, hash(n, 'order') % {max(lines // 2, 1)} AS o FROM range({lines}) t(n)
          )
          SELECT printf('O%09d', o) AS order_id,
                 printf('C%07d', 1 + hash(o, 'customer') % {customers}) AS customer_id,
                 DATE '2026-11-22' - CAST(hash(o, 'day') % 730 AS INTEGER) AS order_date,
                 s.sku, s.category,
                 1 + CAST(hash(n, 'quantity') % 4 AS INTEGER) AS quantity,
                 round(10 + (hash(n, 'amount') % 50000) / 100.0, 2) AS amount
          FROM l JOIN skus s ON s.i = hash(n, 'sku') % {len(SKUS)}
          ORDER BY order_id, n
        ) TO {literal(out)} (HEADER, DELIMITER ',')
        """
    )


if __name__ == "__main__":
    main()
