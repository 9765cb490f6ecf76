"""The PNG figures the pipeline commits under plots/, for people who would rather look than read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from digits.files import atomic_path

DPI = 100


def save_figure(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)


def confusion_heatmap(matrix: np.ndarray, path: Path, title: str) -> None:
    """Counts in every cell; errors in red on a grey diagonal, so the mistakes stand out."""
    figure, axes = plt.subplots(figsize=(8, 7))
    diagonal = np.eye(len(matrix), dtype=bool)
    sns.heatmap(
        matrix, mask=~diagonal, cmap=sns.light_palette("grey", as_cmap=True), cbar=False,
        annot=True, fmt="d", annot_kws={"size": 8}, linewidths=0.5, linecolor="white", ax=axes,
    )  # fmt: skip
    errors = np.where(diagonal, 0, matrix)
    sns.heatmap(
        errors, mask=diagonal | (errors == 0), cmap="Reds", vmin=0, vmax=max(int(errors.max()), 1),
        annot=True, fmt="d", annot_kws={"size": 9, "weight": "bold"}, linewidths=0.5,
        linecolor="white", cbar_kws={"label": "misclassified test images"}, ax=axes,
    )  # fmt: skip
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("true digit")
    axes.set_title(title)
    save_figure(figure, path)


def image_gallery(
    images: np.ndarray,
    captions: Sequence[str],
    path: Path,
    title: str,
    columns: int = 10,
) -> None:
    """A grid of digits with a caption under each; an empty selection says so in the figure."""
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


def reliability_diagram(
    confidence: Sequence[float],
    accuracy: Sequence[float],
    counts: Sequence[int],
    path: Path,
    ece: float,
) -> None:
    """Accuracy per confidence bin against the diagonal of perfect calibration."""
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(6, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    filled = np.asarray(counts) > 0
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.plot(
        np.asarray(confidence)[filled], np.asarray(accuracy)[filled], marker="o", label="model"
    )
    top.set_ylabel("accuracy")
    top.set_title(f"Reliability on the test set (ECE {ece:.4f})")
    top.legend(loc="upper left")
    centres = np.asarray(confidence)[filled]
    bottom.bar(centres, np.asarray(counts)[filled], width=0.03)
    bottom.set_yscale("log")
    bottom.set_xlabel("confidence (max predicted probability)")
    bottom.set_ylabel("images")
    save_figure(figure, path)


def per_class_error_bars(rates: np.ndarray, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(7, 3.5))
    digits = np.arange(len(rates))
    bars = axes.bar(digits, rates * 100, color=sns.color_palette("Reds_d", len(rates)))
    axes.bar_label(bars, fmt="%.2f", fontsize=8)
    axes.set_xticks(digits)
    axes.set_xlabel("true digit")
    axes.set_ylabel("test error rate (%)")
    axes.set_title("Error rate per digit")
    save_figure(figure, path)


def tuning_progress(
    trials: Sequence[int],
    scores: Sequence[float],
    best: Sequence[float],
    path: Path,
    objective: str,
) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.scatter(trials, scores, label="trial", zorder=3)
    axes.step(trials, best, where="post", color="tab:red", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel(objective)
    axes.set_title("Hyperparameter search")
    axes.legend(loc="lower right")
    save_figure(figure, path)
