"""The search winners that benchmarks/search_vs_random.py trains with the default recipe: where
each training is kept and which trained models exist for today's params.

Shared by benchmarks/search_vs_random.py (which trains them), benchmarks/ensemble.py and
benchmarks/test_time_augmentation.py (which load them); no pipeline stage imports this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from digits import runtime
from digits.data import Split, load_split
from digits.errors import DigitsError
from digits.hyperparameters import Hyperparameters
from digits.params import Params, load_params
from digits.training import BEST, compile_for_training, run_key

RESULT = Path("benchmarks/results/search_vs_random.json")
WORK = Path("benchmarks/work/search_vs_random")


def winner_training(
    params: Params, hp: Hyperparameters, splits: dict[str, Split], work: Path
) -> tuple[Any, Path]:
    """The compiled model of a winner and the run folder its training is kept in (under
    `work`/trainings, named by the training's run key). Seeds TensorFlow first."""
    threads = params.runtime.threads
    runtime.configure(params.train.seed, threads)
    model = compile_for_training(hp, params.train, splits["train"])
    key = run_key(model, params.train, splits["train"], splits["val"], threads)
    return model, work / "trainings" / key


def winner_models() -> list[Path]:
    """The best checkpoint (.keras) of each distinct winner trained by search_vs_random.py, found
    from its committed result file and today's params, so a stale run folder is never picked up.
    Paths are relative to the repository root, where the benchmarks run.

    Raises:
        SystemExit: a winner in the result file is not a point of today's space, or has no
            trained checkpoint for today's params (a changed `train` recipe changes every run
            key); rerun search_vs_random.py to train them.
    """
    params = load_params()
    splits = {name: load_split(Path("data/prepared") / f"{name}.npz") for name in ("train", "val")}
    searches = json.loads(RESULT.read_text())["searches"]
    winners = {json.dumps(w, sort_keys=True) for s in searches for w in s["winners"].values()}
    rerun = f"Rerun `python benchmarks/search_vs_random.py --out {RESULT}`"
    try:
        points = [
            Hyperparameters.from_dict(json.loads(w), f"{RESULT}, a winner", remedy=rerun)
            for w in winners
        ]
    except DigitsError as error:
        raise SystemExit(str(error)) from None
    models = sorted(winner_training(params, point, splits, WORK)[1] / BEST for point in points)
    missing = [str(model) for model in models if not model.is_file()]
    if not models or missing:
        named = ", ".join(missing) or f"{RESULT} lists none"
        raise SystemExit(
            f"no trained winner for today's params: {named}; "
            f"run `python benchmarks/search_vs_random.py --out {RESULT}` to train them"
        )
    return models
