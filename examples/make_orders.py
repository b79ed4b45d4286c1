#!/usr/bin/env python3
"""Make the demo shop's orders export (order lines) and product catalogue from its customer
export, so that the orders agree with the export's order columns: each customer's number of
orders, first and last order date, orders and spend in the last 12 months before 2026-11-22.

usage: python examples/make_orders.py   (writes examples/orders.csv and examples/products.csv)

Deterministic (a fixed seed): the files in the repository are its output.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
AS_OF = dt.date(2026, 11, 22)
WINDOW_START = dt.date(2025, 11, 22)  # 12 months before the as-of date, inclusive

# sku, category, days one unit lasts, warranty days, unit price (yuan)
PRODUCTS = [
    ("FORMULA-900G", "formula", 15, None, 238.0),
    ("DIAPERS-L-60", "diapers", 20, None, 129.0),
    ("TISSUE-24", "tissue", 30, None, 49.9),
    ("DETERGENT-2L", "detergent", 45, None, 39.9),
    ("KETTLE-17", "small_appliances", None, 365, 159.0),
    ("AIRCON-15", "large_appliances", None, 1095, 2899.0),
    ("FRIDGE-300", "large_appliances", None, 1095, 3599.0),
    ("TSHIRT-M", "apparel", None, None, 79.0),
    ("JACKET-L", "apparel", None, None, 399.0),
    ("PAINT-5L", "building", None, None, 268.0),
    ("TILE-60", "building", None, None, 35.0),
    ("FAUCET-01", "building", None, 730, 189.0),
]
BY_DEPARTMENT = {
    "consumables": ["FORMULA-900G", "DIAPERS-L-60", "TISSUE-24", "DETERGENT-2L"],
    "appliances": ["KETTLE-17", "AIRCON-15", "FRIDGE-300", "TISSUE-24"],
    "apparel": ["TSHIRT-M", "JACKET-L", "TISSUE-24"],
    "building": ["PAINT-5L", "TILE-60", "FAUCET-01"],
}
CATEGORY = {sku: category for sku, category, *_ in PRODUCTS}


def dates(rng: random.Random, first: dt.date, last: dt.date, total: int, recent: int) -> list:
    """`total` order dates from `first` to `last` (both included when total > 1), `recent` of
    them inside the 12-month window."""
    if total == 1:
        return [first]
    inside = [d for d in (first, last) if d >= WINDOW_START]
    outside = [d for d in (first, last) if d < WINDOW_START]
    chosen = [first, last]
    need_in, need_out = recent - len(inside), (total - recent) - len(outside)

    def pick(low: dt.date, high: dt.date, n: int) -> list:
        span = (high - low).days
        return [low + dt.timedelta(days=rng.randint(0, max(span, 0))) for _ in range(n)]

    if need_in > 0:
        chosen += pick(max(first, WINDOW_START), last, need_in)
    if need_out > 0:
        chosen += pick(first, min(last, WINDOW_START - dt.timedelta(days=1)), need_out)
    return sorted(chosen)


def lines_of(rng: random.Random, department: str, amount: float) -> list[tuple[str, int, float]]:
    """One order's lines: 1 to 3 products of the customer's department, the amount split."""
    skus = rng.sample(BY_DEPARTMENT[department], k=min(rng.randint(1, 3), 3))
    weights = [rng.uniform(0.5, 1.5) for _ in skus]
    shares = [round(amount * w / sum(weights), 2) for w in weights]
    shares[-1] = round(amount - sum(shares[:-1]), 2)
    return [(sku, rng.randint(1, 4), share) for sku, share in zip(skus, shares, strict=True)]


def main() -> None:
    rng = random.Random(20261122)
    with (HERE / "customers.csv").open(encoding="utf-8") as handle:
        customers = list(csv.DictReader(handle))
    rows = []
    number = 0
    for customer in customers:
        total = int(customer["total_orders"])
        if total == 0:
            continue
        first = dt.date.fromisoformat(customer["first_order_date"])
        last = dt.date.fromisoformat(customer["last_order_date"])
        recent = int(customer["orders_12m"])
        spend = float(customer["spend_12m"])
        when = dates(rng, first, last, total, recent)
        inside = [d for d in when if d >= WINDOW_START]
        # the window's spend split over its orders; older orders at list prices
        cents = round(spend * 100)
        splits = sorted(rng.sample(range(1, cents), len(inside) - 1)) if len(inside) > 1 else []
        bounds = zip([0, *splits], [*splits, cents], strict=True)
        parts = [b - a for a, b in bounds] if inside else []
        amounts = iter(p / 100 for p in parts)
        for day in when:
            number += 1
            amount = next(amounts) if day >= WINDOW_START else round(rng.uniform(50, 600), 2)
            for sku, quantity, share in lines_of(rng, customer["category"], amount):
                rows.append(
                    [f"O{number:06d}", customer["customer_id"], day.isoformat(), sku,
                     CATEGORY[sku], quantity, f"{share:.2f}"]
                )
    with (HERE / "orders.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["order_id", "customer_id", "order_date", "sku", "category", "quantity",
                         "amount"])
        writer.writerows(rows)
    with (HERE / "products.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["sku", "category", "days_per_unit", "warranty_days"])
        for sku, category, days, warranty, _price in PRODUCTS:
            writer.writerow([sku, category, days or "", warranty or ""])


if __name__ == "__main__":
    main()
