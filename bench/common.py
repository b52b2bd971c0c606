"""Shared pieces of the benchmarks: the result record, interleaved timing, percentiles.

Every case measures its subject and its baseline in the same process, alternating in rounds
(baseline, subject, baseline, subject, ...) so that drift of the machine (other processes, disk
cache, CPU frequency) hits both alike. A case's figure is the median over its rounds, and so is
its baseline; the ratio divides the two.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass
class Result:
    """One line of the report: a figure and the baseline measured beside it."""

    case: str
    metric: str  # what the figure is, e.g. "publish throughput"
    unit: str  # e.g. "msg/s", "ms"
    figure: float
    baseline: float
    baseline_label: str  # what the baseline is, in a few words
    better: Literal["higher", "lower"]  # which direction of the figure is an improvement
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """figure / baseline, always in that order (read it with ``better``)."""
        return self.figure / self.baseline if self.baseline else float("nan")

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": round(self.ratio, 4)}


@dataclass
class Rounds:
    """Rates (per second) of the subject and the baseline, one value per round."""

    subject: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)

    @property
    def subject_median(self) -> float:
        return statistics.median(self.subject)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline)

    def ratio_spread(self) -> tuple[float, float]:
        """The lowest and highest per-round ratio (a noise indicator for the report)."""
        ratios = [s / b for s, b in zip(self.subject, self.baseline, strict=True) if b]
        return (min(ratios), max(ratios)) if ratios else (float("nan"), float("nan"))

    def details(self, ndigits: int = 1) -> dict[str, Any]:
        low, high = self.ratio_spread()
        return {
            "rounds": len(self.subject),
            "subject_rounds": [round(v, ndigits) for v in self.subject],
            "baseline_rounds": [round(v, ndigits) for v in self.baseline],
            "round_ratio_min": round(low, 4),
            "round_ratio_max": round(high, 4),
        }


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def interleave_sync(rounds: int, subject: Callable[[], int], baseline: Callable[[], int]) -> Rounds:
    """Run ``baseline`` then ``subject`` ``rounds`` times; each returns how many ops it did."""
    out = Rounds()
    for _ in range(rounds):
        start = time.perf_counter()
        n = baseline()
        out.baseline.append(rate(n, time.perf_counter() - start))
        start = time.perf_counter()
        n = subject()
        out.subject.append(rate(n, time.perf_counter() - start))
    return out


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported value was observed)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def latency_result(
    case: str,
    metric: str,
    pct: float,
    subject: list[float],
    baseline: list[float],
    baseline_label: str,
    details: dict[str, Any],
) -> Result:
    """A latency percentile (seconds in, ms out) beside the same percentile of the baseline."""
    return Result(
        case=case,
        metric=metric,
        unit="ms",
        figure=percentile(subject, pct) * 1000,
        baseline=percentile(baseline, pct) * 1000,
        baseline_label=baseline_label,
        better="lower",
        details=details,
    )
