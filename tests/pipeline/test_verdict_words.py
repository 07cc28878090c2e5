"""The report's verdicts, word for word (issue 39): what a user reads is the contract, so each
expected line below is written out by hand from the inputs (three-point curves, whose trend is
"too few points" with the first and last values; ten-point straight lines, whose noise is 0).
A curve of too few points is no evidence that a stage learned, whatever its values.
A changed label, threshold, stage name or sentence fails here."""

from __future__ import annotations

from gensis.eval.significance import encode_correct
from gensis.pipeline.verdict import Verdict, autoencoder, format_verdict, stage1, stage2, stage3

UNIFORM_100 = "4.61"  # ln(100) to two places


def _losses(*values: float, key: str = "loss") -> list[dict]:
    return [{"step": i + 1, key: v} for i, v in enumerate(values)]


def test_stage1_word_for_word() -> None:
    assert stage1([], "dino", 100) == Verdict("stage 1", "warning", "no training loss was logged")
    short = (
        "the loss was logged at only 3 points, too few to weigh its noise, so this is no evidence that it "
        "learned; train longer or lower train.log_every"
    )
    assert stage1(_losses(5.0, 4.0, 3.0), "simclr", 100) == Verdict(
        "stage 1", "warning", "simclr loss 5.000 -> 3.000 (too few points, 3 points): " + short
    )
    assert stage1(_losses(3.0, 4.0, 5.0), "simclr", 100) == Verdict(
        "stage 1", "warning", "simclr loss 3.000 -> 5.000 (too few points, 3 points): " + short
    )
    assert stage1(_losses(*[5.0 - 0.125 * i for i in range(10)]), "simclr", 100) == Verdict(
        "stage 1", "ok", "simclr loss 5.000 -> 3.875 (falls, noise 0.000, 10 points)"
    )
    assert stage1(_losses(*[3.0 + 0.125 * i for i in range(10)]), "simclr", 100) == Verdict(
        "stage 1",
        "warning",
        "simclr loss 3.000 -> 4.125 (rises, noise 0.000, 10 points): the loss did not fall "
        "beyond its noise; train longer",
    )
    assert stage1(_losses(4.0, 4.5, 5.0), "dino", 100) == Verdict(
        "stage 1",
        "warning",
        f"DINO loss 4.00 -> 5.00 (too few points, 3 points), against {UNIFORM_100} for a uniform teacher: " + short,
    )
    rising = _losses(*[4.0 + 0.125 * i for i in range(10)]) + [{"step": 10, "knn_top1_k20": 61.3}]
    assert stage1(rising, "dino", 100) == Verdict(
        "stage 1",
        "warning",
        f"DINO loss 4.00 -> 5.12 (rises, noise 0.00, 10 points), against {UNIFORM_100} for a "
        "uniform teacher; online kNN k=20 61.3 %: the loss rose over training, so the encoder learned little; "
        "check the learning rate, or train longer",
    )
    assert stage1(_losses(*[5.0 - 0.05 * i for i in range(10)]), "dino", 100) == Verdict(
        "stage 1",
        "warning",
        f"DINO loss 5.00 -> 4.55 (falls, noise 0.00, 10 points), against {UNIFORM_100} for a "
        "uniform teacher: the loss is still near its uniform value, so the encoder has learned little of what DINO "
        "can teach it; train longer",
    )


def test_autoencoder_word_for_word() -> None:
    assert autoencoder(None) == Verdict("autoencoder", "warning", "its reconstructions were not measured")
    assert autoencoder({"images": 30, "psnr_db": 25.0}) == Verdict(
        "autoencoder", "ok", "reconstructions of 30 held-out images: PSNR 25.00 dB"
    )
    broken = {
        "images": 5,
        "psnr_db": 8.0,
        "cosine_to_source": -0.5,
        "retrieval_top1": 0.0,
        "ceiling": {"retrieval_top1": 0.0},
    }
    assert autoencoder(broken) == Verdict(
        "autoencoder",
        "warning",
        "reconstructions of 5 held-out images: PSNR 8.00 dB, cosine to the source -0.500, "
        "source found 0.0 % of the time (real stage-1 views 0.0 %): only 5 held-out images: at least 20 are needed "
        "to tell a working stage from a broken one, so this is no evidence either way; give more images; a PSNR "
        "under 10 dB is noise, not a reconstruction; the encoder sees nothing of the source in the reconstruction "
        "(cosine <= 0); train the autoencoder longer (autoencoder.train.epochs)",
    )
    head = (
        "reconstructions of 40 held-out images: PSNR 30.00 dB, cosine to the source 0.900, source found "
        "{top1} % of the time (real stage-1 views 80.0 %)"
    )
    good = {
        "images": 40,
        "psnr_db": 30.0,
        "cosine_to_source": 0.9,
        "retrieval_top1": 40.0,
        "ceiling": {"retrieval_top1": 80.0},
    }
    assert autoencoder(good) == Verdict("autoencoder", "ok", head.format(top1="40.0"))  # exactly half: OK
    assert autoencoder({**good, "retrieval_top1": 39.9}) == Verdict(
        "autoencoder",
        "warning",
        head.format(top1="39.9") + ": the decoder loses what the encoder sees, and every "
        "generated view goes through it; train the autoencoder longer (autoencoder.train.epochs)",
    )
    by_rank = {
        "images": 40,
        "psnr_db": 30.0,
        "cosine_to_source": 0.5,
        "retrieval_top1": 0.0,
        "retrieval_median_rank": 8,
        "ceiling": {"retrieval_top1": 0, "retrieval_median_rank": 4},
    }
    rank_text = (
        "reconstructions of 40 held-out images: PSNR 30.00 dB, cosine to the source 0.500, source found "
        "0.0 % of the time (real stage-1 views 0 %); real views are not found first either, so the median "
        "rank decides: {rank} against 4 for real views"
    )
    assert autoencoder(by_rank) == Verdict("autoencoder", "ok", rank_text.format(rank=8))  # twice the real rank: OK
    assert autoencoder({**by_rank, "retrieval_median_rank": 9}) == Verdict(
        "autoencoder",
        "warning",
        rank_text.format(rank=9) + ": the decoder loses what the encoder sees, and every "
        "generated view goes through it; train the autoencoder longer (autoencoder.train.epochs)",
    )
    assert autoencoder({**good, "psnr_db": 10.0}).status == "ok"  # the floor itself passes
    assert autoencoder({**good, "images": 20}).status == "ok"  # so does the minimum of evidence


def test_stage2_word_for_word() -> None:
    assert stage2(None) == Verdict("stage 2", "warning", "the bank's quality was not measured")
    q = {
        "sources": 40,
        "retrieval_top1": 25.0,
        "retrieval_median_rank": 2,
        "ceiling": {"retrieval_top1": 50.0},
        "chance": {"retrieval_top1": 2.5},
    }
    assert stage2(q) == Verdict(
        "stage 2",
        "ok",
        "generated views find their source 25.0 % of the time (real stage-1 "
        "views 50.0 %, chance 2.50 %), median rank 2",
    )
    tail = "; train the generator longer (see its conditioning curves)"
    assert stage2({**q, "retrieval_top1": 24.0}) == Verdict(
        "stage 2",
        "warning",
        "generated views find their source 24.0 % of the time (real stage-1 views 50.0 %, "
        "chance 2.50 %), median rank 2: the views are not views of their source, so stage 3 pairs images with "
        "unrelated ones" + tail,
    )
    assert stage2({**q, "retrieval_top1": 24.0, "chance": {"retrieval_top1": 1.0}}) == Verdict(
        "stage 2",
        "warning",
        "generated views find their source 24.0 % of the time (real stage-1 views 50.0 %, "
        "chance 1.00 %), median rank 2: the views follow their source, but less closely than real stage-1 views, so "
        "stage 3 gets harder positives than real pairs" + tail,
    )
    no_ceiling = {"sources": 40, "retrieval_top1": 10.0, "retrieval_median_rank": 9, "chance": {"retrieval_top1": 1.0}}
    assert stage2(no_ceiling) == Verdict(
        "stage 2",
        "warning",
        "generated views find their source 10.0 % of the time (real stage-1 views ? %, chance "
        "1.00 %), median rank 9: under 10x chance, and no real-view ceiling was measured" + tail,
    )
    assert stage2({**no_ceiling, "retrieval_top1": 10.1}).status == "ok"
    pixels = {
        **q,
        "source_pixel_rmse": 0.019,
        "diversity_pixel_rmse": 0.2,
        "ceiling": {"retrieval_top1": 50.0, "source_pixel_rmse": 0.1, "diversity_pixel_rmse": 0.15},
    }
    assert stage2(pixels) == Verdict(
        "stage 2",
        "warning",
        "generated views find their source 25.0 % of the time (real stage-1 views 50.0 %, "
        "chance 2.50 %), median rank 2; pixel RMSE to the source 0.019 (real views 0.100); between views 0.200 "
        "(real views 0.150): the views differ from their source by a pixel RMSE of 0.019, under 20% of real "
        "stage-1 views' 0.100: they are near copies, so stage 3 learns little from them" + tail,
    )
    assert stage2({**pixels, "source_pixel_rmse": 0.021}).status == "ok"  # just over a fifth: no copy
    falling_gap = [{"cond_gap_mid": 40.0 - i} for i in range(10)]
    assert stage2(q, falling_gap) == Verdict(
        "stage 2",
        "warning",
        "generated views find their source 25.0 % of the time (real stage-1 views 50.0 %, "
        "chance 2.50 %), median rank 2; conditioning gap at mid noise (%) 40.0 -> 31.0 (falls, noise 0.0, 10 "
        "points): the conditioning gap fell over training: the generator is losing its condition" + tail,
    )
    assert stage2({**q, "sources": 19}).text.endswith(
        ": only 19 sources measured: at least 20 are needed to tell a working stage from a broken one, so this is "
        "no evidence either way; give more images" + tail
    )


def _pair(gen: list[bool], ctl: list[bool]) -> dict:
    return {
        "gen-dino": {"knn_top1": {"20": 100 * sum(gen) / len(gen)}, "knn_correct": {"20": encode_correct(gen)}},
        "control": {"knn_top1": {"20": 100 * sum(ctl) / len(ctl)}, "knn_correct": {"20": encode_correct(ctl)}},
    }


def test_stage3_word_for_word() -> None:
    ten_right, ten_wrong = [True] * 10, [False] * 10
    head = "Gen-DINO minus control, one seed, same test images: "
    assert stage3(_pair(ten_right, ten_wrong), [], 100) == Verdict(
        "stage 3",
        "ok",
        head + "kNN k=20 +100.00 points (10 test images right only with Gen-DINO, 0 only with its "
        "control, McNemar p = 0.002): Gen-DINO beats its control beyond the noise",
    )
    assert stage3(_pair(ten_wrong, ten_right), [], 100) == Verdict(
        "stage 3",
        "warning",
        head + "kNN k=20 -100.00 points (0 test images right only with Gen-DINO, 10 only with "
        "its control, McNemar p = 0.002): Gen-DINO is below its control beyond the noise",
    )
    tie = _pair([True, False], [False, True])
    assert stage3(tie, [], 100) == Verdict(
        "stage 3",
        "none",
        head + "kNN k=20 +0.00 points (1 test images right only with Gen-DINO, 1 only with its "
        "control, McNemar p = 1): no measurable difference between Gen-DINO and its control (within the noise)",
    )
    untested = {"gen-dino": {"knn_top1": {"20": 55.0}}, "control": {"knn_top1": {"20": 50.0}}}
    assert stage3(untested, [], 100) == Verdict(
        "stage 3",
        "none",
        head + "kNN k=20 +5.00 (no per-image results to test): no measurable difference between "
        "Gen-DINO and its control (not testable)",
    )
    dis = [{"loss_dis": 5.0 - 0.25 * i, "loss_dis_floor": 2.0 if i < 9 else 2.5} for i in range(10)]
    assert stage3({"gen-dino": untested["gen-dino"]}, dis, 100) == Verdict(
        "stage 3",
        "none",
        f"disentanglement loss 5.00 -> 2.75 (falls, noise 0.00, 10 points) (uniform {UNIFORM_100}, "
        "floor 2.50): no control was evaluated, so there is nothing to compare against",
    )
    short_dis = [{"loss_dis": v} for v in (5.0, 4.0, 3.0)]
    assert stage3(_pair(ten_right, ten_wrong), short_dis, 100) == Verdict(
        "stage 3",
        "warning",
        head + "kNN k=20 +100.00 points (10 test images right only with Gen-DINO, 0 only with "
        f"its control, McNemar p = 0.002); disentanglement loss 5.00 -> 3.00 (too few points, 3 points) (uniform "
        f"{UNIFORM_100}): the disentanglement loss was logged at only 3 points, too few to weigh its noise, so this "
        "is no evidence that it learned; train longer or lower train.log_every",
    )
    rising_dis = [{"loss_dis": 3.0 + 0.125 * i} for i in range(10)]
    assert stage3(_pair(ten_right, ten_wrong), rising_dis, 100) == Verdict(
        "stage 3",
        "warning",
        head + "kNN k=20 +100.00 points (10 test images right only with Gen-DINO, 0 only with "
        f"its control, McNemar p = 0.002); disentanglement loss 3.00 -> 4.12 (rises, noise 0.00, 10 points) (uniform "
        f"{UNIFORM_100}): the disentanglement loss rose, so the task teaches nothing",
    )
    scratch = {"gen-dino": _pair(ten_right, ten_wrong)["gen-dino"], "dino": _pair(ten_right, ten_wrong)["control"]}
    assert stage3(scratch, [], 100, baseline="dino").text == (
        "Gen-DINO minus DINO from scratch (stage 1), one seed, same test images: kNN k=20 +100.00 points (10 test "
        "images right only with Gen-DINO, 0 only with DINO from scratch (stage 1), McNemar p = 0.002): Gen-DINO "
        "beats DINO from scratch (stage 1) beyond the noise"
    )
    assert stage3({}, [], 100) == Verdict("stage 3", "warning", "not evaluated")


def test_stage3_with_a_flat_disentanglement_loss_word_for_word() -> None:
    """A disentanglement loss that did not move (ten equal values: flat, noise 0) is a warning
    that says it did not fall, whatever the comparison says."""
    flat = [{"loss_dis": 4.0} for _ in range(10)]
    assert stage3({}, flat, 100) == Verdict(
        "stage 3",
        "warning",
        f"disentanglement loss 4.00 -> 4.00 (flat, noise 0.00, 10 points) (uniform {UNIFORM_100}"
        "): the disentanglement loss did not fall, so the task teaches nothing",
    )


def test_format_verdict_word_for_word() -> None:
    v = Verdict("stage 2", "warning", "x")
    assert format_verdict(v) == "WARNING stage 2: x"
    assert format_verdict(v, markdown=True) == "- **WARNING** **stage 2**: x"
    assert format_verdict(Verdict("stage 1", "ok", "y"), markdown=True) == "- OK **stage 1**: y"
    assert format_verdict({"stage": "stage 3", "status": "none", "text": "z"}) == "NO MEASURABLE DIFFERENCE stage 3: z"
    assert v.as_dict() == {"stage": "stage 2", "status": "warning", "text": "x"} and not v.ok
    assert Verdict("stage 1", "ok", "y").ok


def _converging(knn_at_75: float) -> list[dict]:
    """100 steps: the loss falls from 8 to 3 by step 50, then stays; kNN k=20 logged at 60, 75 and 100."""
    rows = [{"step": s, "loss": max(3.0, 8.0 - 0.1 * s)} for s in range(1, 101)]
    rows += [
        {"step": 60, "knn_top1_k20": 50.0},
        {"step": 75, "knn_top1_k20": knn_at_75},
        {"step": 100, "knn_top1_k20": 70.0},
    ]
    return rows


def test_stage1_converged_and_still_learning() -> None:
    done = stage1(_converging(70.0), "dino", 100)
    assert done.stage == "stage 1" and done.status == "ok", done
    assert done.text.startswith("DINO loss 7.45 -> 3.00 (falls, noise ") and "; converged (" in done.text
    moving = stage1(_converging(60.0), "dino", 100)
    assert moving.stage == "stage 1" and moving.status == "warning" and "; still learning (" in moving.text
    assert moving.text.endswith(
        ": stage 2 and 3 stand on an encoder that is still changing, so a stage-3 "
        "comparison on it measures the length of training; train longer"
    )


def test_autoencoder_without_a_ceiling_says_so() -> None:
    q = {"images": 40, "psnr_db": 30.0, "cosine_to_source": 0.9, "retrieval_top1": 10.0}
    assert autoencoder(q) == Verdict(
        "autoencoder",
        "ok",
        "reconstructions of 40 held-out images: PSNR 30.00 dB, cosine to the source 0.900, "
        "source found 10.0 % of the time (real stage-1 views ? %)",
    )


def test_stage3_with_per_image_results_on_one_side_only_is_not_testable() -> None:
    one_sided = _pair([True] * 10, [False] * 10)
    del one_sided["control"]["knn_correct"]
    assert stage3(one_sided, [], 100).text == (
        "Gen-DINO minus control, one seed, same test images: kNN k=20 +100.00 (no per-image results to test): no "
        "measurable difference between Gen-DINO and its control (not testable)"
    )
    other_length = _pair([True] * 10, [False] * 9)
    assert "(no per-image results to test)" in stage3(other_length, [], 100).text


def _bits(right: int, n: int = 40) -> str:
    return encode_correct([True] * right + [False] * (n - right))


def test_stage3_weighs_the_linear_probe_on_its_own_per_image_results() -> None:
    """kNN inside the noise, the linear probe 12 of 40 images worse (p = 2 * 0.5^12): the verdict
    is a warning, and only the linear figure can make it one."""
    gen = {
        "knn_top1": {"5": 50.0, "20": 52.5},
        "knn_correct": {"5": _bits(20), "20": _bits(21)},
        "linear": {"top1": 50.0, "correct": _bits(20)},
    }
    control = {
        "knn_top1": {"5": 50.0, "20": 50.0},
        "knn_correct": {"5": _bits(20), "20": _bits(20)},
        "linear": {"top1": 80.0, "correct": _bits(32)},
    }
    v = stage3({"gen-dino": gen, "control": control}, [], 64)
    assert v == Verdict(
        "stage 3",
        "warning",
        (
            "Gen-DINO minus control, one seed, same test images: kNN k=5 +0.00 points (0 test images right only with "
            "Gen-DINO, 0 only with its control, McNemar p = 1); linear -30.00 points (0 test images right only with "
            "Gen-DINO, 12 only with its control, McNemar p = 0.00049): Gen-DINO is below its control beyond the noise"
        ),
    )
    # the linear probe's results missing on one side: kNN alone decides, and says it could not test linear
    v = stage3({"gen-dino": gen, "control": {**control, "linear": {"top1": 80.0}}}, [], 64)
    assert v.status == "none" and v.text.endswith("(not testable)") and "linear -30.00 (no per-image results" in v.text
    # a control without a linear probe: no linear figure at all
    v = stage3({"gen-dino": gen, "control": {k: x for k, x in control.items() if k != "linear"}}, [], 64)
    assert "linear" not in v.text and v.text.endswith("(within the noise)")


def test_stage3_against_dino_from_scratch_and_without_a_baseline() -> None:
    gen = {"knn_top1": {"20": 60.0}, "knn_correct": {"20": _bits(24)}}
    linear = {"linear": {"top1": 60.0, "correct": _bits(24)}}
    v = stage3(
        {"gen-dino": {**gen, **linear}, "dino": {"knn_top1": {"20": 60.0}, "knn_correct": {"20": _bits(24)}, **linear}},
        [],
        64,
        "dino",
    )
    assert v.text.startswith("Gen-DINO minus DINO from scratch (stage 1), one seed")
    assert v.text.count("0 only with DINO from scratch (stage 1), McNemar p = 1") == 2  # kNN and linear alike
    assert stage3({"gen-dino": gen}, [], 64, None) == Verdict("stage 3", "warning", "not evaluated")
    rising = [{"loss_dis": x} for x in (3.0, 3.5, 4.0, 4.5)]
    v = stage3({"gen-dino": gen}, rising, 64, None)
    assert v.status == "warning" and v.text.endswith(": the disentanglement loss rose, so the task teaches nothing")


def test_verdicts_of_a_pipeline_without_metrics_or_an_autoencoder_stage() -> None:
    from types import SimpleNamespace as NS

    from gensis.pipeline.verdict import verdicts

    stages = NS(pretrain=NS(dino=NS(out_dim=64), method="dino"), gen_dino=NS(dino=NS(out_dim=64)), baseline="dino")
    out = verdicts(stages, None, {}, {})  # no autoencoder attribute at all, nothing logged
    assert [(v.stage, v.status, v.text) for v in out] == [
        ("stage 1", "warning", "no training loss was logged"),
        ("stage 2", "warning", "the bank's quality was not measured"),
        ("stage 3", "warning", "not evaluated"),
    ]
    gen = {"knn_top1": {"20": 60.0}}
    out = verdicts(stages, None, {"gen-dino": gen, "dino": gen}, {})
    assert out[-1].text.startswith("Gen-DINO minus DINO from scratch (stage 1)")  # the pipeline's baseline


def test_stage2_without_chance_or_ceiling_and_with_two_problems() -> None:
    # no chance and no ceiling recorded: chance counts as 0, so any top-1 above 0 is "above chance"
    v = stage2({"sources": 50, "retrieval_top1": 4.0, "retrieval_median_rank": 9, "source_pixel_rmse": 0.2})
    assert v == Verdict(
        "stage 2",
        "ok",
        "generated views find their source 4.0 % of the time (real stage-1 views "
        "? %, chance 0.00 %), median rank 9; pixel RMSE to the source 0.200",
    )
    # exactly 10x chance is not above it; and near copies: two problems, joined by "; "
    v = stage2(
        {
            "sources": 50,
            "retrieval_top1": 20.0,
            "retrieval_median_rank": 3,
            "chance": {"retrieval_top1": 2.0},
            "ceiling": {"retrieval_top1": 60.0, "source_pixel_rmse": 0.5},
            "source_pixel_rmse": 0.05,
        }
    )
    assert v.text == (
        "generated views find their source 20.0 % of the time (real stage-1 views 60.0 %, chance 2.00 %), median "
        "rank 3; pixel RMSE to the source 0.050 (real views 0.500): the views are not views of their source, so "
        "stage 3 pairs images with unrelated ones; the views differ from their source by a pixel RMSE of 0.050, "
        "under 20% of real stage-1 views' 0.500: they are near copies, so stage 3 learns little from them; train "
        "the generator longer (see its conditioning curves)"
    )
    # views exactly at 20 % of the real views' spread are not copies (the rule is "under")
    q = {
        "sources": 50,
        "retrieval_top1": 50.0,
        "retrieval_median_rank": 1,
        "ceiling": {"retrieval_top1": 60.0, "diversity_pixel_rmse": 0.5},
        "diversity_pixel_rmse": 0.1,
    }
    assert stage2(q).status == "ok"
    assert "differ from each other by a pixel RMSE of 0.090" in stage2({**q, "diversity_pixel_rmse": 0.09}).text


def test_the_edges_of_stage1_and_the_autoencoder() -> None:
    import math

    uniform = math.log(64)
    # a loss that ends exactly at 95 % of uniform is still "near uniform"
    m = [{"loss": uniform - (0.05 * uniform) * i / 9} for i in range(10)]
    assert "still near its uniform value" in stage1(m, "dino", 64).text
    # ten points that did not move: flat, and not fallen
    assert stage1([{"loss": 3.0}] * 10, "dino", 64).text.endswith(
        "did not fall over training, so the encoder learned little; check the learning rate, or train longer"
    )
    # a cosine of exactly 0 to the source is "sees nothing"
    q = {
        "images": 40,
        "psnr_db": 20.0,
        "cosine_to_source": 0.0,
        "retrieval_top1": 50.0,
        "ceiling": {"retrieval_top1": 60.0},
    }
    assert "cosine <= 0" in autoencoder(q).text
    # a ceiling of 0 with no median ranks: top-1 decides (0 >= half of 0)
    q = {
        "images": 40,
        "psnr_db": 20.0,
        "cosine_to_source": 0.5,
        "retrieval_top1": 0.0,
        "ceiling": {"retrieval_top1": 0},
    }
    assert autoencoder(q).status == "ok" and "median rank decides" not in autoencoder(q).text
    assert "median rank decides" not in autoencoder({**q, "retrieval_median_rank": 3}).text
