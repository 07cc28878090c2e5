"""What Gen-DINO is judged against: the control, or stage 1 itself when stage 3 starts from
scratch with stage 1's recipe (the paper's comparison; training a control would repeat stage 1)."""

from __future__ import annotations

import pytest
from _synthetic import write_npz

from gensis.config.overrides import build_config
from gensis.config.schema import PipelineConfig
from gensis.eval.significance import encode_correct
from gensis.pipeline import stage_configs
from gensis.pipeline.report import _compute
from gensis.pipeline.verdict import stage3


@pytest.mark.parametrize(
    "settings, control, baseline",
    [
        ({"stage3_init": "scratch"}, False, "dino"),
        ({"stage3_init": "scratch", "control": False}, False, "dino"),
        ({"stage3_init": "scratch", "gen_dino": {"gen.p_gen": 0.25}}, False, "dino"),  # gen.* only: same recipe
        ({"stage3_init": "scratch", "gen_dino": {"train.epochs": 3}}, True, "control"),  # another recipe
        ({"stage3_init": "scratch", "gen_dino": {"train.epochs": 3}, "control": False}, False, None),
        ({"stage3_init": "stage1"}, True, "control"),
        ({"stage3_init": "stage1", "control": False}, False, None),
    ],
)
def test_the_baseline_of_stage_3(tmp_path, settings, control, baseline) -> None:
    data = write_npz(tmp_path / "d.npz", 16)
    cfg = build_config(
        PipelineConfig,
        {
            "preset": "digits",
            "out": str(tmp_path / "run"),
            "data.path": str(data),
            "pretrain": {"train.epochs": 2},
            **settings,
        },
        use_presets=False,
    )
    stages = stage_configs(cfg)
    assert (stages.control is not None, stages.baseline) == (control, baseline)


def _encoder(right: list[bool]) -> dict:
    top1 = 100 * sum(right) / len(right)
    return {
        "knn_top1": {"20": top1},
        "knn_correct": {"20": encode_correct(right)},
        "linear": {"top1": top1, "correct": encode_correct(right)},
    }


FALLING = [{"loss_dis": 7.3 - 0.006 * i, "loss_dis_floor": 6.1} for i in range(100)]


def test_from_scratch_gen_dino_is_judged_against_stage_1() -> None:
    n = 1000
    results = {"dino": _encoder([i < 700 for i in range(n)]), "gen-dino": _encoder([i < 760 for i in range(n)])}
    v = stage3(results, FALLING, 4096, baseline="dino")
    assert v.status == "ok"
    assert v.text.startswith(
        "Gen-DINO minus DINO from scratch (stage 1), one seed, same test images: kNN k=20 +6.00 "
        "points (60 test images right only with Gen-DINO, 0 only with DINO from scratch (stage 1)"
    )
    assert v.text.endswith(": Gen-DINO beats DINO from scratch (stage 1) beyond the noise")
    # Continuing stage 1, stage 1 is not a baseline at equal epochs: without a control, nothing is compared.
    v = stage3(results, FALLING, 4096, baseline="control")
    assert v.status == "none" and v.text.endswith("no control was evaluated, so there is nothing to compare against")


def test_the_compute_line_names_the_baseline() -> None:
    seconds = {
        "pretrain": {"seconds": 100.0},
        "train-generator": {"seconds": 50.0},
        "generate": {"seconds": 20.0},
        "gen-dino": {"seconds": 130.0},
        "control": {"seconds": 40.0},
    }
    assert _compute(seconds, "dino") == {"gen-sis pipeline (s)": 300.0, "DINO from scratch: stage 1 (s)": 100.0}
    assert _compute(seconds, "control") == {"gen-sis pipeline (s)": 300.0, "control: stage 1 + control (s)": 140.0}
