"""What the benchmarks report for a figure measured over several seeds."""

from __future__ import annotations

import statistics


def spread(values: list[float], digits: int = 6) -> dict[str, float | None]:
    """Mean, sample standard deviation (None for one value), min and max of `values`."""
    return {
        "mean": round(statistics.mean(values), digits),
        "sd": round(statistics.stdev(values), digits) if len(values) > 1 else None,
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }
