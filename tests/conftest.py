"""Shared helpers: the repository's folders and a CLI runner that returns exit code and output."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from retentionrules.cli import app

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture
def run_cli():
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return result

    return run
