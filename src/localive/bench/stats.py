"""Percentiles and summaries of latency samples (pure functions, no dependencies)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default method)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p99: float
    mean: float
    min: float
    max: float

    def scaled(self, factor: float) -> Summary:
        """The same summary in other units (e.g. seconds → milliseconds)."""
        return Summary(self.n, self.p50 * factor, self.p99 * factor, self.mean * factor, self.min * factor,
                       self.max * factor)


def summarize(samples: Sequence[float]) -> Summary:
    if not samples:
        raise ValueError("summary of no samples")
    return Summary(
        n=len(samples),
        p50=percentile(samples, 50),
        p99=percentile(samples, 99),
        mean=sum(samples) / len(samples),
        min=min(samples),
        max=max(samples),
    )


@dataclass(frozen=True)
class Spread:
    """Latency percentiles as the voice benchmark reports them (p50 and p90)."""

    n: int
    p50: float
    p90: float
    mean: float
    min: float
    max: float


def spread(samples: Sequence[float]) -> Spread:
    if not samples:
        raise ValueError("summary of no samples")
    return Spread(
        n=len(samples),
        p50=percentile(samples, 50),
        p90=percentile(samples, 90),
        mean=sum(samples) / len(samples),
        min=min(samples),
        max=max(samples),
    )
