"""params.yaml, parsed and validated once into typed, frozen objects.

Every stage calls `load_params()` and reads only its own section. Any problem (unknown key,
missing key, wrong type, value out of range) raises `ParamsError` naming the dotted key and what
is allowed, before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from digits.errors import DigitsError

PARAMS_FILE = Path("params.yaml")


class ParamsError(DigitsError):
    """params.yaml does not describe a valid run."""


class _Invalid(Exception):
    """Raised inside a section's checks; the loader prefixes the dotted key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise _Invalid(key, message)


@dataclass(frozen=True)
class Hyperparameter:
    """One search dimension: a list of `values` to choose from, or a `min`..`max` range."""

    values: tuple[Any, ...] | None = None
    min: Any = None
    max: Any = None
    step: Any = None
    sampling: Literal["linear", "log"] = "linear"

    @property
    def is_choice(self) -> bool:
        return self.values is not None

    def check(self, kind: type, lowest: float, highest: float) -> None:
        """Validate against the dimension's type (`kind`) and its allowed bounds."""
        if self.is_choice:
            _require(
                self.min is None and self.max is None and self.step is None,
                "values",
                "give either `values` or `min`/`max`, not both",
            )
            _require(len(self.values) > 0, "values", "must list at least one value")
            for value in self.values:
                _require(
                    _is_kind(value, kind),
                    "values",
                    f"must all be {kind.__name__}, got {value!r}",
                )
                if kind is not bool:
                    _require(
                        lowest <= value <= highest,
                        "values",
                        f"must lie in [{lowest}, {highest}], got {value!r}",
                    )
            return
        _require(kind is not bool, "values", "a yes/no dimension takes `values: [true, false]`")
        _require(self.min is not None, "min", "is missing (or give `values`)")
        _require(self.max is not None, "max", "is missing (or give `values`)")
        for key in ("min", "max"):
            value = getattr(self, key)
            _require(_is_kind(value, kind), key, f"must be {kind.__name__}, got {value!r}")
            _require(
                lowest <= value <= highest, key, f"must lie in [{lowest}, {highest}], got {value}"
            )
        _require(self.min <= self.max, "min", f"({self.min}) must not exceed max ({self.max})")
        if self.step is not None:
            _require(self.step > 0, "step", f"must be > 0, got {self.step}")
        if self.sampling == "log":
            _require(self.min > 0, "min", "must be > 0 with sampling: log")


def _is_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SearchSpace:
    """The model family Keras Tuner searches; see `digits.model.build_model`."""

    conv_blocks: Hyperparameter
    convs_per_block: Hyperparameter
    base_filters: Hyperparameter
    kernel_size: Hyperparameter
    batch_norm: Hyperparameter
    dropout: Hyperparameter
    dense_units: Hyperparameter
    learning_rate: Hyperparameter

    BOUNDS: typing.ClassVar[dict[str, tuple[type, float, float]]] = {
        "conv_blocks": (int, 1, 3),
        "convs_per_block": (int, 1, 3),
        "base_filters": (int, 4, 256),
        "kernel_size": (int, 2, 7),
        "batch_norm": (bool, 0, 1),
        "dropout": (float, 0.0, 0.9),
        "dense_units": (int, 8, 2048),
        "learning_rate": (float, 1e-6, 1.0),
    }

    def __post_init__(self) -> None:
        for name, (kind, lowest, highest) in self.BOUNDS.items():
            try:
                getattr(self, name).check(kind, lowest, highest)
            except _Invalid as error:
                raise _Invalid(f"{name}.{error.key}", error.message) from None


@dataclass(frozen=True)
class PrepareParams:
    mirror: str | None
    validation_size: int
    train_subsample: int | None
    test_subsample: int | None
    seed: int

    def __post_init__(self) -> None:
        train_pool = self.train_subsample or 60_000
        _require(self.validation_size >= 10, "validation_size", "must be >= 10 (one per class)")
        _require(
            self.train_subsample is None or 20 <= self.train_subsample <= 60_000,
            "train_subsample",
            "must be null or an integer in [20, 60000]",
        )
        _require(
            self.test_subsample is None or 10 <= self.test_subsample <= 10_000,
            "test_subsample",
            "must be null or an integer in [10, 10000]",
        )
        _require(
            self.validation_size <= train_pool - 10,
            "validation_size",
            f"({self.validation_size}) must leave at least 10 of the {train_pool} training "
            "images for training; lower it or raise prepare.train_subsample",
        )


@dataclass(frozen=True)
class TunerParams:
    max_trials: int
    num_initial_points: int
    seed: int
    epochs_per_trial: int
    images_per_trial: int | None
    batch_size: int
    early_stopping_patience: int
    workers: int
    trial_timeout_minutes: float
    trials_per_process: int | None
    space: SearchSpace

    # How the search is run, not what it searches: these never split a search in two.
    EXECUTION: typing.ClassVar[tuple[str, ...]] = (
        "max_trials",
        "workers",
        "trial_timeout_minutes",
        "trials_per_process",
    )

    def __post_init__(self) -> None:
        _require(self.max_trials >= 1, "max_trials", f"must be >= 1, got {self.max_trials}")
        _require(
            0 <= self.workers <= 64,
            "workers",
            f"must be in [0, 64] (0: search in the stage's own process), got {self.workers}",
        )
        _require(
            self.trials_per_process is None or self.trials_per_process >= 1,
            "trials_per_process",
            f"must be null (all in the stage's process) or >= 1, got {self.trials_per_process}",
        )
        _require(
            self.trial_timeout_minutes > 0,
            "trial_timeout_minutes",
            f"must be > 0, got {self.trial_timeout_minutes}",
        )
        _require(
            self.num_initial_points >= 1,
            "num_initial_points",
            f"must be >= 1, got {self.num_initial_points}",
        )
        _require(
            self.epochs_per_trial >= 1,
            "epochs_per_trial",
            f"must be >= 1, got {self.epochs_per_trial}",
        )
        _require(
            self.images_per_trial is None or self.images_per_trial >= 10,
            "images_per_trial",
            f"must be null (all) or >= 10, got {self.images_per_trial}",
        )
        _require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        _require(
            self.early_stopping_patience >= 0,
            "early_stopping_patience",
            f"must be >= 0, got {self.early_stopping_patience}",
        )


@dataclass(frozen=True)
class AugmentationParams:
    """Random affine distortions applied to training images only."""

    rotation_degrees: float
    shift_fraction: float
    zoom_fraction: float

    def __post_init__(self) -> None:
        _require(
            0 <= self.rotation_degrees <= 45,
            "rotation_degrees",
            f"must be in [0, 45], got {self.rotation_degrees}",
        )
        _require(
            0 <= self.shift_fraction <= 0.3,
            "shift_fraction",
            f"must be in [0, 0.3], got {self.shift_fraction}",
        )
        _require(
            0 <= self.zoom_fraction <= 0.3,
            "zoom_fraction",
            f"must be in [0, 0.3], got {self.zoom_fraction}",
        )


@dataclass(frozen=True)
class TrainParams:
    epochs: int
    batch_size: int
    learning_rate: float | None
    warmup_epochs: float
    label_smoothing: float
    early_stopping_patience: int
    seed: int
    augmentation: AugmentationParams

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        _require(
            self.learning_rate is None or 0 < self.learning_rate <= 1,
            "learning_rate",
            f"must be null (use the tuned rate) or in (0, 1], got {self.learning_rate}",
        )
        _require(
            0 <= self.warmup_epochs < self.epochs,
            "warmup_epochs",
            f"must be in [0, epochs={self.epochs}), got {self.warmup_epochs}",
        )
        _require(
            0 <= self.label_smoothing < 1,
            "label_smoothing",
            f"must be in [0, 1), got {self.label_smoothing}",
        )
        _require(
            self.early_stopping_patience >= 0,
            "early_stopping_patience",
            f"must be >= 0, got {self.early_stopping_patience}",
        )


@dataclass(frozen=True)
class RuntimeParams:
    """How TensorFlow uses the machine; results are reproducible for a fixed thread count."""

    threads: int

    def __post_init__(self) -> None:
        _require(1 <= self.threads <= 256, "threads", f"must be in [1, 256], got {self.threads}")


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class ErrorAnalysisParams:
    gallery_size: int
    top_pairs: int
    suspect_confidence: float

    def __post_init__(self) -> None:
        _require(
            1 <= self.gallery_size <= 400,
            "gallery_size",
            f"must be in [1, 400], got {self.gallery_size}",
        )
        _require(
            1 <= self.top_pairs <= 90, "top_pairs", f"must be in [1, 90], got {self.top_pairs}"
        )
        _require(
            0.5 <= self.suspect_confidence < 1,
            "suspect_confidence",
            f"must be in [0.5, 1), got {self.suspect_confidence}",
        )


@dataclass(frozen=True)
class Params:
    runtime: RuntimeParams
    prepare: PrepareParams
    tuner: TunerParams
    train: TrainParams
    evaluate: EvaluateParams
    error_analysis: ErrorAnalysisParams


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read and validate the whole params file; raise `ParamsError` on the first problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run the stage from the repository root") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    return parse_params(raw, source=str(path))


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    try:
        return _build(Params, raw, "")
    except _Invalid as error:
        raise ParamsError(f"{source}: {error.key}: {error.message}") from None


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise _Invalid(prefix.rstrip(".") or "(top level)", f"must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise _Invalid(
            f"{prefix}{unknown[0]}",
            f"unknown key; allowed keys here: {', '.join(fields)}",
        )
    values = {}
    for name, field in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            if field.default is not dataclasses.MISSING:
                continue
            raise _Invalid(key, "is missing")
        values[name] = _convert(hints[name], raw[name], key)
    try:
        return cls(**values)
    except _Invalid as error:
        raise _Invalid(f"{prefix}{error.key}", error.message) from None


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            _require(type(None) in options, key, "must not be null")
            return None
        (inner,) = [option for option in options if option is not type(None)]
        return _convert(inner, value, key)
    if origin is Literal:
        allowed = typing.get_args(hint)
        _require(value in allowed, key, f"must be one of {list(allowed)}, got {value!r}")
        return value
    if origin is tuple:
        _require(isinstance(value, list), key, f"must be a list, got {value!r}")
        return tuple(value)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if hint is Any:
        return value
    if hint is bool:
        _require(isinstance(value, bool), key, f"must be true or false, got {value!r}")
    elif hint is int:
        _require(_is_kind(value, int), key, f"must be an integer, got {value!r}")
    elif hint is float:
        if isinstance(value, str):
            value = _float_from_text(value, key)
        _require(_is_kind(value, float), key, f"must be a number, got {value!r}")
        value = float(value)
        _require(math.isfinite(value), key, f"must be finite, got {value}")
    elif hint is str:
        _require(isinstance(value, str), key, f"must be a string, got {value!r}")
    return value


def _float_from_text(text: str, key: str) -> float:
    """YAML 1.1 reads `1e-3` as a string; accept any text that is plainly a number."""
    try:
        return float(text)
    except ValueError:
        raise _Invalid(key, f"must be a number, got {text!r}") from None
