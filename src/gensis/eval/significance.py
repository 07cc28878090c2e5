"""Is a difference, or a training curve's movement, beyond its noise?

One rule for every verdict (the report, the demo's printout and the benchmarks' tables):

* Two encoders scored on the same test images, one seed: McNemar's exact test on per-image
  correctness (McNemar 1947; the exact binomial form of Edwards 1948). Only the images that one
  encoder gets right and the other wrong carry information; under "no difference" each such
  image is a fair coin.
* Several paired seeds: the mean difference with its Student-t 95 % interval (n - 1 degrees of
  freedom; "Student" 1908); it is decided when the interval excludes 0. Beside it, the exact
  sign-flip test (Fisher 1935: under "no difference" each seed's sign is a fair coin), which
  needs no normality and shows what few seeds can say: with n seeds its smallest two-sided p is
  2 / 2**n, so 5 seeds or fewer can never reach p < 0.05.
* A curve: the mean of its first tenth against the mean of its last tenth, beside the
  step-to-step noise (von Neumann: the sd of successive differences / sqrt 2, which a steady
  trend does not inflate).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

ALPHA = 0.05  # two-sided level of the paired tests
Direction = Literal["better", "worse", "none"]


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict[str, float | int]:
    """Two-sided exact McNemar test of two classifiers on the same images.

    Returns ``only_a`` (images a gets right and b wrong), ``only_b`` and ``p_value``:
    P(a split at least this uneven | each discordant image is a fair coin).
    """
    if len(a_correct) != len(b_correct):
        raise ValueError(f"McNemar needs the same test images: {len(a_correct)} against {len(b_correct)} results")
    only_a = sum(1 for a, b in zip(a_correct, b_correct, strict=True) if a and not b)
    only_b = sum(1 for a, b in zip(a_correct, b_correct, strict=True) if b and not a)
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
    """Paired differences over seeds: the mean, its t-interval and two tests (None with one seed)."""

    mean: float
    n: int
    sd: float | None
    se: float | None
    ci: tuple[float, float] | None  # Student-t interval at 1 - ALPHA, n - 1 degrees of freedom
    p_t: float | None  # two-sided paired t-test
    p_signflip: float | None  # two-sided exact sign-flip test
    direction: Direction  # better / worse when the interval excludes 0

    @property
    def decided(self) -> bool:
        return self.direction != "none"

    @property
    def half_width(self) -> float | None:
        return None if self.ci is None else (self.ci[1] - self.ci[0]) / 2

    @property
    def smallest_signflip_p(self) -> float:
        """The smallest p the sign-flip test can give with this many seeds (all signs alike)."""
        return min(1.0, 2 / 2**self.n)


SIGNFLIP_EXACT = 20  # up to 2**20 sign patterns are enumerated; more seeds are sampled


def signflip_p(diffs: Sequence[float], draws: int = 200_000) -> float:
    """Two-sided sign-flip test of mean 0: the share of sign patterns whose |mean| is at least
    the observed one (exact up to :data:`SIGNFLIP_EXACT` seeds, a seeded sample beyond)."""
    x = np.abs(np.asarray(diffs, dtype=np.float64))
    observed = abs(float(np.sum(diffs)))
    n = len(x)
    if n <= SIGNFLIP_EXACT:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
    else:
        patterns = np.random.default_rng(0).choice([-1, 1], size=(draws, n))
    hits = int(np.sum(np.abs(patterns @ x) >= observed - 1e-12 * max(1.0, observed)))
    if n <= SIGNFLIP_EXACT:
        return hits / len(patterns)
    return (hits + 1) / (draws + 1)  # a sampled p is never 0: the observed pattern is one of them


def paired_seeds(diffs: Sequence[float], alpha: float = ALPHA) -> SeedDifference:
    """Several seeds, each a paired difference a - b: the mean with its Student-t interval
    (n - 1 degrees of freedom), decided when the interval excludes 0."""
    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return SeedDifference(mean, n, None, None, None, None, None, "none")
    sd = statistics.stdev(diffs)
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * se
    if se > 0:
        p_t = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    else:  # every seed gave the same difference
        p_t = 1.0 if mean == 0 else 0.0
    decided = abs(mean) > half
    return SeedDifference(
        mean,
        n,
        sd,
        se,
        (mean - half, mean + half),
        p_t,
        signflip_p(diffs),
        ("better" if mean > 0 else "worse") if decided else "none",
    )


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
    steps = [b - a for a, b in itertools.pairwise(values)]
    sigma = statistics.stdev(steps) / math.sqrt(2)  # the noise of one value
    se = sigma * math.sqrt(2 / tenth)
    change = last - first
    direction: Literal["falls", "rises", "flat"] = (
        "flat" if abs(change) <= 2 * se else ("falls" if change < 0 else "rises")
    )
    return Trend(first, last, se, n, direction)
