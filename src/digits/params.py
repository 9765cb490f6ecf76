"""params.yaml, parsed and validated once into typed, frozen objects.

Every stage calls `load_params()` and reads only its own section. Any problem (unknown key,
missing key, wrong type, value out of range, a file that is not UTF-8) raises `ParamsError`
naming the dotted key and what is allowed, before any work starts; just before publishing, the
stage calls `confirm_unchanged` so that dvc.lock never records params it did not run with.

The file is read as YAML 1.2, as DVC reads and writes it (`dvc exp run -S` writes `1e-05`, which
YAML 1.1 readers such as PyYAML take for a string), and every number is accepted in any spelling
YAML 1.2 gives it: `1e-05`, `0.00001`, `1E3`, `0x10`, `0o17`, `+5`, and `5.0` or `1e2` for an
integer.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from digits.errors import DigitsError
from digits.hyperparameters import Dimension, Hyperparameters

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
class SearchDimension:
    """How one hyperparameter is searched: a list of `values`, or a `min`..`max` range.

    Values are already converted to the dimension's type, and every combination Keras Tuner
    would refuse at search time (mixed types in a choice, `step <= 1` with log sampling, ...)
    is refused here, at load.
    """

    name: str
    values: tuple[Any, ...] | None = None
    min: Any = None
    max: Any = None
    step: Any = None
    sampling: Literal["linear", "log"] = "linear"

    @property
    def kind(self) -> type:
        """int, float or bool, as `Hyperparameters` declares the field."""
        return typing.get_type_hints(Hyperparameters)[self.name]

    @property
    def is_choice(self) -> bool:
        return self.values is not None

    @property
    def size(self) -> float:
        """How many distinct values the dimension can take (`math.inf` for a continuous one)."""
        if self.is_choice:
            return len(self.values)
        if self.min == self.max:
            return 1
        if self.step is None:
            return math.inf if self.kind is float else self.max - self.min + 1
        if self.sampling == "log":
            return int(math.log(self.max / self.min, self.step) + 1e-8) + 1
        return int((self.max - self.min) // self.step) + 1


def _parse_dimension(dimension: Dimension, raw: Any) -> SearchDimension:
    """Check one `tuner.space` entry against its dimension; raises `_Invalid` with a sub-key."""
    kind, name = dimension.kind, dimension.name
    _require(
        isinstance(raw, dict), "", f"must be a mapping with `values` or `min`/`max`, got {raw!r}"
    )
    unknown = sorted(set(raw) - {"values", "min", "max", "step", "sampling"})
    _require(
        not unknown,
        unknown[0] if unknown else "",
        "unknown key; allowed: values, min, max, step, sampling",
    )
    in_range = f"[{dimension.lowest}, {dimension.highest}]"
    if "values" in raw:
        _require(
            not {"min", "max", "step", "sampling"} & set(raw),
            "values",
            "give either `values` or `min`/`max` (+ `step`, `sampling`), not both",
        )
        listed = raw["values"]
        _require(
            isinstance(listed, list) and listed,
            "values",
            f"must be a non-empty list, got {listed!r}",
        )
        values = tuple(_value(item, kind, "values") for item in listed)
        _require(len(set(values)) == len(values), "values", f"lists a value twice: {listed}")
        if kind is not bool:
            for value in values:
                _require(
                    dimension.lowest <= value <= dimension.highest,
                    "values",
                    f"must lie in {in_range}, got {value!r}",
                )
        return SearchDimension(name, values=values)
    _require(kind is not bool, "values", "a yes/no dimension takes `values: [true, false]`")
    for key in ("min", "max"):
        _require(key in raw, key, "is missing (or give `values`)")
    low, high = _value(raw["min"], kind, "min"), _value(raw["max"], kind, "max")
    for key, value in (("min", low), ("max", high)):
        _require(
            dimension.lowest <= value <= dimension.highest,
            key,
            f"must lie in {in_range}, got {value}",
        )
    _require(low <= high, "min", f"({low}) must not exceed max ({high})")
    sampling = raw.get("sampling", "linear")
    _require(sampling in ("linear", "log"), "sampling", f"must be linear or log, got {sampling!r}")
    step = None if raw.get("step") is None else _value(raw["step"], kind, "step")
    if sampling == "log":
        _require(low > 0, "min", "must be > 0 with sampling: log")
        _require(
            step is None or step > 1,
            "step",
            f"must be > 1 with sampling: log (it multiplies: min, min*step, ...), got {step}",
        )
    else:
        _require(step is None or step > 0, "step", f"must be > 0, got {step}")
    return SearchDimension(name, min=low, max=high, step=step, sampling=sampling)


def _value(raw: Any, kind: type, key: str) -> Any:
    if kind is bool:
        _require(isinstance(raw, bool), key, f"must be true or false, got {raw!r}")
        return raw
    return _number(raw, kind, key)


@dataclass(frozen=True)
class SearchSpace:
    """What Keras Tuner searches: one `SearchDimension` per field of `Hyperparameters`, in order."""

    dimensions: tuple[SearchDimension, ...]

    def __getitem__(self, name: str) -> SearchDimension:
        return next(dimension for dimension in self.dimensions if dimension.name == name)

    @property
    def size(self) -> float:
        """The number of distinct points (`math.inf` if any dimension is continuous)."""
        return math.prod(dimension.size for dimension in self.dimensions)

    @classmethod
    def parse(cls, raw: Any, key: str) -> SearchSpace:
        _require(isinstance(raw, dict), key, f"must be a mapping, got {raw!r}")
        dimensions = Hyperparameters.dimensions()
        names = [dimension.name for dimension in dimensions]
        unknown = sorted(set(raw) - set(names))
        _require(
            not unknown,
            f"{key}.{unknown[0]}" if unknown else key,
            f"unknown dimension; the model has: {', '.join(names)}",
        )
        parsed = []
        for dimension in dimensions:
            _require(dimension.name in raw, f"{key}.{dimension.name}", "is missing")
            try:
                parsed.append(_parse_dimension(dimension, raw[dimension.name]))
            except _Invalid as error:
                sub = f".{error.key}" if error.key else ""
                raise _Invalid(f"{key}.{dimension.name}{sub}", error.message) from None
        return cls(tuple(parsed))


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
    noise_seeds: int
    space: SearchSpace
    # Serve or join a distributed search's oracle on an address outside loopback and the private
    # ranges (its gRPC service has no authentication; see `digits.oracle.check_oracle_address`).
    allow_public_oracle: bool = False

    # How the search is run, not what it searches: these never split a search in two.
    EXECUTION: typing.ClassVar[tuple[str, ...]] = (
        "max_trials",
        "workers",
        "trial_timeout_minutes",
        "trials_per_process",
        "noise_seeds",
        "allow_public_oracle",
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
            0 <= self.noise_seeds <= 20,
            "noise_seeds",
            f"must be in [0, 20] (0: do not measure the noise), got {self.noise_seeds}",
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
    """Random changes applied to training images only: affine distortions (rotation, shift,
    zoom) and intensity changes (contrast on a background level, Gaussian pixel noise). The
    intensity fields default to 0 (off) for code that builds only an affine augmentation."""

    rotation_degrees: float
    shift_fraction: float
    zoom_fraction: float
    contrast_fraction: float = 0.0
    noise_std: float = 0.0

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
        _require(
            0 <= self.contrast_fraction <= 0.9,
            "contrast_fraction",
            f"must be in [0, 0.9], got {self.contrast_fraction}",
        )
        _require(
            0 <= self.noise_std <= 0.5, "noise_std", f"must be in [0, 0.5], got {self.noise_std}"
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

    def __post_init__(self) -> None:
        _require(
            1 <= self.gallery_size <= 400,
            "gallery_size",
            f"must be in [1, 400], got {self.gallery_size}",
        )
        _require(
            1 <= self.top_pairs <= 90, "top_pairs", f"must be in [1, 90], got {self.top_pairs}"
        )


@dataclass(frozen=True)
class Params:
    runtime: RuntimeParams
    prepare: PrepareParams
    tuner: TunerParams
    train: TrainParams
    evaluate: EvaluateParams
    error_analysis: ErrorAnalysisParams


# The sections of params.yaml each stage reads: its `params` in dvc.yaml (a test keeps them equal).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "prepare": ("prepare",),
    "tune": ("runtime", "tuner"),
    "train": ("runtime", "train"),
    "evaluate": ("runtime", "evaluate"),
    "error_analysis": ("error_analysis",),
}
ONE_RUN_PER_WORKSPACE = (
    "run one `dvc exp run` per workspace at a time (for more, `dvc exp run --queue ...` each, "
    "then `dvc queue start`)"
)


def confirm_unchanged(read: Params, stage: str, path: Path | str = PARAMS_FILE) -> None:
    """Check, just before `stage` publishes its outputs, that the params file still holds the
    values `read` was loaded with in every section the stage reads (`STAGE_SECTIONS`).

    DVC records a stage's params in dvc.lock from the file as it is after the stage exits, so an
    edit made while the stage ran would be recorded for outputs made with other values. A second
    `dvc exp run -S ...` in the same workspace makes one: it writes params.yaml before DVC's lock
    refuses it. Values are compared as parsed, so `1e-3` and `0.001` are the same.

    Raises `ParamsError` naming the first changed key (old -> new), or the new file's problem.
    """
    try:
        now = load_params(path)
    except ParamsError as error:
        raise ParamsError(
            f"{path} changed while the {stage} stage ran and is no longer valid ({error}); "
            f"nothing was published: {ONE_RUN_PER_WORKSPACE}"
        ) from None
    for section in STAGE_SECTIONS[stage]:
        before = dict(_leaves(getattr(read, section), section))
        after = dict(_leaves(getattr(now, section), section))
        for key, value in before.items():  # parsed sections: the same keys, in the same order
            if after[key] != value:
                raise ParamsError(
                    f"{path}: {key} changed ({_shown(value)} -> {_shown(after[key])}) while "
                    f"the {stage} stage ran, so DVC would record the new value for outputs made "
                    f"with the old; nothing was published: "
                    f"{ONE_RUN_PER_WORKSPACE}"
                )


def _leaves(value: Any, key: str) -> typing.Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf of a parsed section, e.g. `tuner.space.dropout.min`."""
    if isinstance(value, SearchSpace):
        for dimension in value.dimensions:
            yield from _leaves(dimension, f"{key}.{dimension.name}")
    elif dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            if not (isinstance(value, SearchDimension) and field.name == "name"):
                yield from _leaves(getattr(value, field.name), f"{key}.{field.name}")
    else:
        yield key, value


def _shown(value: Any) -> str:
    """`value` as params.yaml spells it: null, true, [1, 2]."""
    if isinstance(value, tuple):
        return f"[{', '.join(_shown(item) for item in value)}]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read and validate the whole params file; raise `ParamsError` on the first problem."""
    path = Path(path)
    text = read_params_text(path)
    try:
        raw = _yaml_1_2(text)
    except YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    return parse_params(raw, source=str(path))


def read_params_text(path: Path | str = PARAMS_FILE) -> str:
    """The text of the params file, which must be UTF-8 (DVC reads it as UTF-8 too).

    Raises `ParamsError` when the file is missing, or naming the first byte that is not UTF-8,
    its 0-based byte offset and its line, and the fix.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run the stage from the repository root") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ParamsError(
            f"{path} is not UTF-8: byte 0x{data[error.start]:02x} at position {error.start} "
            f"(line {line}) is not valid UTF-8; save {path.name} as UTF-8"
        ) from None


def _yaml_1_2(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate already-parsed YAML; raise `ParamsError` naming the first bad key."""
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
    for name in fields:
        key = f"{prefix}{name}"
        if name not in raw:
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
    if hint is SearchSpace:
        return SearchSpace.parse(value, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if hint is bool:
        _require(isinstance(value, bool), key, f"must be true or false, got {value!r}")
    elif hint in (int, float):
        return _number(value, hint, key)
    elif hint is str:
        _require(isinstance(value, str), key, f"must be a string, got {value!r}")
    return value


def _number(value: Any, kind: type, key: str) -> int | float:
    """`value` as `kind` (int or float), from any YAML 1.2 spelling of a number.

    Quoted numbers are read as YAML 1.2 would read them unquoted; an integer accepts a float
    with no fractional part (`1e2`); true/false is not a number.
    """
    if isinstance(value, str):
        try:
            parsed = _yaml_1_2(value)
        except YAMLError:
            parsed = value
        value = parsed if isinstance(parsed, (int, float)) else value
    what = "an integer" if kind is int else "a number"
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool),
        key,
        f"must be {what}, got {value!r}",
    )
    _require(math.isfinite(value), key, f"must be finite, got {value}")
    if kind is int:
        _require(float(value).is_integer(), key, f"must be an integer, got {value!r}")
        return int(value)
    return float(value)
