"""Has stage 1 converged? Two signs, both read from the run's own metrics.jsonl.

Gen-SIS stands on its stage-1 encoder: the generator is conditioned on its embeddings and stage 3
is judged against it, so a comparison made while stage 1 is still learning measures the length of
training, not the method. Converged here means, in the project's own terms (issue 37):

* **the loss has flattened**: DINO's loss moved by less than :data:`LOSS_SHARE` (2 %) of its
  uniform value ln(out_dim) over the last fifth of training (the mean of the logged losses in the
  5 % of training up to the 80 % mark against the mean of the last 5 %), and
* **kNN has flattened**: the online kNN k=20 at the end is within :data:`KNN_POINTS` (1 point) of
  its value at three quarters of training (the evaluation nearest to 75 %, between 65 and 85 %).

Both are read on one run. Under a cosine schedule the last fifth runs at a small learning rate,
so a run that is far too short can flatten too; the benchmark that picks a regime
(``benchmarks/stage1_convergence.py``) therefore also compares runs of several lengths.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

LOSS_SHARE = 0.02  # of ln(out_dim): the most the loss may still fall over the last fifth
KNN_POINTS = 1.0  # kNN k=20 points: the most it may move over the last quarter
WINDOW = 0.05  # share of training averaged at each end of the loss comparison
KNN_AT = (0.65, 0.85)  # where an evaluation may stand in for "three quarters"

Status = Literal["converged", "still learning", "unknown"]


@dataclass(frozen=True)
class Convergence:
    status: Status
    loss_fall: float | None  # loss at 80 % minus loss at the end (nats)
    loss_limit: float | None  # LOSS_SHARE * ln(out_dim)
    knn_change: float | None  # kNN k=20 at the end minus at ~75 % (points)
    knn_at: float | None  # where that earlier evaluation stands (share of training)
    why: str

    def words(self) -> str:
        return f"{self.status} ({self.why})"


def _mean_between(points: Sequence[tuple[int, float]], lo: float, hi: float) -> float | None:
    values = [v for s, v in points if lo <= s <= hi]
    return statistics.fmean(values) if values else None


def convergence(metrics: Sequence[dict], out_dim: int, knn_key: str = "knn_top1_k20") -> Convergence:
    """The convergence of one DINO run from its logged metrics (see the module docstring)."""
    loss = [
        (int(m["step"]), float(m["loss"]))
        for m in metrics
        if isinstance(m.get("loss"), (int, float)) and isinstance(m.get("step"), int)
    ]
    knn = [
        (int(m["step"]), float(m[knn_key]))
        for m in metrics
        if isinstance(m.get(knn_key), (int, float)) and isinstance(m.get("step"), int)
    ]
    total = max([s for s, _ in loss] + [s for s, _ in knn], default=0)
    limit = LOSS_SHARE * math.log(out_dim)
    fall = knn_change = knn_at = None
    reasons: list[str] = []
    verdicts: list[bool] = []
    if total and len(loss) >= 4:
        at80 = _mean_between(loss, (0.80 - WINDOW) * total, 0.80 * total)
        end = _mean_between(loss, (1 - WINDOW) * total, total)
        if at80 is not None and end is not None:
            fall = at80 - end
            verdicts.append(abs(fall) < limit)  # a loss that rose as much has not settled either
            reasons.append(
                f"loss fell {fall:.3f} over the last fifth, limit {limit:.3f} ({LOSS_SHARE:.0%} of ln {out_dim})"
            )
    if fall is None:
        reasons.append("too few loss points in the last fifth (lower train.log_every)")
    if knn and knn[-1][0] == total:
        earlier = [(s, v) for s, v in knn[:-1] if KNN_AT[0] * total <= s <= KNN_AT[1] * total]
        if earlier:
            s, v = min(earlier, key=lambda p: abs(p[0] - 0.75 * total))
            knn_change, knn_at = knn[-1][1] - v, s / total
            verdicts.append(abs(knn_change) <= KNN_POINTS)
            reasons.append(
                f"kNN k=20 moved {knn_change:+.2f} points since {knn_at:.0%} of training, limit {KNN_POINTS:g}"
            )
    if knn_change is None:
        reasons.append(
            "no online kNN near three quarters and at the end (set train.knn_every so one falls "
            "between 65 and 85 % of the epochs)"
        )
    if not verdicts:
        status: Status = "unknown"
    elif not all(verdicts):
        status = "still learning"
    else:
        status = "converged" if len(verdicts) == 2 else "unknown"
    return Convergence(status, fall, limit, knn_change, knn_at, "; ".join(reasons))
