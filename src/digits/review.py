"""An offline review of two revisions: a paired test of their test-set predictions, params and
metrics diffs, and every plot as a PNG.

`dvc plots diff` renders offline too (through `.dvc/plots/offline.html`, see
`digits.vega_bundle`), but as a page that needs a browser running scripts. This report is
Markdown and PNG files, readable wherever Markdown is (a pull request, a file viewer): DVC
computes the diffs, and vl-convert renders their Vega-Lite specs to PNG locally.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import vl_convert
from statsmodels.stats.contingency_tables import mcnemar

from digits.errors import DigitsError
from digits.files import atomic_path, atomic_write_bytes, atomic_write_text
from digits.params import PARAMS_FILE, read_params

WORKSPACE = "workspace"
# Per-sample test predictions in test order (columns actual,predicted), committed by evaluate.
CONFUSION_TABLE = "plots/evaluate/confusion.csv"
SIGNIFICANCE = 0.05


def dvc(*args: str) -> str:
    """Run a DVC command and return its stdout.

    Raises DigitsError when `dvc` is not on PATH, or with the command's last line of output
    when it exits non-zero.
    """
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


@dataclass(frozen=True)
class RevisionPredictions:
    """One revision's test set as evaluate saw it: labels and predicted digits, N int64 each."""

    labels: np.ndarray
    predicted: np.ndarray


def read_test_predictions(old: str, new: str | None) -> dict[str, RevisionPredictions]:
    """Both revisions' per-sample predictions, keyed by revision name (`workspace` for None).

    `dvc plots diff --targets <file> --json --split` returns each revision's rows tagged with
    `rev` and numbered by `step` (the row index), and resolves commits, branches, tags, experiment
    names and the workspace exactly as `dvc metrics diff` does. Raises DigitsError when the
    workspace's params.yaml (when it is compared) is not UTF-8 or not YAML, a revision lacks the
    table or a row is malformed.
    """
    revisions = [old] if new is None else [old, new]
    if new is None and PARAMS_FILE.is_file():
        # DVC would skip a workspace params.yaml that is not UTF-8 or not YAML with a warning.
        read_params(PARAMS_FILE)
    output = json.loads(
        dvc("plots", "diff", *revisions, "--targets", CONFUSION_TABLE, "--json", "--split")
    )
    rows: dict[str, list[tuple[int, int, int]]] = {}
    for render in output.get("data", {}).get(CONFUSION_TABLE, []):
        for row in render.get("anchor_definitions", {}).get("<DVC_METRIC_DATA>", []):
            try:
                entry = (int(row["step"]), int(row["actual"]), int(row["predicted"]))
            except (KeyError, TypeError, ValueError):
                raise DigitsError(
                    f"{CONFUSION_TABLE} at `{row.get('rev')}` has a malformed row {row}: expected "
                    "integer columns actual,predicted; rerun `dvc repro evaluate` there"
                ) from None
            rows.setdefault(row["rev"], []).append(entry)
    found = {}
    for revision in (old, new or WORKSPACE):
        if revision not in rows:
            unreadable = [  # e.g. that revision's params.yaml is not UTF-8
                str(error.get("msg")) for error in output.get("errors", [])
                if isinstance(error, dict) and error.get("rev") == revision
                and error.get("type") != "FileNotFoundError"  # a missing table: said below
            ]  # fmt: skip
            if unreadable:
                raise DigitsError(
                    f"DVC cannot read `{revision}`: {unreadable[0]}: fix the file it names (a "
                    "params.yaml must be UTF-8) and commit, or pick another revision"
                )
            raise DigitsError(
                f"`{revision}` has no {CONFUSION_TABLE} (per-sample test predictions): run the "
                "evaluate stage in that revision, or pick one that has it"
            )
        ordered = np.array(sorted(rows[revision]), dtype=np.int64)
        found[revision] = RevisionPredictions(ordered[:, 1], ordered[:, 2])
    return found


@dataclass(frozen=True)
class PairedComparison:
    """The two revisions' predictions on the same test images, image by image.

    fixed: wrong in `old`, right in `new`; introduced: right in `old`, wrong in `new`. p_value:
    McNemar's exact test (statsmodels, `exact=True`): two-sided binomial test of `fixed` against
    `introduced` with p = 1/2, which only the images the revisions disagree on decide.
    Source: McNemar (1947), Psychometrika 12; for classifiers, Dietterich (1998), Neural
    Computation 10(7).
    """

    old: str
    new: str
    samples: int
    both_right: int
    fixed: int
    introduced: int
    both_wrong: int
    p_value: float

    @property
    def old_errors(self) -> int:
        return self.fixed + self.both_wrong

    @property
    def new_errors(self) -> int:
        return self.introduced + self.both_wrong

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE

    @property
    def new_is_worse(self) -> bool:
        return self.significant and self.introduced > self.fixed

    def verdict(self) -> str:
        p = f"p = {self.p_value:.3g}"
        if not self.significant:
            return f"no significant difference at the {SIGNIFICANCE:.0%} level ({p})"
        better = self.fixed > self.introduced
        return f"`{self.new}` is {'better' if better else 'worse'} than `{self.old}`, {p}"

    def summary(self) -> str:
        return (
            f"`{self.old}` vs `{self.new}` on {self.samples:,} test images: {self.fixed} errors "
            f"fixed, {self.introduced} introduced; {self.verdict()}"
        )

    def markdown(self) -> str:
        return "\n".join(
            [
                "## Paired test-set comparison (McNemar)\n",
                f"**{self.verdict()}**\n",
                f"| test images ({self.samples:,}) | count |",
                "| --- | --- |",
                f"| errors in `{self.old}` | {self.old_errors} |",
                f"| errors in `{self.new}` | {self.new_errors} |",
                f"| fixed: wrong in `{self.old}`, right in `{self.new}` | {self.fixed} |",
                f"| introduced: right in `{self.old}`, wrong in `{self.new}` | {self.introduced} |",
                f"| wrong in both | {self.both_wrong} |",
                f"| right in both | {self.both_right} |\n",
                f"McNemar's exact test on the {self.fixed + self.introduced} images the two "
                f"revisions disagree on: p = {self.p_value:.4g} (two-sided; significant below "
                f"{SIGNIFICANCE}).\n",
            ]
        )


def compare_predictions(
    old: str, old_predictions: RevisionPredictions, new: str, new_predictions: RevisionPredictions
) -> PairedComparison:
    """Pair the two revisions' predictions image by image; see `PairedComparison`.

    Raises DigitsError when the test sets differ (length or labels), since then no image pairs.
    """
    old_labels, new_labels = old_predictions.labels, new_predictions.labels
    if len(old_labels) != len(new_labels) or not np.array_equal(old_labels, new_labels):
        detail = (
            f"{len(old_labels):,} vs {len(new_labels):,} images"
            if len(old_labels) != len(new_labels)
            else f"labels differ at {int(np.sum(old_labels != new_labels)):,} positions"
        )
        raise DigitsError(
            f"`{old}` and `{new}` scored different test sets ({detail}): compare revisions "
            "with the same prepare params and data"
        )
    old_right = old_predictions.predicted == old_labels
    new_right = new_predictions.predicted == new_labels
    table = np.array(
        [
            [np.sum(old_right & new_right), np.sum(old_right & ~new_right)],
            [np.sum(~old_right & new_right), np.sum(~old_right & ~new_right)],
        ]
    )
    return PairedComparison(
        old=old,
        new=new,
        samples=len(old_labels),
        both_right=int(table[0, 0]),
        introduced=int(table[0, 1]),
        fixed=int(table[1, 0]),
        both_wrong=int(table[1, 1]),
        p_value=float(mcnemar(table, exact=True).pvalue),
    )


def paired_comparison(old: str, new: str | None = None) -> PairedComparison:
    """Compare revision `old` with `new` (default: the workspace) on their test predictions.

    Raises DigitsError as `read_test_predictions` and `compare_predictions` do.
    """
    predictions = read_test_predictions(old, new)
    new_name = new or WORKSPACE
    return compare_predictions(old, predictions[old], new_name, predictions[new_name])


@dataclass(frozen=True)
class Review:
    path: Path
    comparison: PairedComparison


def write_review(old: str, new: str | None, out_dir: Path) -> Review:
    """Write `out_dir/README.md` comparing revision `old` with `new` (default: the workspace):
    the paired comparison first, then params, metrics and plots (PNGs in `out_dir/images/`).

    Raises DigitsError when both name the same revision, or when a `dvc` command or the
    comparison fails; `out_dir` then keeps its previous content.
    """
    if new == old or (new is None and old == WORKSPACE):
        raise DigitsError(f"review: both revisions are `{old}`: name two different ones")
    revisions = [old] if new is None else [old, new]
    new_name = new or WORKSPACE
    comparison = paired_comparison(old, new)
    with atomic_path(out_dir.resolve()) as staging:
        staging.mkdir()
        params = dvc("params", "diff", *revisions, "--md")
        metrics = dvc("metrics", "diff", *revisions, "--md", "--precision", "4")
        plots = json.loads(
            dvc("plots", "diff", *revisions, "--json", "-o", str(staging / "images"))
        )
        sections = [
            f"# Review: `{old}` vs `{new_name}`\n",
            comparison.markdown(),
            "## Params\n",
            params.strip() or "No params differ.",
            "\n## Metrics\n",
            metrics.strip() or "No metrics differ.",
            "\n## Plots\n",
            *_plot_sections(plots.get("data", {}), staging, old, new_name),
        ]
        atomic_write_text(staging / "README.md", "\n".join(sections) + "\n")
    return Review(out_dir / "README.md", comparison)


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
