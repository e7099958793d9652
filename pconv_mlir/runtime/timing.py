"""The host cost model: how long a call takes on this machine, measured.

    >>> median_seconds(lambda: runner.call("conv", x, out))   # doctest: +SKIP
    0.00042

The median of a few timed runs after a warm-up is robust to the odd slow run (a page fault, a
context switch) that would skew a mean; it is the tuner's cost figure for code that runs on
the host (`pconv_mlir.runtime.mca` estimates the cycles of code that does not).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["median_seconds"]


def median_seconds(call: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """The median wall time of `call()` over `repeats` runs, after `warmup` untimed runs.

    Each run is timed with `time.perf_counter`; `repeats` must be at least 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
