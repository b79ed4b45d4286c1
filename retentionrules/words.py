"""Wording shared by messages and summaries, so that every count reads as English does."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """`1 row`, `2 rows`, `0 rows`: a count with its noun in the right number."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"
