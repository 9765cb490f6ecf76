"""The hyperparameters of the CNN family: the one definition of every search dimension.

`Hyperparameters` lists each dimension once, with its type and the range params.yaml may search.
`digits.params` validates `tuner.space` against it, the tuner declares one Keras Tuner
hyperparameter per field, and `digits.model.build_model` reads the values. Free of TensorFlow,
so validating params loads nothing heavy.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digits.errors import DigitsError

RERUN_TUNE = "Rerun the tune stage: `dvc repro tune`"


def _dimension(lowest: float, highest: float) -> Any:
    return field(metadata={"range": (lowest, highest)})


@dataclass(frozen=True)
class Dimension:
    """One searchable hyperparameter: its name, Python type and the widest range allowed."""

    name: str
    kind: type  # int, float or bool
    lowest: float
    highest: float

    def contains(self, value: float) -> bool:
        """Whether `value` is in [lowest, highest], give or take float rounding: Keras Tuner's
        float steps accumulate it (steps of 0.2 from 0.3 reach 0.9000000000000001)."""
        slack = 1e-9 * max(1.0, abs(self.lowest), abs(self.highest))
        return self.lowest - slack <= value <= self.highest + slack


@dataclass(frozen=True)
class Hyperparameters:
    """One point of the search space: what tune writes and train reads."""

    conv_blocks: int = _dimension(1, 3)
    convs_per_block: int = _dimension(1, 3)
    base_filters: int = _dimension(4, 256)  # filters of the first block; each block doubles them
    first_kernel_size: int = _dimension(2, 7)  # the first convolution's (1 input channel: cheap)
    kernel_size: int = _dimension(2, 7)  # every other convolution's
    batch_norm: bool = _dimension(0, 1)
    dropout: float = _dimension(0.0, 0.9)
    dense_units: int = _dimension(8, 2048)
    learning_rate: float = _dimension(1e-6, 1.0)  # Adam's peak learning rate

    @classmethod
    def dimensions(cls) -> list[Dimension]:
        hints = typing.get_type_hints(cls)
        return [
            Dimension(item.name, hints[item.name], *item.metadata["range"])
            for item in dataclasses.fields(cls)
        ]

    @classmethod
    def from_dict(
        cls, values: dict[str, Any], source: str = "hyperparameters", remedy: str = RERUN_TUNE
    ) -> Hyperparameters:
        """The point `values` names, each float dimension's value a float (so 0 and 0.0 give
        the same model config and run key). Raises `DigitsError` naming missing or unknown keys,
        or a value of the wrong type or outside its dimension's range, then `remedy`: how to
        fix where `values` came from."""
        names = {item.name for item in dataclasses.fields(cls)}
        if not isinstance(values, dict):
            raise DigitsError(
                f"{source}: expected a mapping of {sorted(names)}, "
                f"got {type(values).__name__}. {remedy}"
            )
        if set(values) != names:
            missing = sorted(names - set(values))
            unknown = sorted(set(values) - names)
            raise DigitsError(
                f"{source}: expected keys {sorted(names)}; "
                f"missing {missing}, unknown {unknown}. {remedy}"
            )
        checked = {}
        for dimension in cls.dimensions():
            value = values[dimension.name]
            numeric = (int, float) if dimension.kind is float else dimension.kind
            right_type = isinstance(value, numeric) and (
                dimension.kind is bool or not isinstance(value, bool)
            )
            if not right_type or not dimension.contains(value):
                bounds = f"[{dimension.lowest:g}, {dimension.highest:g}]"
                kind = dimension.kind.__name__
                allowed = "true or false" if dimension.kind is bool else f"{kind} in {bounds}"
                raise DigitsError(
                    f"{source}: {dimension.name}: expected {allowed}, got {value!r}. {remedy}"
                )
            checked[dimension.name] = float(value) if dimension.kind is float else value
        return cls(**checked)

    @classmethod
    def load(cls, path: Path | str) -> Hyperparameters:
        """Read the JSON that tune writes; raises `DigitsError` when missing or unreadable."""
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise DigitsError(
                f"{path} not found: run the tune stage first (`dvc repro tune`)"
            ) from None
        except json.JSONDecodeError as error:
            raise DigitsError(
                f"{path} is not valid JSON ({error}): rerun `dvc repro tune`"
            ) from None
        return cls.from_dict(values, str(path))
