"""The failures the command line turns into exit codes, kept free of heavy imports so that every
command can catch them without loading DuckDB."""

from __future__ import annotations

from typing import Any


class UsageError(Exception):
    """The caller asked for something that cannot be done (exit code 2)."""


class ConfigProblems(UsageError):
    """A configuration that cannot be used: its problems, each at `retentionrules.toml:LINE:COL`
    with the line and a hint, printed as they are (exit code 2)."""


class DataError(Exception):
    """Bad input data; the message names the file, the row and the column (exit code 1)."""


class OutputError(Exception):
    """The output cannot be written where or how it was asked for (exit code 2)."""


class RuleErrors(Exception):
    """The rules do not check; `report` holds the diagnostics (exit code 1)."""

    def __init__(self, report: Any) -> None:
        super().__init__(f"{report.errors} error(s) in the rules")
        self.report = report


def from_spark(error: BaseException) -> bool:
    """Whether Spark raised `error` (PySpark's exceptions, or Py4J's around a Java one): known
    by module, so that nothing here imports PySpark."""
    return type(error).__module__.split(".")[0] in ("py4j", "pyspark")


def spark_cause(text: str) -> str:
    """The line of a Spark failure that says what went wrong: the deepest `Caused by:` of the
    Java exception (without its class name), not the stack of frames around it."""
    causes = [line for line in text.splitlines() if line.startswith("Caused by: ")]
    line = causes[-1].removeprefix("Caused by: ") if causes else text.strip().split("\n")[0]
    name, sep, message = line.partition(": ")
    return message.strip() if sep and "." in name and " " not in name else line.strip()
