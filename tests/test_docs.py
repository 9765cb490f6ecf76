"""Every repository path the README, docs/ and benchmarks/README.md cite exists, so a reader who
follows one finds the file; and the pages stay about the product (no tracker references)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted(REPO.glob("docs/*.md"))]
# What the pipeline and the tools write, never committed (.gitignore lists them).
GENERATED = ("data/", "models/", "review/", "dvc_plots/", "benchmarks/work/", ".dvc/config.local")
EXTENSIONS = (".py", ".json", ".png", ".csv", ".yaml", ".md", ".lock", ".toml", ".html", ".npz")
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def cited_paths(page: Path) -> set[str]:
    """Relative link targets, and backticked words that look like files or folders, outside
    fenced code blocks (commands there name files the commands write)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    links = {target.split("#")[0] for target in LINK.findall(text)}
    words = {word for word in CODE.findall(text) if "/" in word or word.endswith(EXTENSIONS)}
    return {
        path
        for path in links | words
        if path
        and "://" not in path
        and not path.startswith(("~", "-", "#", "mailto:"))
        and path not in EXTENSIONS
        and not re.search(r"[<>{}*$=|\[\]]", path)
        and (path.endswith(EXTENSIONS) or path.endswith("/") or "/" in path)
    }


def exists(path: str, page: Path) -> bool:
    if path.removeprefix("./").startswith(GENERATED):
        return True
    return any((base / path.rstrip("/")).exists() for base in (REPO, page.parent))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_cited_path_exists(page: Path) -> None:
    missing = sorted(path for path in cited_paths(page) if not exists(path, page))
    assert not missing, f"{page.relative_to(REPO)} cites paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_pages_cite_no_tracker_issue_numbers(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    found = re.findall(r"(?<![\w/])#\d+\b", text)
    assert not found, f"{page.relative_to(REPO)} cites issue numbers {found}: say what they mean"


def test_readme_is_one_page() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"README.md has {lines} lines; move detail to docs/ (at most 200)"
