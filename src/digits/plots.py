"""The PNG figures the pipeline commits under plots/, for people who would rather look than read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from digits.files import atomic_path
from digits.selection import Decision

DPI = 100


def save_figure(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)


def image_gallery(
    images: np.ndarray,
    captions: Sequence[str],
    path: Path,
    title: str,
    columns: int = 10,
) -> None:
    """A grid of digits with a caption under each; an empty selection says so in the figure.

    `images` N x 28 x 28 uint8 (MNIST's light ink on black, drawn dark on white); one caption
    per image.
    """
    count = len(images)
    rows = max(1, -(-count // columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * 1.2, rows * 1.45 + 0.6), squeeze=False
    )
    for index, cell in enumerate(axes.flat):
        cell.axis("off")
        if index < count:
            cell.imshow(images[index], cmap="gray_r", vmin=0, vmax=255)
            cell.set_title(captions[index], fontsize=7)
    if count == 0:
        axes.flat[0].text(0, 0.5, "none", fontsize=12)
    figure.suptitle(title, fontsize=11)
    save_figure(figure, path)


@dataclass(frozen=True)
class Gallery:
    """One titled block of `gallery_sections`: `images` N x 28 x 28 uint8, one caption each."""

    title: str
    images: np.ndarray
    captions: Sequence[str]


def gallery_sections(
    galleries: Sequence[Gallery], path: Path, title: str, columns: int = 10
) -> None:
    """Several galleries in one PNG, one titled block of rows each, so the file's name is the
    same however many galleries a run has; no galleries say "none" in the figure."""
    rows = [max(1, -(-len(gallery.images) // columns)) for gallery in galleries] or [1]
    heights = [0.5] + [count * 1.45 + 0.5 for count in rows]  # inches: header, then each block
    figure = plt.figure(figsize=(columns * 1.2, sum(heights)))
    header, *blocks = figure.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    header.text(0.5, 0.3, title, fontsize=11, ha="center")
    if not galleries:
        blocks[0].text(0.5, 0.5, "none", fontsize=12, ha="center")
    for block, gallery, count in zip(blocks, galleries, rows, strict=False):
        axes = block.subplots(count, columns, squeeze=False)
        block.subplots_adjust(top=1 - 0.5 / (count * 1.45 + 0.5), bottom=0.02)
        for index, cell in enumerate(axes.flat):
            cell.axis("off")
            if index < len(gallery.images):
                cell.imshow(gallery.images[index], cmap="gray_r", vmin=0, vmax=255)
                cell.set_title(gallery.captions[index], fontsize=7)
        block.suptitle(gallery.title, fontsize=10, x=0.02, ha="left")
    save_figure(figure, path)


@dataclass(frozen=True)
class ReliabilityCurve:
    """One model's reliability: per non-empty confidence bin, mean confidence, accuracy, count."""

    label: str
    confidence: Sequence[float]
    accuracy: Sequence[float]
    counts: Sequence[int]


def reliability_diagram(curves: Sequence[ReliabilityCurve], path: Path, title: str) -> None:
    """Accuracy per confidence bin against the diagonal of perfect calibration, one line per
    curve (e.g. before and after temperature scaling), and the images per bin below."""
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(6, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for curve in curves:
        line = top.plot(curve.confidence, curve.accuracy, marker="o", label=curve.label)[0]
        bottom.bar(curve.confidence, curve.counts, width=0.03, alpha=0.5, color=line.get_color())
    top.set_ylabel("accuracy")
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8)
    bottom.set_yscale("log")
    bottom.set_xlabel("confidence (max predicted probability)")
    bottom.set_ylabel("images")
    save_figure(figure, path)


def tuning_progress(rows: Sequence[dict], decision: Decision, path: Path, objective: str) -> None:
    """Each trial's score (lower is better) and the best so far (rows of `trial`, `score`,
    `best_so_far`), the best trial and the chosen one, and under one_se selection the
    one-standard-error band above the best score: trials inside it are not told apart from the
    best by this objective. Under `best` selection there is no band (its limit is the best
    score), though the standard error may be known."""
    trials = [row["trial"] for row in rows]
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.scatter(trials, [row["score"] for row in rows], label="trial", zorder=3)
    axes.step(trials, [row["best_so_far"] for row in rows], where="post", color="tab:red",
              label="best so far")  # fmt: skip
    best, chosen = decision.best, decision.chosen
    if decision.standard_error is not None and decision.band_limit > best.score:
        axes.axhspan(best.score, decision.band_limit, color="tab:red", alpha=0.12,
                     label=f"best + 1 standard error ({decision.standard_error:.4f})")  # fmt: skip
    axes.scatter([best.trial], [best.score], marker="*", s=220, color="tab:red", zorder=4,
                 label=f"best: trial {best.trial}")  # fmt: skip
    label = f"chosen: trial {chosen.trial}, {chosen.flops / 1e6:.2f} MFLOPs/image"
    axes.scatter([chosen.trial], [chosen.score], s=260, facecolors="none", edgecolors="black",
                 linewidths=2, zorder=5, label=label)  # fmt: skip
    axes.set_xlabel("trial")
    axes.set_ylabel(f"{objective} (lower is better)")
    axes.set_title("Hyperparameter search")
    axes.legend(loc="upper right", fontsize=8)
    save_figure(figure, path)


def marginals(
    rows: Sequence[dict], names: Sequence[str], log_scale: set[str], path: Path, objective: str
) -> None:
    """Each searched dimension's values against the trial scores, one panel per dimension
    (on a log axis for the dimensions in `log_scale`)."""
    columns = max(1, min(len(names), 4))
    figure_rows = max(1, -(-len(names) // columns))
    figure, axes = plt.subplots(
        figure_rows, columns, figsize=(3.2 * columns, 2.8 * figure_rows), squeeze=False
    )
    scores = [row["score"] for row in rows]
    for cell, name in zip(axes.flat, names, strict=False):
        values = [float(row[name]) for row in rows]
        cell.scatter(values, scores, s=18)
        cell.set_xlabel(name)
        if name in log_scale:
            cell.set_xscale("log")
    for cell in axes.flat[len(names) :]:
        cell.axis("off")
    for cell in axes[:, 0]:
        cell.set_ylabel(objective)
    if not names:
        axes.flat[0].text(0.5, 0.5, "no dimension searched", ha="center")
    figure.suptitle("Score against each searched hyperparameter")
    save_figure(figure, path)


def importance_bars(importances: dict[str, float] | None, trials: int, path: Path) -> None:
    """Permutation importance of each searched dimension (see `digits.importance`)."""
    figure, axes = plt.subplots(figsize=(6, 3.5))
    if importances:
        names = sorted(importances, key=importances.get)
        axes.barh(names, [importances[name] for name in names], color="tab:blue")
        axes.set_xlabel("drop in the surrogate's R^2 when shuffled")
    else:
        axes.text(0.5, 0.5, "too few trials, or no dimension searched", ha="center", va="center")
        axes.axis("off")
    axes.set_title(f"What mattered in the search ({trials} trials; a hint below ~30)")
    save_figure(figure, path)
