"""The report's verdicts read each stage's own metrics.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

from types import SimpleNamespace

from gensis.pipeline.verdict import Verdict, verdicts


def test_the_report_judges_each_stage_on_its_own_metrics_and_out_dim() -> None:
    """Each verdict gets its own stage's curve and prototypes: a swapped key or out_dim changes a line."""
    stages = SimpleNamespace(
        pretrain=SimpleNamespace(dino=SimpleNamespace(out_dim=100), method="dino"),
        gen_dino=SimpleNamespace(dino=SimpleNamespace(out_dim=1000)),
        autoencoder=object(),
        baseline="control",
    )
    metrics = {
        "dino": [{"step": 1, "loss": 4.0}, {"step": 2, "loss": 4.5}, {"step": 3, "loss": 5.0}],
        "generator": [{"cond_gap_mid": 40.0 - i} for i in range(10)],
        "gen-dino": [{"loss_dis": v} for v in (5.0, 4.0, 3.0)],
    }
    quality = {
        "sources": 40,
        "retrieval_top1": 25.0,
        "retrieval_median_rank": 2,
        "ceiling": {"retrieval_top1": 50.0},
        "chance": {"retrieval_top1": 2.5},
    }
    got = verdicts(
        stages,
        quality,
        {"gen-dino": {"knn_top1": {"20": 55.0}}},
        metrics,
        reconstruction={"images": 30, "psnr_db": 25.0},
    )
    assert [v.stage for v in got] == ["stage 1", "autoencoder", "stage 2", "stage 3"]
    assert got[0].text.startswith("DINO loss 4.00 -> 5.00 (too few points, 3 points), against 4.61 ")  # ln 100
    assert got[1] == Verdict("autoencoder", "ok", "reconstructions of 30 held-out images: PSNR 25.00 dB")
    assert got[2].status == "warning" and "conditioning gap at mid noise (%) 40.0 -> 31.0 (falls" in got[2].text
    # uniform 6.91 = ln 1000
    assert got[3].text.startswith("disentanglement loss 5.00 -> 3.00 (too few points, 3 points) (uniform 6.91)")
    no_ae = verdicts(SimpleNamespace(**{**vars(stages), "autoencoder": None}), quality, {}, metrics)
    assert [v.stage for v in no_ae] == ["stage 1", "stage 2", "stage 3"]
