"""The model and its training: raw uint8 in, reproducible weights, resume after a kill."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from digits import runtime, training
from digits.data import Split
from digits.mnist import Mnist
from digits.model import Hyperparameters, build_model, load_model
from digits.params import AugmentationParams, TrainParams
from tests.conftest import assert_same_arrays

SMALL = Hyperparameters(
    conv_blocks=2, convs_per_block=1, base_filters=8, kernel_size=3, batch_norm=True,
    dropout=0.2, dense_units=32, learning_rate=0.003,
)  # fmt: skip
AUGMENT = AugmentationParams(rotation_degrees=10, shift_fraction=0.1, zoom_fraction=0.1)


def train_params(epochs: int) -> TrainParams:
    return TrainParams(
        epochs=epochs, batch_size=64, learning_rate=None, warmup_epochs=0.5,
        label_smoothing=0.1, early_stopping_patience=3, seed=7, augmentation=AUGMENT,
    )  # fmt: skip


def train(tmp_path: Path, splits: dict[str, Split], epochs: int, name: str) -> training.TrainResult:
    runtime.configure(seed=7, threads=2)
    return training.train_model(
        SMALL, train_params(epochs), splits["train"], splits["val"], threads=2,
        model_path=tmp_path / name / "model.keras", curves_dir=tmp_path / name / "curves",
        checkpoints_dir=tmp_path / name / "checkpoints", report=lambda line: None,
    )  # fmt: skip


def test_the_model_takes_raw_uint8_images_and_survives_save_and_load(tmp_path: Path) -> None:
    model = build_model(SMALL, AUGMENT, seed=1)
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    before = model.predict(images, verbose=0)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(
        load_model(tmp_path / "m.keras").predict(images, verbose=0), before, rtol=1e-5
    )


def test_two_runs_with_the_same_seed_give_identical_weights(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    first = train(tmp_path, tiny_splits, epochs=1, name="a")
    second = train(tmp_path, tiny_splits, epochs=1, name="b")
    assert first.best_val_accuracy == second.best_val_accuracy
    assert_same_arrays(
        load_model(tmp_path / "a" / "model.keras").get_weights(),
        load_model(tmp_path / "b" / "model.keras").get_weights(),
    )
    assert (tmp_path / "a" / "curves" / "plots" / "metrics" / "eval" / "accuracy.tsv").is_file()
    assert not (tmp_path / "a" / "checkpoints").exists(), "finished runs leave no work behind"


def test_a_killed_run_resumes_from_its_last_epoch(
    tmp_path: Path, tiny_splits: dict[str, Split], monkeypatch: pytest.MonkeyPatch
) -> None:
    save_state = training.SaveResumeState.on_epoch_end

    def killed_after_first_epoch(
        self: training.SaveResumeState, epoch: int, logs: dict | None = None
    ) -> None:
        save_state(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(training.SaveResumeState, "on_epoch_end", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, tiny_splits, epochs=2, name="run")
    assert not (tmp_path / "run" / "model.keras").exists(), "a killed run publishes nothing"
    monkeypatch.undo()
    keras.backend.clear_session()

    result = train(tmp_path, tiny_splits, epochs=2, name="run")
    assert result.resumed_from_epoch == 1
    assert result.epochs_run == 2
    assert (tmp_path / "run" / "model.keras").is_file()
    steps = (
        tmp_path / "run" / "curves" / "plots" / "metrics" / "eval" / "accuracy.tsv"
    ).read_text()
    assert len(steps.strip().splitlines()) == 3, (
        "curves hold both epochs, before and after the kill"
    )


def test_batch_norm_models_predict_well_after_a_short_run(
    tiny_splits: dict[str, Split], mnist: Mnist
) -> None:
    """Short tuning trials must not collapse to chance at inference (BatchNorm moving stats)."""
    train = Split(mnist.train_images, mnist.train_labels).subset(2000, seed=0)
    model = build_model(SMALL)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")
    model.fit(train.images, train.labels, epochs=2, batch_size=64, verbose=0)
    val = tiny_splits["val"]
    accuracy = (model.predict(val.images, verbose=0).argmax(axis=1) == val.labels).mean()
    assert accuracy > 0.8
