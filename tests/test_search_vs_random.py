"""benchmarks/search_vs_random.py's figure, drawn after every search: it must draw while only
the first algorithm has a finished search, and with both."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def search_vs_random() -> ModuleType:
    return load_benchmark("search_vs_random")


@pytest.mark.parametrize("algorithms", [["bayesian"], ["bayesian", "random"]])
def test_the_figure_draws_the_searches_finished_so_far(
    search_vs_random: ModuleType, algorithms: list[str], tmp_path: Path
) -> None:
    searches = [
        {"algorithm": algorithm, "seed": 1, "best_so_far": [0.09, 0.06, 0.06, 0.05]}
        for algorithm in algorithms
    ]
    out = tmp_path / "figure.png"
    search_vs_random.draw(searches, out)
    with Image.open(out) as image:
        assert image.width > 300 and image.height > 200
