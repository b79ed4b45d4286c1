"""Nothing a user sees cites files they do not have: the domain is in the project's own words
(docs/playbook.md), never in DOMAIN.md, PRODUCT.md, seed files or a shared folder of the team
that writes retentionrules."""

from __future__ import annotations

import re

from .conftest import ROOT

CITED = re.compile(r"DOMAIN\.md|PRODUCT\.md|\bseeds?(\.md|/)|\.\./shared|\bshared/")
# What users see: the docs, the starter rules and the demo shop, the package (its comments and
# docstrings), the hooks and workflow they copy, the packaging they install from.
SEEN = ["README.md", "docs", "rules", "examples", "retentionrules", "bench",
        ".pre-commit-hooks.yaml", "pyproject.toml"]  # fmt: skip
SUFFIXES = {".md", ".py", ".rules", ".toml", ".yaml", ".yml", ".lark", ".csv"}


def test_nothing_users_see_cites_files_they_do_not_have():
    found = []
    for name in SEEN:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in files:
            if path.is_file() and (path.suffix in SUFFIXES or path == top):
                text = path.read_text(encoding="utf-8", errors="replace")
                for number, line in enumerate(text.splitlines(), 1):
                    if CITED.search(line):
                        found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_playbook_the_docs_point_to_exists():
    assert (ROOT / "docs" / "playbook.md").is_file()
    assert "docs/playbook.md" in (ROOT / "rules" / "retentionrules.toml").read_text("utf-8")
