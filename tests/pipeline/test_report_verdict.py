"""The report's verdicts: OK only when a stage's own figures show it did its job, a warning when
they show it did not, and "no measurable difference" when stage 3 is inside the noise."""

from __future__ import annotations

import math
import random

import pytest

from gensis.eval.significance import encode_correct, mcnemar_exact, paired_seeds, trend
from gensis.pipeline.verdict import autoencoder, format_verdict, stage1, stage2, stage3


def test_mcnemar_exact_against_hand_computed_binomial_tails() -> None:
    # 0 against 6 discordant images: 2 * 0.5^6
    t = mcnemar_exact([True] * 6 + [False] * 4, [False] * 6 + [False] * 4)
    assert (t["only_a"], t["only_b"]) == (6, 0) and math.isclose(t["p_value"], 2 / 64)
    # 1 against 9: 2 * (1 + 10) / 1024; the concordant images do not count
    a = [True] * 9 + [False] + [True] * 50 + [False] * 40
    b = [False] * 9 + [True] + [True] * 50 + [False] * 40
    assert math.isclose(mcnemar_exact(a, b)["p_value"], 22 / 1024)
    assert mcnemar_exact(a, a)["p_value"] == 1.0
    assert mcnemar_exact([True] * 5 + [False] * 5, [False] * 5 + [True] * 5)["p_value"] == 1.0  # an even split


def test_per_image_correctness_is_stored_one_character_per_image() -> None:
    """An eval JSON stores per-image correctness as one '1' or '0' per test image and nothing
    between them, so that a later report reads the same images back."""
    from gensis.eval.significance import decode_correct

    assert encode_correct([True, False, True, True]) == "1011"
    assert encode_correct([False]) == "0" and encode_correct([]) == ""
    assert decode_correct("1011") == [True, False, True, True]


def test_paired_seeds_use_a_student_t_interval_on_n_minus_1_degrees_of_freedom() -> None:
    # PCam linear (2026-12-01): -0.70 with SE 0.29 passed the old "2 SE" rule; t(0.975, 2) = 4.3027
    d = paired_seeds([-0.53, -0.30, -1.27])
    assert math.isclose(d.se, 0.50685 / math.sqrt(3), rel_tol=1e-4)
    assert math.isclose(d.half_width, 4.302653 * d.se, rel_tol=1e-5) and d.direction == "none"
    assert math.isclose(d.p_t, 0.13919, abs_tol=1e-4)  # t = 2.392 on 2 df
    assert d.p_signflip == 0.25 and d.smallest_signflip_p == 0.25  # 3 seeds can never reach 0.05
    assert paired_seeds([-0.43, 0.03, -0.10]).direction == "none"
    assert paired_seeds([1.0]).direction == "none" and paired_seeds([1.0]).se is None
    # 5 seeds, t(0.975, 4) = 2.7764: mean 1.0, sd 0.5 -> half-width 0.6208, decided
    five = paired_seeds([1.0, 1.5, 0.5, 1.6 - 0.1, 0.5])
    assert math.isclose(five.half_width, 2.776445 * five.sd / math.sqrt(5), rel_tol=1e-5)
    assert five.direction == "better" and five.ci[0] > 0 and five.p_signflip == 2 / 32


def test_signflip_p_counts_sign_patterns_by_hand() -> None:
    from gensis.eval.significance import signflip_p

    assert signflip_p([1, 2, 3]) == 2 / 8  # only +6 and -6 reach |6|
    assert signflip_p([1, -2, 3]) == 6 / 8  # |2|: all but the two patterns summing to 0
    assert signflip_p([0.0, 0.0]) == 1.0


def test_trend() -> None:
    rng = random.Random(0)
    noisy = [7.0 + rng.gauss(0, 0.3) for _ in range(100)]
    assert trend(noisy).direction == "flat"
    assert trend([7.0 - 0.01 * i + rng.gauss(0, 0.05) for i in range(100)]).direction == "falls"
    assert trend([6.3 + 0.002 * i + rng.gauss(0, 0.02) for i in range(100)]).direction == "rises"
    assert trend([7.0, 6.0]).direction == "too few points"


def test_significance_edges_by_hand() -> None:
    """The boundaries a one-character slip moves: each expectation worked out on paper."""
    from gensis.eval.significance import signflip_p

    with pytest.raises(ValueError, match="same test images: 2 against 3 results"):
        mcnemar_exact([True, False], [True, False, True])
    one = mcnemar_exact([True], [False])  # one discordant image: p = 2 * 0.5, capped at 1
    assert (one["only_a"], one["only_b"], one["p_value"]) == (1, 0, 1.0)
    # every seed the same difference: sd 0, so the t-test is certain either way
    same = paired_seeds([1.0, 1.0, 1.0])
    assert (same.se, same.p_t, same.direction) == (0.0, 0.0, "better")
    zero = paired_seeds([0.0, 0.0])
    assert (zero.p_t, zero.direction) == (1.0, "none")  # |0| > 0 is false: not decided
    single = paired_seeds([1.5])
    assert (single.mean, single.n, single.p_t, single.p_signflip) == (1.5, 1, None, None)
    # mean -1, sd 0.1, t(0.975, 2) = 4.3027: half-width 0.248, decided, and the sign says worse
    assert paired_seeds([-1.0, -1.1, -0.9]).direction == "worse"
    # 20 seeds are still enumerated: only the all-plus and all-minus patterns reach |20|
    assert signflip_p([1.0] * 20) == 2 / 2**20
    # 21 seeds are sampled (200,000 seeded draws): (hits + 1) / (draws + 1), hits near 0 here
    p = signflip_p([1.0] * 21)
    assert p < 3 / 200_001 and math.isclose(p * 200_001, round(p * 200_001), abs_tol=1e-6)
    assert signflip_p([float(i) for i in range(1, 22)]) == signflip_p([float(i) for i in range(1, 22)])
    assert signflip_p([0.0] * 21) == 1.0  # every sampled pattern reaches |0|: (draws + 1) / (draws + 1)
    # 2607.9 + 4757.3 - 7365.2 = 0 on paper, so every pattern reaches |806.4|: p = 1 exactly,
    # though in floats some of those sums land 1e-12 below (the tolerance scales with the sum)
    assert signflip_p([2607.9, 4757.3, -7365.2, 806.4]) == 1.0


def test_trend_by_hand() -> None:
    # steps 1,-1,...,1 (5 up, 4 down): sd = sqrt(10/9); one point per tenth, so the noise of
    # last - first is sqrt(2) * sd / sqrt(2) = sd; change 1 < 2 sd: flat
    t = trend([0, 1] * 5)
    assert (t.first, t.last, t.points, t.direction) == (0, 1, 10, "flat")
    assert math.isclose(t.noise, math.sqrt(10 / 9))
    # last step 3: steps mean 1/3, sum of squares 16, sd sqrt(2); change 3 = 2.12 noise: rises
    t = trend([0, 1, 0, 1, 0, 1, 0, 1, 0, 3])
    assert math.isclose(t.noise, math.sqrt(2)) and t.direction == "rises"
    # 20 points, two per tenth: noise = sd / sqrt(2) * sqrt(2 / 2); steps alternate +1/-1 (sd 1.026)
    t = trend([0, 1] * 10)
    steps_sd = math.sqrt(sum((s - 1 / 19) ** 2 for s in [1, -1] * 9 + [1]) / 18)
    assert math.isclose(t.noise, steps_sd / math.sqrt(2)) and (t.first, t.last) == (0.5, 0.5)
    assert trend([1, 2, 3, 4]).direction == "rises" and trend([1, 2, 3, 4]).noise == 0.0  # 4 points suffice
    assert trend([1, 1, 1, 1]).direction == "flat"  # no change, no noise: flat, not a direction
    short = trend([1.0, 2.0])
    assert short.points == 2 and short.words() == "1.00 -> 2.00 (too few points, 2 points)"
    assert t.words(1) == f"0.5 -> 0.5 (flat, noise {t.noise:.1f}, 20 points)"
    with pytest.raises(ValueError, match="^a trend needs at least one value$"):
        trend([])


def test_stage1_weighs_level_and_direction() -> None:
    assert stage1([{"loss": 7.48}, {"loss": 7.25}], "dino", 2048).ok is False  # the first CIFAR-10 CPU run
    falling = [{"loss": 6.9 - 0.1 * i} for i in range(10)]  # 6.9 -> 6.0 in ten noiseless steps
    good = stage1(falling[:5] + [{"lr": 0.1}] + falling[5:], "dino", 1024)
    assert good.ok and "6.90 -> 6.00" in good.text and "against 6.93 for a uniform teacher" in good.text  # ln 1024
    near_uniform = [{"loss": 6.80 - 0.02 * i} for i in range(10)] + [{"knn_top1_k20": 94.17}]
    with_knn = stage1(near_uniform, "dino", 1024)
    assert not with_knn.ok and "online kNN k=20 94.2 %" in with_knn.text and "still near its uniform" in with_knn.text
    assert stage1([], "dino", 1024).ok is False
    assert stage1([{"loss": 5.0 - 0.1 * i} for i in range(10)], "simclr", 1024).ok


def test_stage1_with_too_few_loss_points_is_no_evidence() -> None:
    """Two or three logged losses cannot weigh their own noise: however far they fell, the
    verdict is a warning that says so, for DINO and for the other methods alike."""
    for method in ("dino", "simclr"):
        short = stage1([{"loss": 6.9}, {"loss": 2.0}, {"loss": 1.0}], method, 1024)
        assert short.status == "warning" and "(too few points, 3 points)" in short.text
        assert "logged at only 3 points, too few to weigh its noise" in short.text
    assert stage1([{"loss": 5.0 - 0.1 * i} for i in range(4)], "simclr", 1024).ok  # 4 points: the noise is weighed
    # ends far below uniform, but rose over training: not OK
    rising = stage1([{"loss": 4.0 + 0.01 * i + 0.02 * (i % 2)} for i in range(60)], "dino", 1024)
    assert rising.status == "warning" and "rose" in rising.text and "rises" in rising.text


QUALITY = {
    "sources": 500,
    "retrieval_top1": 8.5,
    "retrieval_median_rank": 21,
    "source_pixel_rmse": 0.21,
    "ceiling": {"retrieval_top1": 12.6, "source_pixel_rmse": 0.25},
    "chance": {"retrieval_top1": 0.07},
}


def test_stage2_faithful_copying_and_unconditioned() -> None:
    rising_gap = [{"cond_gap_mid": g} for g in (0.7, 5.8, 8.7, 9.4, 10.8)]
    faithful = stage2(QUALITY, rising_gap)
    assert (
        faithful.ok
        and "8.5 %" in faithful.text
        and "12.6 %" in faithful.text
        and "0.210 (real views 0.250)" in faithful.text
    )
    assert "0.7 -> 10.8 (rises" in faithful.text
    # perfect retrieval, but each view is its source again
    copier = stage2({**QUALITY, "retrieval_top1": 100.0, "source_pixel_rmse": 0.01})
    assert copier.status == "warning" and "near copies" in copier.text and "0.010" in copier.text
    twins = stage2(
        {**QUALITY, "diversity_pixel_rmse": 0.002, "ceiling": {**QUALITY["ceiling"], "diversity_pixel_rmse": 0.2}}
    )
    assert twins.status == "warning" and "from each other" in twins.text
    unconditioned = stage2({**QUALITY, "retrieval_top1": 0.3, "retrieval_median_rank": 650})
    assert unconditioned.status == "warning" and "not views of their source" in unconditioned.text
    # PCam from a converged stage 1: 296x chance, under half of the real views' 16.4 %
    weaker = stage2(
        {**QUALITY, "retrieval_top1": 7.4, "ceiling": {"retrieval_top1": 16.4}, "chance": {"retrieval_top1": 0.025}}
    )
    assert not weaker.ok and "less closely than real stage-1 views" in weaker.text
    losing = stage2(QUALITY, [{"cond_gap_mid": g} for g in (12.0, 11.5, 9.0, 6.1, 3.0)])
    assert losing.status == "warning" and "losing its condition" in losing.text
    assert stage2(None).ok is False


def _results(n: int, gen_right: int, control_right: int, shared: int, linear: tuple[int, int] | None = None) -> dict:
    """Two encoders on ``n`` test images: ``shared`` right for both, then each one's own."""

    def bits(own: int, offset: int) -> list[bool]:
        return [i < shared or offset <= i < offset + own for i in range(n)]

    gen, ctl = bits(gen_right, shared), bits(control_right, shared + gen_right)
    out = {
        "gen-dino": {"knn_top1": {"20": 100 * sum(gen) / n}, "knn_correct": {"20": encode_correct(gen)}},
        "control": {"knn_top1": {"20": 100 * sum(ctl) / n}, "knn_correct": {"20": encode_correct(ctl)}},
    }
    if linear is not None:
        lg, lc = bits(linear[0], shared), bits(linear[1], shared + linear[0])
        out["gen-dino"]["linear"] = {"top1": 100 * sum(lg) / n, "correct": encode_correct(lg)}
        out["control"]["linear"] = {"top1": 100 * sum(lc) / n, "correct": encode_correct(lc)}
    return out


FALLING = [{"loss_dis": 7.3 - 0.006 * i, "loss_dis_floor": 6.1} for i in range(100)]


def test_stage3_gain_loss_and_tie() -> None:
    gain = stage3(_results(1000, 60, 20, 700, linear=(50, 15)), FALLING, 4096)
    assert (
        gain.status == "ok"
        and "beats its control" in gain.text
        and "60 test images right only with Gen-DINO" in gain.text
    )
    assert "kNN k=20 +4.00" in gain.text and "linear +3.50" in gain.text and "McNemar p = " in gain.text
    loss = stage3(_results(1000, 20, 60, 700), FALLING, 4096)
    assert loss.status == "warning" and "below its control beyond the noise" in loss.text
    tie = stage3(_results(1000, 22, 18, 700, linear=(10, 12)), FALLING, 4096)
    assert tie.status == "none" and "no measurable difference" in tie.text
    assert format_verdict(tie).startswith("NO MEASURABLE DIFFERENCE stage 3:")
    assert format_verdict(loss, markdown=True).startswith("- **WARNING** **stage 3**:")
    # without per-image results (an older evaluation) no difference can be claimed
    old = _results(1000, 60, 20, 700)
    for r in old.values():
        del r["knn_correct"]
    assert stage3(old, FALLING, 4096).status == "none"
    assert stage3({}, [], 4096).text == "not evaluated"


def test_stage3_judges_the_disentanglement_loss_by_its_direction() -> None:
    rng = random.Random(1)
    tie = _results(1000, 22, 18, 700)
    falling = stage3(tie, FALLING, 4096)
    assert falling.status == "none" and "(falls" in falling.text
    flat = stage3(tie, [{"loss_dis": 6.9 + rng.gauss(0, 0.05)} for _ in range(100)], 1024)
    assert flat.status == "warning" and "did not fall" in flat.text and "(flat" in flat.text
    # ends below 98 % of uniform (the old rule's "learned"), yet rose over training
    rising = stage3(tie, [{"loss_dis": 6.32 + 0.0014 * i + rng.gauss(0, 0.01)} for i in range(100)], 1024)
    assert rising.status == "warning" and "rose" in rising.text


def test_the_clothing_run_is_not_ok() -> None:
    """The issue's case: 3,068 test photos, kNN -0.80 and linear -2.15 points, and a rising
    disentanglement loss (6.32 -> 6.46): the old verdict said OK."""
    n = 3068
    r = _results(n, 40, 65, 2400, linear=(30, 96))  # -25 and -66 images: -0.81 and -2.15 points
    v = stage3(r, [{"loss_dis": 6.32 + 0.0014 * i, "loss_dis_floor": 5.76} for i in range(100)], 1024)
    assert "kNN k=20 -0.81" in v.text and "linear -2.15" in v.text
    assert v.status == "warning" and not v.ok


def test_autoencoder_with_a_ceiling_of_zero_is_judged_by_rank() -> None:
    """The 224-px lung run: neither reconstructions nor real views were found first (0 %), so
    top-1 cannot tell; the median rank can."""
    q = {
        "images": 32,
        "psnr_db": 20.58,
        "cosine_to_source": 0.834,
        "retrieval_top1": 0.0,
        "retrieval_median_rank": 115,
        "ceiling": {"retrieval_top1": 0.0, "retrieval_median_rank": 140},
    }
    v = autoencoder(q)
    assert v.ok and "median rank decides: 115 against 140" in v.text
    lost = autoencoder({**q, "retrieval_median_rank": 900})
    assert lost.status == "warning" and "loses what the encoder sees" in lost.text
    assert autoencoder({**q, "retrieval_top1": 10.0, "ceiling": {"retrieval_top1": 40.0}}).status == "warning"


def test_stage2_without_a_ceiling_is_judged_against_chance() -> None:
    q = {"sources": 100, "retrieval_top1": 5.0, "retrieval_median_rank": 8, "chance": {"retrieval_top1": 0.1}}
    v = stage2(q)
    assert v.ok and "real stage-1 views ? %" in v.text
    weak = stage2({**q, "retrieval_top1": 0.5})
    assert weak.status == "warning" and "no real-view ceiling was measured" in weak.text


def test_a_verdict_needs_evidence_to_say_ok() -> None:
    # issue 38: 24 hidden 224-px tiles left 2 held-out images; rank 5 against 7 said OK with a negative cosine
    broken = {
        "images": 2,
        "psnr_db": 7.99,
        "cosine_to_source": -0.482,
        "retrieval_top1": 0.0,
        "retrieval_median_rank": 5,
        "ceiling": {"retrieval_top1": 0.0, "retrieval_median_rank": 7},
    }
    v = autoencoder(broken)
    assert v.status == "warning" and "only 2 held-out images" in v.text and "at least 20" in v.text
    assert "cosine <= 0" in v.text and "PSNR under 10 dB" in v.text
    assert autoencoder({**broken, "images": 64, "psnr_db": 18.4, "cosine_to_source": 0.88}).ok
    assert not autoencoder({**broken, "images": 64, "psnr_db": 18.4, "cosine_to_source": -0.1}).ok
    few = stage2({**QUALITY, "sources": 5})
    assert few.status == "warning" and "only 5 sources measured" in few.text
