"""params.yaml, parsed and validated once, by pydantic, into typed, frozen objects.

Each stage loads only the sections it reads (`load_section`), the ones `dvc.yaml` lists for it.
Any problem (unknown key, missing key, wrong type, value out of range) raises `ParamsError`: one
line naming the dotted key, the value and what is allowed, before any work starts.

The file is read as YAML 1.2, as DVC reads and writes it (`dvc exp run -S` writes `1e-05`, which
YAML 1.1 readers such as PyYAML take for a string), and every number is accepted in any spelling
YAML 1.2 gives it: `1e-05`, `0.00001`, `1E3`, `0x10`, `0o17`, `+5`, and `5.0` or `1e2` for an
integer; true and false are not numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, get_args

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from digits.errors import DigitsError
from digits.hyperparameters import Dimension, Hyperparameters

PARAMS_FILE = Path("params.yaml")
STRICT = ConfigDict(extra="forbid", frozen=True)
ONE_RUN_PER_WORKSPACE = (
    "run one `dvc exp run` per workspace at a time (for more, `dvc exp run --queue ...` each, "
    "then `dvc queue start`)"
)


class ParamsError(DigitsError):
    """params.yaml does not describe a valid run."""


class FieldError(ValueError):
    """A check that spans fields, raised inside a validator: names the field `message` is about
    (pydantic reports such errors at the enclosing object)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _yaml_1_2(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def _number(kind: type) -> BeforeValidator:
    """Accept `kind` (int or float) in any YAML 1.2 spelling, quoted ones included."""

    def convert(value: Any) -> int | float:
        if isinstance(value, str):
            try:
                parsed = _yaml_1_2(value)
            except YAMLError:
                parsed = value
            value = parsed if isinstance(parsed, (int, float)) else value
        what = "an integer" if kind is int else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be {what}")
        if not math.isfinite(value):
            raise ValueError("must be finite")
        if kind is int and not float(value).is_integer():
            raise ValueError("must be an integer")
        return kind(value)

    return BeforeValidator(convert)


Int = Annotated[int, _number(int)]
Float = Annotated[float, _number(float)]
T = TypeVar("T")


class Choice(BaseModel, Generic[T]):
    """A search dimension drawn from a list of `values`."""

    model_config = STRICT
    values: tuple[T, ...] = Field(min_length=1)

    @pydantic.model_validator(mode="after")
    def _distinct(self) -> Choice[T]:
        if len(set(self.values)) != len(self.values):
            raise FieldError("values", f"lists a value twice: {list(self.values)}")
        return self


class Range(BaseModel, Generic[T]):
    """A search dimension drawn from `min`..`max` (every `step`, or continuous for floats);
    with `sampling: log`, `step` multiplies (min, min*step, ...), as in Keras Tuner."""

    model_config = STRICT
    min: T
    max: T
    step: T | None = None
    sampling: Literal["linear", "log"] = "linear"

    @pydantic.model_validator(mode="after")
    def _keras_tuner_accepts(self) -> Range[T]:
        if self.min > self.max:
            raise FieldError("min", f"({self.min}) must not exceed max ({self.max})")
        if self.sampling == "log" and self.min <= 0:
            raise FieldError("min", f"must be > 0 with sampling: log, got {self.min}")
        if self.sampling == "log" and self.step is not None and self.step <= 1:
            raise FieldError(
                "step", f"must be > 1 with sampling: log (it multiplies), got {self.step}"
            )
        if self.sampling == "linear" and self.step is not None and self.step <= 0:
            raise FieldError("step", f"must be > 0, got {self.step}")
        return self


@dataclasses.dataclass(frozen=True)
class SearchDimension:
    """How one hyperparameter is searched: a list of `values`, or a `min`..`max` range, each
    value already of the dimension's type (int, float or bool, as `Hyperparameters` says)."""

    name: str
    values: tuple[Any, ...] | None = None
    min: Any = None
    max: Any = None
    step: Any = None
    sampling: Literal["linear", "log"] = "linear"

    @property
    def kind(self) -> type:
        return next(d.kind for d in Hyperparameters.dimensions() if d.name == self.name)

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


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """What Keras Tuner searches: one `SearchDimension` per field of `Hyperparameters`, in order."""

    dimensions: tuple[SearchDimension, ...]

    def __getitem__(self, name: str) -> SearchDimension:
        return next(dimension for dimension in self.dimensions if dimension.name == name)

    @property
    def size(self) -> float:
        """The number of distinct points (`math.inf` if any dimension is continuous)."""
        return math.prod(dimension.size for dimension in self.dimensions)


def _form(raw: Any) -> str:
    """Which form a dimension's spec takes: a choice when it lists `values`."""
    return "choice" if isinstance(raw, dict) and "values" in raw else "range"


def _within(dimension: Dimension) -> pydantic.AfterValidator:
    """Every value a dimension's spec can draw lies in the range `Hyperparameters` allows."""

    def check(spec: Choice | Range) -> Choice | Range:
        drawn = (
            {"values": spec.values}
            if isinstance(spec, Choice)
            else {"min": (spec.min,), "max": (spec.max,)}
        )
        for key, values in drawn.items():
            for value in values:
                if not dimension.lowest <= value <= dimension.highest:
                    bounds = f"[{dimension.lowest:g}, {dimension.highest:g}]"
                    raise FieldError(key, f"must lie in {bounds}, got {value!r}")
        return spec

    return pydantic.AfterValidator(check)


def _spec(dimension: Dimension) -> Any:
    """The pydantic type of one `tuner.space` entry: `values: [...]`, or for numbers a range."""
    if dimension.kind is bool:
        return Choice[pydantic.StrictBool]
    kind = Int if dimension.kind is int else Float
    forms = Annotated[Choice[kind], Tag("choice")] | Annotated[Range[kind], Tag("range")]
    return Annotated[forms, Discriminator(_form), _within(dimension)]


_SpaceSpec = pydantic.create_model(
    "SearchSpaceSpec",
    __config__=STRICT,
    **{dimension.name: (_spec(dimension), ...) for dimension in Hyperparameters.dimensions()},
)


def _space(raw: Any) -> SearchSpace:
    """`tuner.space` as params.yaml writes it (a mapping of dimension specs), validated."""
    if isinstance(raw, SearchSpace):
        return raw
    try:
        spec = _SpaceSpec.model_validate(raw)
    except pydantic.ValidationError as error:
        key, message = _first_problem(error, _SpaceSpec)
        raise FieldError(key, message) from None
    dimensions = []
    for name in _SpaceSpec.model_fields:
        form = getattr(spec, name)
        if isinstance(form, Choice):
            dimensions.append(SearchDimension(name, values=form.values))
        else:
            dimensions.append(
                SearchDimension(
                    name, min=form.min, max=form.max, step=form.step, sampling=form.sampling
                )
            )
    return SearchSpace(tuple(dimensions))


SECTION = pydantic.dataclasses.dataclass(frozen=True, config=ConfigDict(extra="forbid"))


@SECTION
class RuntimeParams:
    """How TensorFlow uses the machine; results are reproducible for a fixed thread count."""

    KEY: ClassVar[str] = "runtime"
    threads: Annotated[Int, Field(ge=1, le=256)]


@SECTION
class PrepareParams:
    KEY: ClassVar[str] = "prepare"
    mirror: str | None
    validation_size: Annotated[Int, Field(ge=10)]  # one per class at least
    train_subsample: Annotated[Int, Field(ge=20, le=60_000)] | None
    test_subsample: Annotated[Int, Field(ge=10, le=10_000)] | None
    seed: Int

    @pydantic.model_validator(mode="after")
    def _leaves_training_images(self) -> PrepareParams:
        pool = self.train_subsample or 60_000
        if self.validation_size > pool - 10:
            raise FieldError(
                "validation_size",
                f"({self.validation_size}) must leave at least 10 of the {pool} training images "
                "for training; lower it or raise prepare.train_subsample",
            )
        return self


@SECTION
class TunerParams:
    """The search: its trials train `train`'s recipe on a compressed schedule (its budget here),
    and the chosen point follows `selection` (see `digits.selection`)."""

    KEY: ClassVar[str] = "tuner"
    max_trials: Annotated[Int, Field(ge=1)]
    num_initial_points: Annotated[Int, Field(ge=1)]
    seed: Int
    epochs_per_trial: Annotated[Int, Field(ge=1)]  # the trial's whole schedule, in epochs
    images_per_trial: Annotated[Int, Field(ge=10)] | None  # null: the whole training split
    max_mflops_per_image: Annotated[Float, Field(gt=0)] | None  # null: no cap
    selection: Literal["one_se", "best"]
    rescored_trials: Annotated[Int, Field(ge=0, le=20)]  # the best ones, for the seed noise
    noise_seeds: Annotated[Int, Field(ge=0, le=20)]  # other seeds each re-scored trial runs
    workers: Annotated[Int, Field(ge=0, le=64)]  # 0: search in the stage's own process
    trial_timeout_minutes: Annotated[Float, Field(gt=0)]
    trials_per_process: Annotated[Int, Field(ge=1)] | None  # null: all in the stage's process
    space: Annotated[SearchSpace, pydantic.PlainValidator(_space)]
    # Serve or join a distributed search's oracle on an address outside loopback and the private
    # ranges (its gRPC service has no authentication; see `digits.oracle.check_oracle_address`).
    allow_public_oracle: pydantic.StrictBool = False

    # How the search is run and read, not what it searches: these never split a search in two.
    EXECUTION: ClassVar[tuple[str, ...]] = (
        "max_trials",
        "selection",
        "rescored_trials",
        "noise_seeds",
        "workers",
        "trial_timeout_minutes",
        "trials_per_process",
        "allow_public_oracle",
    )

    @pydantic.model_validator(mode="after")
    def _noise_for_one_se(self) -> TunerParams:
        """The one-standard-error rule needs a standard error: at least 2 re-scored trials with
        at least 3 scores each (its own and 2 more seeds)."""
        if self.selection == "one_se" and (self.rescored_trials < 2 or self.noise_seeds < 2):
            raise FieldError(
                "selection",
                f"one_se needs rescored_trials >= 2 and noise_seeds >= 2 (got "
                f"{self.rescored_trials} and {self.noise_seeds}) for its standard error; "
                "raise them, or use selection: best",
            )
        return self


@SECTION
class AugmentationParams:
    """Random changes applied to training images only: affine distortions (rotation, shift,
    zoom) and intensity changes (contrast on a background level, Gaussian pixel noise). The
    intensity fields default to 0 (off) for code that builds only an affine augmentation."""

    rotation_degrees: Annotated[Float, Field(ge=0, le=45)]
    shift_fraction: Annotated[Float, Field(ge=0, le=0.3)]
    zoom_fraction: Annotated[Float, Field(ge=0, le=0.3)]
    contrast_fraction: Annotated[Float, Field(ge=0, le=0.9)] = 0.0
    noise_std: Annotated[Float, Field(ge=0, le=0.5)] = 0.0


def _hyperparameters(raw: Any) -> Hyperparameters | None:
    """`train.hyperparameters`: null, or a mapping naming every dimension of `Hyperparameters`
    (checked by `Hyperparameters.from_dict`: each key, type and range)."""
    if raw is None or isinstance(raw, Hyperparameters):
        return raw
    source = "train.hyperparameters"
    remedy = (
        f"Set {source} to a mapping of every dimension, or to null for the tuned point "
        f"(`dvc exp run -S '{source}=null'`)"
    )
    try:
        return Hyperparameters.from_dict(raw, source, remedy)
    except DigitsError as error:
        raise FieldError("", str(error).removeprefix(f"{source}: ")) from None


@SECTION
class TrainParams:
    KEY: ClassVar[str] = "train"
    epochs: Annotated[Int, Field(ge=1)]
    batch_size: Annotated[Int, Field(ge=1)]
    learning_rate: Annotated[Float, Field(gt=0, le=1)] | None  # peak; null: the tuned one
    warmup_epochs: Annotated[Float, Field(ge=0)]
    label_smoothing: Annotated[Float, Field(ge=0, lt=1)]
    early_stopping_patience: Annotated[Int, Field(ge=0)]
    seed: Int
    augmentation: AugmentationParams
    # The architecture trained; null: the tuned point (models/best_hyperparameters.json).
    hyperparameters: Annotated[
        Hyperparameters | None, pydantic.PlainValidator(_hyperparameters)
    ] = None

    @pydantic.model_validator(mode="after")
    def _warmup_within_training(self) -> TrainParams:
        if self.warmup_epochs >= self.epochs:
            raise FieldError(
                "warmup_epochs", f"must be below epochs ({self.epochs}), got {self.warmup_epochs}"
            )
        return self


@SECTION
class EvaluateParams:
    KEY: ClassVar[str] = "evaluate"
    batch_size: Annotated[Int, Field(ge=1)]


@SECTION
class ErrorAnalysisParams:
    KEY: ClassVar[str] = "error_analysis"
    gallery_size: Annotated[Int, Field(ge=1, le=400)]  # images per gallery
    top_pairs: Annotated[Int, Field(ge=1, le=90)]  # confused pairs reported and shown


@SECTION
class Params:
    """The whole file, for tools that read several sections (benchmarks)."""

    runtime: RuntimeParams
    prepare: PrepareParams
    tuner: TunerParams
    train: TrainParams
    evaluate: EvaluateParams
    error_analysis: ErrorAnalysisParams


S = TypeVar("S")
_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_WORDING = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "too_short": "must not be empty",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "literal_error": "must be {expected}",
    "dataclass_type": "must be a mapping",
    "model_type": "must be a mapping",
    "missing": "is missing",
}


def _fields(cls: Any) -> dict[str, Any]:
    """A section's or spec's field annotations by name ({} for anything else)."""
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return {name: field.annotation for name, field in cls.model_fields.items()}
    fields = getattr(cls, "__pydantic_fields__", {})
    return {name: field.annotation for name, field in fields.items()}


def _nested(annotation: Any) -> Any:
    """The section or spec type inside an annotation (`X | None`, `Annotated[X, ...]`)."""
    if _fields(annotation):
        return annotation
    return next((found for arg in get_args(annotation) if (found := _nested(arg))), None)


def _allowed_keys(cls: Any, loc: tuple) -> list[str]:
    for part in loc:
        if part in ("choice", "range"):
            cls = {"choice": Choice, "range": Range}[part]
        else:
            cls = _nested(_fields(cls).get(part))
    return list(_fields(cls))


def _first_problem(error: pydantic.ValidationError, cls: Any) -> tuple[str, str]:
    """(dotted key, message) for the first problem pydantic found validating `cls`."""
    problems = error.errors(include_url=False)
    # A misspelt key shows as an unknown one and a missing one: name the unknown one.
    problem = next((p for p in problems if p["type"] in _UNKNOWN), problems[0])
    loc = problem["loc"]
    key = [str(part) for part in loc if isinstance(part, str) and part not in ("choice", "range")]
    cause = problem.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):
        key.append(cause.field)
        return ".".join(filter(None, key)), str(cause)
    if isinstance(cause, ValueError):
        message = str(cause)
    elif problem["type"] in _UNKNOWN:
        allowed = ", ".join(_allowed_keys(cls, loc[:-1]))
        return ".".join(key), f"unknown key; allowed keys here: {allowed}"
    else:
        wording = _WORDING.get(
            problem["type"], problem["msg"].replace("Input should be", "must be")
        )
        message = wording.format(**problem.get("ctx", {}))
    if problem["type"] != "missing":
        message += f", got {_shown(problem['input'])}"
    return ".".join(key), message


def _shown(value: Any) -> str:
    """`value` as params.yaml spells it: null, true, [1, 2], 'text'."""
    if isinstance(value, (tuple, list)):
        return f"[{', '.join(_shown(item) for item in value)}]"
    if isinstance(value, Hyperparameters):
        pairs = (f"{name}: {_shown(item)}" for name, item in dataclasses.asdict(value).items())
        return f"{{{', '.join(pairs)}}}"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value) if isinstance(value, str) else str(value)


def _validated(cls: type[S], raw: Any, source: str, prefix: str) -> S:
    try:
        return pydantic.TypeAdapter(cls).validate_python(raw)
    except pydantic.ValidationError as error:
        key, message = _first_problem(error, cls)
        dotted = ".".join(filter(None, (prefix, key))) or "(top level)"
        raise ParamsError(f"{source}: {dotted}: {message}") from None


def read_params(path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """The params file as YAML 1.2 data. Raises `ParamsError` when it is missing, not UTF-8
    (naming the byte, its 0-based offset and line), not YAML, or not a mapping."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run the stage from the repository root") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ParamsError(
            f"{path} is not UTF-8: byte 0x{data[error.start]:02x} at position {error.start} "
            f"(line {line}) is not valid UTF-8; save {path.name} as UTF-8"
        ) from None
    try:
        raw = _yaml_1_2(text)
    except YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {_shown(raw)}")
    return raw


def load_section(cls: type[S], path: Path | str = PARAMS_FILE) -> S:
    """One section of the params file (`cls.KEY`), validated; raises `ParamsError`."""
    raw = read_params(path)
    if cls.KEY not in raw:
        raise ParamsError(f"{path}: {cls.KEY}: is missing")
    return _validated(cls, raw[cls.KEY], str(path), cls.KEY)


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """The whole params file, validated; raises `ParamsError` on the first problem."""
    return parse_params(read_params(path), str(path))


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate already-parsed YAML; raise `ParamsError` naming the first bad key."""
    return _validated(Params, raw, source, "")


def confirm_unchanged(*sections: Any, stage: str, path: Path | str = PARAMS_FILE) -> None:
    """Check, just before `stage` publishes its outputs, that the params file still holds the
    values of the `sections` the stage loaded.

    DVC records a stage's params in dvc.lock from the file as it is after the stage exits, so an
    edit made while the stage ran would be recorded for outputs made with other values. A second
    `dvc exp run -S ...` in the same workspace makes one: it writes params.yaml before DVC's lock
    refuses it. Values are compared as parsed, so `1e-3` and `0.001` are the same.

    Raises `ParamsError` naming the first changed key (old -> new), or the new file's problem.
    """
    for read in sections:
        try:
            now = load_section(type(read), path)
        except ParamsError as error:
            raise ParamsError(
                f"{path} changed while the {stage} stage ran and is no longer valid ({error}); "
                f"nothing was published: {ONE_RUN_PER_WORKSPACE}"
            ) from None
        after = dict(_leaves(now, read.KEY))
        for key, value in _leaves(read, read.KEY):
            if after[key] != value:
                raise ParamsError(
                    f"{path}: {key} changed ({_shown(value)} -> {_shown(after[key])}) while "
                    f"the {stage} stage ran, so DVC would record the new value for outputs made "
                    f"with the old; nothing was published: {ONE_RUN_PER_WORKSPACE}"
                )


def _leaves(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf of a parsed section, e.g. `tuner.space.dropout.min`;
    `train.hyperparameters` is one leaf (null or a whole point)."""
    if isinstance(value, SearchSpace):
        for dimension in value.dimensions:
            yield from _leaves(dimension, f"{key}.{dimension.name}")
    elif dataclasses.is_dataclass(value) and not isinstance(value, Hyperparameters):
        for field in dataclasses.fields(value):
            if not (isinstance(value, SearchDimension) and field.name == "name"):
                yield from _leaves(getattr(value, field.name), f"{key}.{field.name}")
    else:
        yield key, value
