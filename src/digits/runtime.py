"""Seeds, thread counts and op determinism: call `configure` before any TensorFlow work."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

# The vector extensions that change TensorFlow's CPU kernels, hence its last-digit results.
VECTOR_EXTENSIONS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")


def configure(seed: int, threads: int) -> dict[str, Any]:
    """Make runs repeatable: same seed, params, thread count and CPU give the same weights.

    Returns the settings and the environment, so stages record them beside their metrics: other
    CPUs run other kernels (`VECTOR_EXTENSIONS`) and give other last digits for the same params.
    Raises RuntimeError (from TensorFlow) when TensorFlow has already started with other thread
    counts.
    """
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    return {"seed": seed, "threads": threads, "environment": environment()}


def environment() -> dict[str, str]:
    """CPU model and vector extensions, and the versions that decide the arithmetic."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():  # Linux; elsewhere the platform module's answer stands
        for line in cpuinfo.read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                model = value.strip()
            elif name.strip() == "flags":
                flags = set(value.split())
    return {
        "cpu": model,
        "cpu_extensions": " ".join(ext for ext in VECTOR_EXTENSIONS if ext in flags),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
