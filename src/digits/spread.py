"""How the benchmarks (benchmarks/) report a figure measured over several seeds or runs.

No pipeline stage imports this module, and it imports nothing heavy (no TensorFlow), so scripts
that only drive other processes can use it.
"""

from __future__ import annotations

import statistics


def spread(values: list[float], digits: int = 6) -> dict[str, float | None]:
    """Mean, sample standard deviation (None for one value), min and max of `values`, each
    rounded to `digits` decimals. Raises statistics.StatisticsError for an empty list."""
    return {
        "mean": round(statistics.mean(values), digits),
        "sd": round(statistics.stdev(values), digits) if len(values) > 1 else None,
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }
