"""Is a difference, or a training curve's movement, beyond its noise?

One rule for every verdict (the report, the demo's printout and the benchmarks' tables):

* Two encoders scored on the same test images, one seed: McNemar's exact test on per-image
  correctness (McNemar 1947; the exact binomial form of Edwards 1948). Only the images that one
  encoder gets right and the other wrong carry information; under "no difference" each such
  image is a fair coin.
* Several paired seeds: the mean difference against twice its standard error (sd / sqrt(n)).
* A curve: the mean of its first tenth against the mean of its last tenth, beside the
  step-to-step noise (von Neumann: the sd of successive differences / sqrt 2, which a steady
  trend does not inflate).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ALPHA = 0.05  # two-sided level of the paired tests
Direction = Literal["better", "worse", "none"]


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict[str, float | int]:
    """Two-sided exact McNemar test of two classifiers on the same images.

    Returns ``only_a`` (images a gets right and b wrong), ``only_b`` and ``p_value``:
    P(a split at least this uneven | each discordant image is a fair coin).
    """
    if len(a_correct) != len(b_correct):
        raise ValueError(f"McNemar needs the same test images: {len(a_correct)} against {len(b_correct)} results")
    only_a = sum(1 for a, b in zip(a_correct, b_correct) if a and not b)
    only_b = sum(1 for a, b in zip(a_correct, b_correct) if b and not a)
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return {"only_a": 0, "only_b": 0, "p_value": 1.0}
    # log-space binomial tail: exact enough and safe for n in the tens of thousands
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(x - top) for x in logs)
    return {"only_a": only_a, "only_b": only_b, "p_value": min(1.0, 2 * tail)}


def decode_correct(bits: str) -> list[bool]:
    """Per-image correctness as stored in an eval JSON: one '1' or '0' per test image."""
    return [c == "1" for c in bits]


def encode_correct(correct: Sequence[bool]) -> str:
    return "".join("1" if c else "0" for c in correct)


@dataclass(frozen=True)
class SeedDifference:
    mean: float
    sd: float | None
    se: float | None
    direction: Direction

    @property
    def beyond_2se(self) -> bool:
        return self.direction != "none"


def paired_seeds(diffs: Sequence[float]) -> SeedDifference:
    """Several seeds, each a paired difference a - b: beyond the noise when |mean| > 2 SE."""
    n = len(diffs)
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if n > 1 else None
    se = sd / math.sqrt(n) if sd is not None else None
    beyond = se is not None and abs(mean) > 2 * se
    return SeedDifference(mean, sd, se, ("better" if mean > 0 else "worse") if beyond else "none")


@dataclass(frozen=True)
class Trend:
    """A curve's first and last tenth, its step-to-step noise, and whether it moved beyond it."""
    first: float
    last: float
    noise: float | None  # standard error of last - first; None with too few points to tell
    points: int
    direction: Literal["falls", "rises", "flat", "too few points"]

    def words(self, digits: int = 2) -> str:
        f = f"{{:.{digits}f}}"
        noise = "" if self.noise is None else f", noise {f.format(self.noise)}"
        return f"{f.format(self.first)} -> {f.format(self.last)} ({self.direction}{noise}, {self.points} points)"


MIN_POINTS = 4  # successive differences from fewer points say nothing about the noise


def trend(values: Sequence[float]) -> Trend:
    """The mean of the first tenth against the last tenth of ``values`` (at least one point
    each); it moved when the change exceeds twice its standard error, estimated from the
    successive differences of the whole curve."""
    n = len(values)
    if n == 0:
        raise ValueError("a trend needs at least one value")
    tenth = max(1, n // 10)
    first, last = statistics.fmean(values[:tenth]), statistics.fmean(values[-tenth:])
    if n < MIN_POINTS:
        return Trend(first, last, None, n, "too few points")
    steps = [b - a for a, b in zip(values, values[1:])]
    sigma = statistics.stdev(steps) / math.sqrt(2)  # the noise of one value
    se = sigma * math.sqrt(2 / tenth)
    change = last - first
    direction = "flat" if abs(change) <= 2 * se else ("falls" if change < 0 else "rises")
    return Trend(first, last, se, n, direction)
