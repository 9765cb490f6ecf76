"""Seeds, thread counts and op determinism: call `configure` before any TensorFlow work."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf


def configure(seed: int, threads: int) -> dict[str, Any]:
    """Make runs repeatable: same seed, params and thread count give the same weights.

    Returns the settings, so stages can record them next to their metrics.
    """
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    return {
        "seed": seed,
        "threads": threads,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
