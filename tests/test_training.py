"""The model and its training: raw uint8 in, reproducible weights, a killed run resumes exactly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from scipy.special import softmax

from digits import runtime, training
from digits.data import Split
from digits.hyperparameters import Hyperparameters
from digits.mnist import Mnist
from digits.model import RandomIntensity, build_model, load_model, probability_model
from digits.params import AugmentationParams, TrainParams
from tests.helpers import assert_same_arrays

SMALL = Hyperparameters(
    conv_blocks=2, convs_per_block=1, base_filters=8, first_kernel_size=3, kernel_size=3,
    batch_norm=True, dropout=0.2, dense_units=32, learning_rate=0.003,
)  # fmt: skip
AUGMENT = AugmentationParams(rotation_degrees=10, shift_fraction=0.1, zoom_fraction=0.1)
PARAMS = TrainParams(
    epochs=2, batch_size=64, learning_rate=None, warmup_epochs=0.5, label_smoothing=0.1,
    early_stopping_patience=3, seed=7, augmentation=AUGMENT,
)  # fmt: skip
# A learning rate so high that training never settles: validation loss stops improving within a
# few epochs whatever the CPU, whereas at a moderate rate whether it keeps improving for all 8
# epochs depends on the CPU's floating-point arithmetic. Patience 2: the epoch before stopping
# has a wait count to restore.
STOPS_EARLY = dataclasses.replace(PARAMS, epochs=8, learning_rate=0.2, early_stopping_patience=2)


class Killed(Exception):
    """Stands for the process being killed right after an epoch was saved."""


def train(tmp_path: Path, splits: dict[str, Split], params: TrainParams, name: str):
    """One run of the train stage's steps into tmp_path/name; returns (result, model path)."""
    keras.backend.clear_session()
    runtime.configure(seed=params.seed, threads=2)
    model = training.compile_for_training(SMALL, params, splits["train"])
    key = training.run_key(model, params, splits["train"], splits["val"], threads=2)
    work = tmp_path / name / "checkpoints" / key
    result = training.train_model(
        model, params, splits["train"], splits["val"], work, report=lambda line: None
    )
    out = tmp_path / name
    training.publish(training.best_model(work), work, out / "model.keras", out / "curves")
    training.finish(work)
    return result, out


def curves(folder: Path) -> dict[str, list[list[str]]]:
    """Every DVCLive curve's (step, value) rows; the timestamp column differs between runs."""
    tables = {}
    for path in sorted((folder / "curves" / "plots" / "metrics").rglob("*.tsv")):
        rows = [line.split("\t") for line in path.read_text().splitlines()]
        header = rows[0]
        keep = [header.index("step"), len(header) - 1]
        tables[str(path.relative_to(folder))] = [[row[i] for i in keep] for row in rows]
    return tables


def kill_after_epoch(monkeypatch: pytest.MonkeyPatch, epochs: int) -> None:
    save = training.SaveResumeState.on_epoch_end

    def save_then_die(self: training.SaveResumeState, epoch: int, logs: dict | None = None) -> None:
        save(self, epoch, logs)
        if epoch + 1 == epochs:
            raise Killed

    monkeypatch.setattr(training.SaveResumeState, "on_epoch_end", save_then_die)


def test_the_model_takes_raw_uint8_images_and_survives_save_and_load(tmp_path: Path) -> None:
    network = build_model(SMALL, AUGMENT, seed=1)
    model = probability_model(network)
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    before = model.predict(images, verbose=0)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)
    # The network itself outputs the logits the probabilities are the softmax of.
    logits = network.predict(images, verbose=0)
    np.testing.assert_allclose(softmax(logits, axis=1), before, atol=1e-6)
    last = network.layers[-1]
    assert last.name == "logits" and last.activation is keras.activations.linear
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(
        load_model(tmp_path / "m.keras").predict(images, verbose=0), before, rtol=1e-5
    )


def test_training_takes_the_cross_entropy_of_the_logits(tiny_splits: dict[str, Split]) -> None:
    model = training.compile_for_training(SMALL, PARAMS, tiny_splits["train"])
    config = model.loss.get_config()
    assert config["from_logits"] is True
    assert config["label_smoothing"] == PARAMS.label_smoothing
    assert model.layers[-1].name == "logits"


def test_the_run_key_does_not_depend_on_what_the_process_built_before(
    tiny_splits: dict[str, Split],
) -> None:
    def key() -> str:
        model = training.compile_for_training(SMALL, PARAMS, tiny_splits["train"])
        return training.run_key(model, PARAMS, tiny_splits["train"], tiny_splits["val"], threads=2)

    keras.backend.clear_session()
    first = key()
    assert key() == first  # a benchmark trains several models in one process


def test_two_runs_with_the_same_seed_give_identical_weights(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    first, a = train(tmp_path, tiny_splits, PARAMS, "a")
    second, b = train(tmp_path, tiny_splits, PARAMS, "b")
    assert first == dataclasses.replace(second, seconds=first.seconds,
                                        images_per_second=first.images_per_second)  # fmt: skip
    assert_same_arrays(
        load_model(a / "model.keras").get_weights(), load_model(b / "model.keras").get_weights()
    )
    assert curves(a) == curves(b)
    assert not (a / "checkpoints").exists(), "a published run leaves no work behind"


@pytest.mark.parametrize(
    "killed_after",
    [1, pytest.param("the epoch before early stopping fires", marks=pytest.mark.slow)],
)
def test_a_killed_run_resumes_to_exactly_the_uninterrupted_result(
    tmp_path: Path,
    tiny_splits: dict[str, Split],
    monkeypatch: pytest.MonkeyPatch,
    killed_after: int | str,
) -> None:
    """Bitwise: same weights, same curves, same metrics (timing aside), same stopping epoch."""
    whole, whole_dir = train(tmp_path, tiny_splits, STOPS_EARLY, "whole")
    assert whole.epochs_run < STOPS_EARLY.epochs, "the case needs a run that stops early"
    kill_at = killed_after if isinstance(killed_after, int) else whole.epochs_run - 1

    kill_after_epoch(monkeypatch, kill_at)
    with pytest.raises(Killed):
        train(tmp_path, tiny_splits, STOPS_EARLY, "resumed")
    assert not (tmp_path / "resumed" / "model.keras").exists(), "a killed run publishes nothing"
    monkeypatch.undo()
    resumed, resumed_dir = train(tmp_path, tiny_splits, STOPS_EARLY, "resumed")

    untimed = {"seconds": 0.0, "images_per_second": 0.0}
    assert dataclasses.replace(resumed, **untimed) == dataclasses.replace(whole, **untimed)
    assert_same_arrays(
        load_model(resumed_dir / "model.keras").get_weights(),
        load_model(whole_dir / "model.keras").get_weights(),
    )
    assert curves(resumed_dir) == curves(whole_dir)
    summary = json.loads((resumed_dir / "curves" / "metrics.json").read_text())
    assert summary == json.loads((whole_dir / "curves" / "metrics.json").read_text())


def test_batch_norm_models_predict_well_after_a_short_run(
    tiny_splits: dict[str, Split], mnist_subset: Mnist
) -> None:
    """Short tuning trials must not collapse to chance at inference (BatchNorm moving stats)."""
    train = Split(mnist_subset.train_images, mnist_subset.train_labels).subset(2000, seed=0)
    model = build_model(SMALL)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss=loss)
    model.fit(train.images, train.labels, epochs=2, batch_size=64, verbose=0)
    test = tiny_splits["test"]  # test images: none among the training ones
    accuracy = (model.predict(test.images, verbose=0).argmax(axis=1) == test.labels).mean()
    assert accuracy > 0.8


INTENSITY = dataclasses.replace(AUGMENT, contrast_fraction=0.8, noise_std=0.2)


def test_random_intensity_changes_training_images_only_and_keeps_them_in_range(
    tiny_splits: dict[str, Split],
) -> None:
    images = keras.ops.cast(tiny_splits["val"].images[:32, :, :, None], "float32") / 255
    augmented = {}
    for run in ("a", "b"):
        keras.backend.clear_session()
        layer = RandomIntensity(contrast_fraction=0.8, noise_std=0.2, seed=5)
        assert_same_arrays([keras.ops.convert_to_numpy(layer(images, training=False))],
                           [keras.ops.convert_to_numpy(images)])  # fmt: skip
        augmented[run] = keras.ops.convert_to_numpy(layer(images, training=True))
    np.testing.assert_array_equal(augmented["a"], augmented["b"])  # same seed, same draws
    assert augmented["a"].min() >= 0 and augmented["a"].max() <= 1
    background = keras.ops.convert_to_numpy(images) == 0
    levels = [image[mask].mean() for image, mask in zip(augmented["a"], background, strict=True)]
    assert max(levels) > 0.2, "some images get a grey background"
    assert not np.array_equal(augmented["a"], keras.ops.convert_to_numpy(images))


def test_intensity_augmented_runs_resume_exactly_and_repeat_bitwise(
    tmp_path: Path, tiny_splits: dict[str, Split], monkeypatch: pytest.MonkeyPatch
) -> None:
    params = dataclasses.replace(PARAMS, augmentation=INTENSITY)
    first, a = train(tmp_path, tiny_splits, params, "a")
    assert "augment_intensity" in [layer.name for layer in load_model(a / "model.keras").layers]
    kill_after_epoch(monkeypatch, 1)
    with pytest.raises(Killed):
        train(tmp_path, tiny_splits, params, "b")
    monkeypatch.undo()
    second, b = train(tmp_path, tiny_splits, params, "b")
    assert first.best_val_accuracy == second.best_val_accuracy
    assert_same_arrays(
        load_model(a / "model.keras").get_weights(), load_model(b / "model.keras").get_weights()
    )
