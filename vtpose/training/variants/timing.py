"""Timing models on this machine: single-image latency, several models interleaved so that whatever else the
machine does lands on all of them alike, and a record of the machine it was measured on."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Latency:
    """Single-image latency of one model on this machine.

    Attributes:
        median_ms: median of `runs` timed calls, milliseconds.
        p90_ms: their 90th percentile, milliseconds.
        runs: timed calls; warmup: untimed calls made first.
    """

    median_ms: float
    p90_ms: float
    runs: int
    warmup: int


def measure_latency(call: Callable[[], Any], runs: int = 15, warmup: int = 3) -> Latency:
    """Time `call()` `runs` times after `warmup` untimed calls (buffers sized, graphs compiled).

    Args:
        call: one single-image prediction (e.g. `lambda: predictor.predict([image])`).
        runs: timed calls (>= 1).
        warmup: untimed calls first (>= 0).

    Raises:
        ValueError: runs < 1 or warmup < 0.
    """
    return measure_latencies([call], runs=runs, warmup=warmup)[0]


def measure_latencies(calls: Sequence[Callable[[], Any]], runs: int = 15, warmup: int = 3) -> list[Latency]:
    """Time several models against each other: `warmup` untimed calls each, then `runs` rounds of one timed call
    each, the order rotated every round.

    Interleaving spreads whatever else the machine is doing over every model alike, so a busy moment does not
    land on one of them; the medians are then comparable even on shared cores.

    Args:
        calls: one single-image prediction per model.
        runs: timed rounds (>= 1).
        warmup: untimed calls per model first (>= 0).

    Returns:
        One `Latency` per call, in order.

    Raises:
        ValueError: runs < 1 or warmup < 0.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs} must be >= 1 and warmup={warmup} >= 0")
    for call in calls:
        for _ in range(warmup):
            call()
    times: list[list[float]] = [[] for _ in calls]
    for round_ in range(runs):
        for offset in range(len(calls)):
            index = (round_ + offset) % len(calls)
            start = time.perf_counter()
            calls[index]()
            times[index].append((time.perf_counter() - start) * 1000.0)
    return [
        Latency(median_ms=float(statistics.median(t)), p90_ms=float(np.percentile(t, 90)), runs=runs, warmup=warmup)
        for t in times
    ]


def machine_info() -> dict[str, Any]:
    """The machine the latencies were measured on: usable CPU cores, processor, OS."""
    return {
        "cpu_cores": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(terse=True),
        "hostname": platform.node(),
    }
