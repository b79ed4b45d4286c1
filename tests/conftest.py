"""Shared helpers: the repository's folders and a CLI runner that returns exit code and output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retentionrules.cli import app

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"


def pytest_sessionstart(session: pytest.Session) -> None:
    """The tests plan the demo shop as a fresh checkout has it: without a contact ledger. The
    README's send demo writes one beside examples/retentionrules.toml; say so rather than fail
    in a hundred places with different plans."""
    ledgers = sorted(ROOT.glob("*/retentionrules-ledger.sqlite*"))
    if ledgers:
        names = ", ".join(str(p.relative_to(ROOT)) for p in ledgers)
        pytest.exit(f"remove {names} (left by trying `send` on the demo shop) and run again", 2)


@pytest.fixture
def run_cli():
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return result

    return run


COLUMNS = [
    "customer_id",
    "household_id",
    "city",
    "category",
    "birthday",
    "first_order_date",
    "last_order_date",
    "orders_12m",
    "spend_12m",
    "total_orders",
    "sms_opt_in",
    "email_opt_in",
    "last_contacted",
]
BLANK = dict.fromkeys(COLUMNS, "")


def customer(customer_id: str, **fields) -> dict:
    """A row of the standard customer export; unspecified fields are empty (missing)."""
    row = {
        **BLANK,
        "customer_id": customer_id,
        "orders_12m": "0",
        "spend_12m": "0",
        "total_orders": "0",
        "sms_opt_in": "true",
        "email_opt_in": "true",
    }
    row.update(
        {
            k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in fields.items()
        }
    )
    return row


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_rules(folder: Path, text: str, config: str | None = None) -> Path:
    """A rule folder with its own configuration (the defaults when `config` is None)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "retentionrules.toml").write_text(config or "", encoding="utf-8")
    (folder / "r.rules").write_text(text, encoding="utf-8")
    return folder


def git(folder: Path, *args: str) -> None:
    """Run git in `folder` as a user with a name (commits need one), failing loudly."""
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


# TOML nested thousands deep, as arrays and as inline tables: readers must not recurse on it.
DEEP_TOML = pytest.mark.parametrize(
    "value",
    ["[" * 5000 + "]" * 5000, "{ a = " * 5000 + "1" + " }" * 5000],
    ids=["arrays", "inline tables"],
)
