"""`dvc plots diff` writes a page that works offline, checked in a real headless Chromium.

The page comes from this checkout's committed plots (cache: false files in git) in a temporary
repository: branch main, and a workspace whose confusion matrix has a few more errors.
"""

from __future__ import annotations

import collections
import csv
import importlib.util
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from digits import vega_bundle
from tests.helpers import REPO, copy_project, read_yaml, require, run

CONFUSION = "plots/evaluate/confusion.csv"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # No network at all: any request that is not for a local file fails, and fails loudly.
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
)  # fmt: skip


def test_the_committed_page_template_is_what_the_generator_writes() -> None:
    committed = (REPO / vega_bundle.TEMPLATE).read_text(encoding="utf-8")
    assert committed == vega_bundle.render_page(), "stale: run `make plots-template`"
    assert "{plot_divs}" in committed and "{scripts}" not in committed


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium (Debian's chromium + chromium-driver) under Selenium, fresh profile."""
    require(importlib.util.find_spec("selenium") is not None, "needs selenium (the dev extra)")
    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    require(
        browser is not None and driver_path is not None,
        "needs Chromium: apt-get install chromium chromium-driver",
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        try:
            yield driver
        finally:
            driver.quit()


def open_plots_page(driver: Any, page: Path) -> dict[str, Any]:
    """Load `page`, wait for every Vega render the page started, and describe what it shows."""
    driver.set_script_timeout(60)
    driver.get(page.as_uri())  # returns after the load event: images have loaded or failed
    return driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const results = await Promise.allSettled(window.vegaEmbedResults || []);
        const plots = {};
        for (const div of document.querySelectorAll("body > div[id]")) {
          plots[div.id] = {
            marks: div.querySelectorAll("svg.marks, canvas.marks").length,
            texts: Array.from(div.querySelectorAll("g.role-mark text"), t => t.textContent),
            greyCells: div.querySelectorAll('g.mark-rect.role-mark path[fill="#d9d9d9"]').length,
            images: Array.from(div.querySelectorAll("img"), i => i.complete ? i.naturalWidth : 0),
          };
        }
        done({
          embeds: results.map(r => r.status === "fulfilled" ? "ok" : String(r.reason)),
          plots: plots,
          resources: performance.getEntriesByType("resource").map(e => e.name),
        });
        """
    )


def cell_counts(table: str) -> collections.Counter[tuple[str, str]]:
    rows = csv.DictReader(io.StringIO(table))
    return collections.Counter((row["actual"], row["predicted"]) for row in rows)


def div_id(title: str) -> str:
    """dvc_render's element id for a plot: its title with every non-alphanumeric as `_`."""
    return "".join(c if c.isalnum() else "_" for c in title)


@pytest.fixture(scope="module")
def diff_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`dvc plots diff main` (plain, as a user types it) after 6 more test errors in the
    workspace; returns the repository and the page."""
    repo = copy_project(tmp_path_factory.mktemp("plots") / "repo", tiny=False)
    rows = (repo / CONFUSION).read_text().splitlines()
    changed = 0
    for index, row in enumerate(rows[1:], start=1):
        actual, predicted = row.split(",")
        if actual == predicted and changed < 6:
            rows[index] = f"{actual},{(int(actual) + 1 + changed % 2) % 10}"
            changed += 1
    (repo / CONFUSION).write_text("\n".join(rows) + "\n")
    run(repo, "dvc", "plots", "diff", "main", "-o", "diff")
    return repo, repo / "diff" / "index.html"


@pytest.mark.e2e
def test_every_declared_plot_has_data_in_both_revisions(diff_page: tuple[Path, Path]) -> None:
    """DVC draws an empty chart for a plot whose file is missing, so the page alone cannot tell."""
    repo, _ = diff_page
    loaded = json.loads(run(repo, "dvc", "plots", "diff", "main", "--json"))
    assert loaded.get("errors", []) == []
    declared = read_yaml(repo / "dvc.yaml")["plots"]
    for entry in declared:
        if isinstance(entry, dict):
            title = next(iter(entry))
            revisions = [rev for render in loaded["data"][title] for rev in render["revisions"]]
            assert sorted(revisions) == ["main", "workspace"], title


@pytest.mark.e2e
@pytest.mark.browser
def test_the_plots_diff_page_renders_every_plot_offline(diff_page: tuple[Path, Path]) -> None:
    repo, page = diff_page
    html = page.read_text(encoding="utf-8")
    assert "cdn.jsdelivr" not in html and "<script src" not in html

    with chromium() as driver:
        shown = open_plots_page(driver, page)
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    assert all(url.startswith("file://") for url in shown["resources"]), shown["resources"]

    declared = read_yaml(repo / "dvc.yaml")["plots"]
    vega_ids = [div_id(next(iter(entry))) for entry in declared if isinstance(entry, dict)]
    assert shown["embeds"] == ["ok"] * len(vega_ids)
    for plot in vega_ids:
        assert shown["plots"][plot]["marks"] == 1, plot

    image_files = [
        path
        for entry in declared
        if isinstance(entry, str)
        for path in ([repo / entry] if entry.endswith(".png") else (repo / entry).rglob("*.png"))
    ]
    images = [width for plot in shown["plots"].values() for width in plot["images"]]
    assert len(images) == 2 * len(image_files)  # each image of both revisions
    assert all(width > 0 for width in images), images

    # The confusion matrix writes every non-empty cell's count, for both revisions, and greys
    # the 10 diagonal cells of each.
    confusion = shown["plots"][div_id("Confusion matrix (test set)")]
    main_cells = cell_counts(run(repo, "git", "show", f"main:{CONFUSION}"))
    workspace_cells = cell_counts((repo / CONFUSION).read_text())
    assert main_cells != workspace_cells
    expected = sorted(str(n) for n in [*main_cells.values(), *workspace_cells.values()])
    assert sorted(confusion["texts"]) == expected
    assert confusion["greyCells"] == 20
