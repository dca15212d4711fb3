"""The project's documentation stands on its own: a short README, pages of its own, no pointer outside the
repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTES = re.compile(r"(CLAP_METHOD|STATISTICS|OPEN_WORLD|CONVENTIONS)\.md|\.\./shared")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / n for n in names if Path(n).suffix in {".md", ".py", ".yaml", ".yml", ".toml", ".sh", ".txt", ""}
            and (ROOT / n).is_file()]


def test_no_project_file_points_at_notes_users_do_not_have():
    found = [str(p.relative_to(ROOT)) for p in tracked_text_files()
             if p.name != "test_docs.py" and NOTES.search(p.read_text(encoding="utf-8", errors="ignore"))]
    assert found == []


def test_the_readme_holds_what_a_newcomer_needs_and_points_at_the_rest():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    assert "make demo" in readme and "make test" in readme and "make docs" in readme
    pointed = re.findall(r"`((?:docs|experiments/\w+|benchmarks)/[\w/]*\.md)`", readme)
    assert len(pointed) >= 10 and [p for p in pointed if not (ROOT / p).is_file()] == []


def test_every_docs_page_is_in_the_site():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert pages and [p for p in pages if f": {p}" not in config] == []
