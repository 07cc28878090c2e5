"""The report's Markdown and HTML for the branches a short run rarely reaches: stage 3 below
its control, stage 3 not evaluated, and a faithfulness table without a real-view ceiling."""

from __future__ import annotations

from gensis.eval.significance import encode_correct
from gensis.pipeline.report import _eval_rows, _html, _markdown, _stage_rows
from gensis.pipeline.verdict import stage2, stage3

FALLING = [{"loss_dis": 7.3 - 0.006 * i, "loss_dis_floor": 6.1} for i in range(100)]


def _report(quality: dict | None, results: dict, dis_curve: list[dict] = FALLING) -> tuple[str, str]:
    sections = {
        "verdicts": [stage2(quality), stage3(results, dis_curve, 4096)],
        "facts": {},
        "stages": _stage_rows({}, {}),
        "compute": {},
        "eval": _eval_rows(results) if results else None,
        "quality": quality,
        "reconstruction": None,
        "recon_pictures": [],
        "pictures": [],
        "plots": [],
    }
    return _markdown(sections), _html(sections)


def _encoder(right: list[bool], steps: int) -> dict:
    top1 = 100 * sum(right) / len(right)
    return {
        "trained_steps": steps,
        "knn_top1": {"20": top1},
        "knn_correct": {"20": encode_correct(right)},
        "linear": {"top1": top1 - 1, "correct": encode_correct(right)},
    }


QUALITY = {
    "sources": 500,
    "retrieval_top1": 7.0,
    "retrieval_median_rank": 4,
    "ceiling": {"retrieval_top1": 8.0},
    "chance": {"retrieval_top1": 0.2},
    "versus_ceiling": {"retrieval_top1": 0.875},
}


def test_a_negative_gen_sis_gain_is_a_warning_with_its_numbers() -> None:
    n = 1000
    control = [i < 760 for i in range(n)]  # 760 right
    gen = [i < 700 for i in range(n)]  # 700 right, all of them also right for the control
    md, page = _report(QUALITY, {"gen-dino": _encoder(gen, 90), "control": _encoder(control, 90)})
    line = next(x for x in md.splitlines() if "**stage 3**" in x)
    assert line.startswith(
        "- **WARNING** **stage 3**: Gen-DINO minus control, one seed, same test images: kNN k=20 -6.00"
    )
    assert "0 test images right only with Gen-DINO, 60 only with its control" in line
    assert "below its control beyond the noise" in line and "below its control beyond the noise" in page
    assert "| Gen-DINO (stage 3) | 90 | 70.00 | 69.00 |" in md
    assert "| DINO, stage-3 recipe without generated views | 90 | 76.00 | 75.00 |" in md


def test_stage3_not_evaluated_says_so_and_shows_no_table() -> None:
    md, page = _report(QUALITY, {}, dis_curve=[])  # no evaluation and no stage-3 curve
    assert [x for x in md.splitlines() if "**stage 3**" in x] == ["- **WARNING** **stage 3**: not evaluated"]
    assert "Frozen-encoder evaluation" not in md and "Frozen-encoder evaluation" not in page
    # trained but not evaluated: the loss is reported, and no comparison is claimed
    md, _ = _report(QUALITY, {})
    line = next(x for x in md.splitlines() if "**stage 3**" in x)
    assert line.startswith("- NO MEASURABLE DIFFERENCE **stage 3**: disentanglement loss 7.27 -> 6.73 (falls")
    assert line.endswith("no control was evaluated, so there is nothing to compare against")


def test_a_faithfulness_table_without_a_ceiling() -> None:
    quality = {"sources": 100, "retrieval_top1": 0.5, "retrieval_median_rank": 40, "chance": {"retrieval_top1": 0.1}}
    md, page = _report(quality, {})
    assert "| source retrieval top-1 (%) | 0.5 | - | - | 0.1 | - |" in md
    assert "<td>0.5</td><td>-</td><td>-</td><td>0.1</td><td>-</td>" in page.replace("\n", "")
    line = next(x for x in md.splitlines() if "**stage 2**" in x)
    assert line.startswith(
        "- **WARNING** **stage 2**: generated views find their source 0.5 % of the time "
        "(real stage-1 views ? %, chance 0.10 %), median rank 40"
    )
    assert "no real-view ceiling was measured" in line
