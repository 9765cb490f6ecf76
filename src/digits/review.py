"""An offline review of two revisions: params and metrics diffs, and every plot as a PNG.

`dvc plots diff` writes HTML that loads Vega from a CDN, so it is blank without a network. Here
DVC still computes the diffs, and vl-convert renders its Vega-Lite specs to PNG locally.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import vl_convert

from digits.errors import DigitsError
from digits.files import atomic_path, atomic_write_bytes, atomic_write_text

WORKSPACE = "workspace"


def dvc(*args: str) -> str:
    """Run a DVC command; its failure becomes one clear error."""
    try:
        result = subprocess.run(["dvc", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DigitsError(
            "`dvc` is not on PATH: activate the environment (`source .venv/bin/activate`)"
        ) from None
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise DigitsError(f"`dvc {' '.join(args)}` failed: {detail[-1] if detail else 'no output'}")
    return result.stdout


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def write_review(old: str, new: str | None, out_dir: Path) -> Path:
    """Write `out_dir/README.md` comparing revision `old` with `new` (default: the workspace)."""
    revisions = [old] if new is None else [old, new]
    new_name = new or WORKSPACE
    with atomic_path(out_dir.resolve()) as staging:
        staging.mkdir()
        params = dvc("params", "diff", *revisions, "--md")
        metrics = dvc("metrics", "diff", *revisions, "--md", "--precision", "4")
        plots = json.loads(
            dvc("plots", "diff", *revisions, "--json", "-o", str(staging / "images"))
        )
        sections = [
            f"# Review: `{old}` vs `{new_name}`\n",
            "## Params\n",
            params.strip() or "No params differ.",
            "\n## Metrics\n",
            metrics.strip() or "No metrics differ.",
            "\n## Plots\n",
            *_plot_sections(plots.get("data", {}), staging, old, new_name),
        ]
        atomic_write_text(staging / "README.md", "\n".join(sections) + "\n")
    return out_dir / "README.md"


def _plot_sections(plots: dict[str, list[dict]], staging: Path, old: str, new: str) -> list[str]:
    lines = []
    for plot_id, renders in plots.items():
        lines.append(f"### {plot_id}\n")
        for render in renders:
            if render["type"] == "vega":
                name = f"images/{slug(plot_id)}.png"
                png = vl_convert.vegalite_to_png(vl_spec=render["content"], scale=1.5)
                atomic_write_bytes(staging / name, png)
                lines.append(f"![{plot_id}]({name})\n")
        images = {
            render["revisions"][0]: render["url"] for render in renders if render["type"] == "image"
        }
        if images:
            cells = []
            for revision in (old, new):
                url = images.get(revision)
                cells.append(f"![{revision}]({_relative(url, staging)})" if url else "(absent)")
            lines.append(f"| `{old}` | `{new}` |\n| --- | --- |\n| {cells[0]} | {cells[1]} |\n")
    return lines


def _relative(url: str, staging: Path) -> str:
    path = Path(url)
    if not path.is_absolute():
        return url
    try:
        return str(path.relative_to(staging))
    except ValueError:
        target = staging / "images" / path.name
        shutil.copyfile(path, target)
        return str(target.relative_to(staging))
