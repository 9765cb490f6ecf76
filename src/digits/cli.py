"""The `digits` tool: predict, export and review, around what the pipeline produced.

Its default paths are the pipeline's outputs as dvc.yaml names them (tests/test_stage_deps.py
checks that they agree).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from digits.errors import DigitsError, run_main

MODEL = Path("models/model.keras")  # the train stage's --model
TEST_SPLIT = Path("data/prepared/test.npz")  # the evaluate stage's --test


def model_fix(path: Path) -> str:
    """How to get a good model back at `path`: DVC restores the pipeline's own model (the train
    stage's --model, found from the nearest folder holding dvc.yaml); any other file is copied or
    exported there again. `--force` because `dvc checkout` refuses to replace a damaged file."""
    absolute = Path(os.path.abspath(path))  # symlinks kept: DVC may link outputs to its cache
    root = next((folder for folder in absolute.parents if (folder / "dvc.yaml").is_file()), None)
    if root is not None and absolute == root / MODEL:
        return (
            f"restore the committed model with `dvc checkout --force {path}` (`dvc pull --force "
            f"{path}` if only the team's remote has it), or train one with `dvc repro train`"
        )
    return f"copy or export a good model to {path} again, or pass another --model"


@contextlib.contextmanager
def writing_to(folder: Path, option: str) -> Iterator[None]:
    """Turn an OSError on a path while writing `folder` (the value of `option`) into one line
    naming the folder that refused and how to fix it."""
    try:
        yield
    except OSError as error:
        if not error.filename:
            raise
        failed = Path(os.fsdecode(error.filename))
        existing = next((p for p in (failed, *failed.parents) if p.exists()), Path.cwd())
        if not existing.is_dir():
            raise DigitsError(
                f"cannot write to {folder}: {existing} is a file, not a folder: choose another "
                f"{option}, or move {existing} away"
            ) from None
        reason = (error.strerror or type(error).__name__).lower()
        chmod = f", or make it writable (chmod u+w {existing})"
        fix = f"choose another {option}{chmod if isinstance(error, PermissionError) else ''}"
        raise DigitsError(f"cannot write to {existing} ({reason}): {fix}") from None


def predict_command(args: argparse.Namespace) -> None:
    """Every readable image (each frame of a multi-frame file) is classified; each bad file or
    frame gets its own error line (exit 1). `--json` lists every file or frame in input order,
    a failed one as `{"path", "frame", "error"}`, so a script sees what failed too. Notes (files
    a folder held that are not images) go to stderr and do not fail the command."""
    import numpy as np

    from digits.model import load_model
    from digits.predict import predict_images, read_inputs, save_crops

    frames, notes = read_inputs(args.images, sys.stdin.buffer if sys.stdin else None)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    failed = [result for _, result in frames if isinstance(result, DigitsError)]
    for error in failed:
        print(f"error: {error}", file=sys.stderr)
    readable = [(source, image) for source, image in frames if not isinstance(image, DigitsError)]
    if args.show_crop is not None:
        with writing_to(args.show_crop, "--show-crop"):
            save_crops(frames, args.show_crop)
    predictions = []
    if readable:
        sources, images = zip(*readable, strict=True)
        model = load_model(args.model, model_fix(args.model))
        predictions = predict_images(model, np.stack(images), list(sources))
    if args.json:
        predicted = iter(predictions)
        print(json.dumps([
            {"path": source.path, "frame": source.frame, "error": str(result)}
            if isinstance(result, DigitsError) else next(predicted).as_dict()
            for source, result in frames
        ], indent=2))  # fmt: skip
    else:
        for prediction in predictions:
            print(prediction.line())
    if failed:
        sys.exit(1)


def export_command(args: argparse.Namespace) -> None:
    from digits.data import load_split
    from digits.export import export_all
    from digits.model import load_model

    model = load_model(args.model, model_fix(args.model))
    check_images = load_split(args.test).images[:256]
    with writing_to(args.out, "--out"):
        written = export_all(model, args.out, check_images)
    for path in written:
        print(f"export: wrote {path} (predictions match the Keras model on 256 test images)")


def review_command(args: argparse.Namespace) -> None:
    """Write the report; --fail-if-worse: exit 1 when NEW is significantly worse (a CI gate)."""
    from digits.review import write_review

    with writing_to(args.out, "-o"):
        review = write_review(args.old, args.new, args.out)
    print(f"review: {review.comparison.summary()}")
    print(f"review: wrote {review.path}")
    if args.fail_if_worse and review.comparison.new_is_worse:
        raise DigitsError(
            f"review: {review.comparison.verdict()} on the test set (--fail-if-worse)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="digits", description="Tools around the digit-classification DVC pipeline."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser(
        "predict", help="classify digit images (PNG, JPEG, TIFF, GIF, ...; every frame)"
    )
    predict.add_argument(
        "images",
        nargs="+",
        help="image files (any size), folders of them (read in name order), or - for one image "
        "on standard input",
    )
    predict.add_argument("--model", type=Path, default=MODEL, help="trained Keras model")
    predict.add_argument("--json", action="store_true", help="print JSON for scripts")
    predict.add_argument(
        "--show-crop",
        type=Path,
        metavar="DIR",
        help="save each image as the model read it (28x28 PNG, named after its file) in DIR",
    )
    predict.set_defaults(handler=predict_command)

    export = commands.add_parser("export", help="write the model as SavedModel and TFLite")
    export.add_argument("--model", type=Path, default=MODEL, help="trained Keras model")
    export.add_argument(
        "--test", type=Path, default=TEST_SPLIT, help="test split whose images check the export"
    )
    export.add_argument("--out", type=Path, default=Path("models/export"), help="output folder")
    export.set_defaults(handler=export_command)

    review = commands.add_parser(
        "review",
        help="offline Markdown report comparing two revisions: a paired McNemar test of their "
        "test predictions, params, metrics, plots",
    )
    review.add_argument("old", help="baseline revision: commit, branch, tag or experiment")
    review.add_argument("new", nargs="?", help="revision to compare (default: the workspace)")
    review.add_argument("-o", "--out", type=Path, default=Path("review"), help="output folder")
    review.add_argument(
        "--fail-if-worse",
        action="store_true",
        help="exit 1 when NEW makes significantly more test errors than OLD (McNemar, p < 0.05)",
    )
    review.set_defaults(handler=review_command)

    args = parser.parse_args(argv)
    run_main(lambda: args.handler(args))
