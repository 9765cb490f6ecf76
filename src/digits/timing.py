"""Seconds a training step takes under `model.fit`, as the train stage runs it.

Used by the benchmarks (benchmarks/step_time.py, benchmarks/mnist_c.py); no pipeline stage
imports this module.
"""

from __future__ import annotations

import time
from typing import Any

import keras
import tensorflow as tf


def fit_steps(model: keras.Model, batches: tf.data.Dataset, steps: int) -> float:
    """Mean seconds a step over one `model.fit` epoch of `steps` steps (at least 2), from the end
    of the first step (which may include the start of the epoch) to the end of the last."""
    ends: list[float] = []

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            ends.append(time.perf_counter())

    model.fit(batches, epochs=1, steps_per_epoch=steps, callbacks=[StepClock()], verbose=0)
    return (ends[-1] - ends[0]) / (steps - 1)
