"""Stage 1's convergence rule: the loss flat to 2 % of ln K over the last fifth, and the online
kNN k=20 within 1 point of its value at three quarters; the stage-1 verdict says which."""

from __future__ import annotations

import math

from gensis.eval.convergence import convergence
from gensis.pipeline.verdict import stage1

K = 4096  # ln K = 8.318; 2 % of it = 0.1664 nats


def _run(loss_at, knn: dict[int, float], steps: int = 400, every: int = 5) -> list[dict]:
    records = [{"step": s, "epoch": s // 16, "loss": loss_at(s)} for s in range(every, steps + 1, every)]
    return records + [{"step": s, "epoch": s // 16, "knn_top1_k20": v} for s, v in knn.items()]


def test_a_flat_end_with_a_steady_knn_is_converged() -> None:
    m = _run(lambda s: 5.0 + 2.0 * math.exp(-s / 40), {100: 70.0, 300: 71.2, 400: 71.5})
    c = convergence(m, K)
    # the loss between 300 and 320 against 380-400: about 2 exp(-7.75) - 2 exp(-9.75), far under 0.166
    assert c.status == "converged" and c.loss_fall < 0.01 and math.isclose(c.loss_limit, 0.02 * math.log(K))
    assert math.isclose(c.knn_change, 0.3) and c.knn_at == 0.75


def test_a_loss_still_falling_over_the_last_fifth_is_still_learning() -> None:
    # a straight fall of 1.0 nat over 400 steps: about 0.2 nats over the last fifth (limit 0.166)
    c = convergence(_run(lambda s: 7.0 - s / 400, {300: 70.0, 400: 70.5}), K)
    assert c.status == "still learning" and 0.18 < c.loss_fall < 0.22 and "loss fell" in c.why


def test_knn_that_moves_more_than_a_point_in_the_last_quarter_is_still_learning() -> None:
    c = convergence(_run(lambda s: 5.0, {300: 68.0, 400: 69.6}), K)
    assert c.status == "still learning" and math.isclose(c.knn_change, 1.6)
    dropped = convergence(_run(lambda s: 5.0, {300: 70.0, 400: 68.5}), K)  # a fall counts too
    assert dropped.status == "still learning"


def test_without_a_knn_near_three_quarters_it_cannot_tell() -> None:
    c = convergence(_run(lambda s: 5.0, {100: 60.0, 400: 70.0}), K)  # 25 % is too early to stand in
    assert c.status == "unknown" and "train.knn_every" in c.why
    assert convergence([], K).status == "unknown"


def test_the_stage1_verdict_names_convergence_and_warns_while_learning() -> None:
    flat = stage1(_run(lambda s: 5.0 + 2.0 * math.exp(-s / 40), {300: 71.2, 400: 71.5}), "dino", K)
    assert flat.ok and "converged (" in flat.text
    learning = stage1(_run(lambda s: 7.0 - s / 400, {300: 70.0, 400: 70.5}), "dino", K)
    assert learning.status == "warning" and "still learning" in learning.text and "train longer" in learning.text
