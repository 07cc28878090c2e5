"""Stage-3 options of Gen-SIS, each measured: variants of a finished ``gensis run`` folder.

Every variant is the pipeline's Gen-DINO run with one setting changed (same bank, same
epochs, same seed), trained beside it in ``<run>/ablations/<name>`` and evaluated like the
pipeline's encoders (kNN and linear probe on ``data.eval_path``):

    python benchmarks/gensis_ablations.py --run runs/demo                 # after `gensis demo`
    python benchmarks/gensis_ablations.py --run runs/demo --variants p_gen=1.0,no_dis
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from gensis.config.overrides import build_config
from gensis.config.schema import PipelineConfig
from gensis.pipeline import stage_configs
from gensis.pipeline.evaluate import evaluate_stage
from gensis.pipeline.stages import stage3_variant
from gensis.runtime.device import resolve_device

from _common import emit, header


def variants(run: Path, stage1_epochs: int) -> dict[str, dict[str, Any]]:
    generator = str(run / "generator")
    return {
        "p_gen=0.25": {"gen.p_gen": 0.25},
        "p_gen=1.0": {"gen.p_gen": 1.0},
        "no_dis": {"gen.lambda_dis": 0.0},
        "lambda_dis=0.25": {"gen.lambda_dis": 0.25},
        "lambda_dis=2": {"gen.lambda_dis": 2.0},
        "views_per_image=1": {"gen.views_per_image": 1},
        "dis_update_center": {"gen.dis_update_center": True},
        # Views drawn from the generator during training instead of the bank (alpha from
        # gen.alpha_range, here wider than the bank's).
        "on_the_fly": {"gen.bank": None, "gen.generator": generator, "gen.steps": 10},
        "on_the_fly_alpha=0.1-0.9": {"gen.bank": None, "gen.generator": generator, "gen.steps": 10,
                                     "gen.alpha_range": [0.1, 0.9]},
        # Stage 3 from a random init for as many epochs as stage 1: compare with stage 1.
        "from_scratch": {"init_from": None, "init_full": False, "train.epochs": stage1_epochs},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a finished gensis run (or demo) folder")
    p.add_argument("--variants", default=None, help="comma-separated names (default: all)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    run = Path(args.run)
    cfg = build_config(PipelineConfig, {}, use_presets=False, config_file=run / "config.yaml")
    stages = stage_configs(cfg)
    table = variants(run, stages.pretrain.train.epochs)
    names = list(table) if args.variants is None else args.variants.split(",")
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(table)}")
    result = header("gensis_ablations", resolve_device(cfg.device))
    result["run"] = str(run)
    evals: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for name in names:
        t0 = time.perf_counter()
        encoder = stage3_variant(cfg, stages.gen_dino, f"ablations/{name}", table[name])
        seconds[name] = round(time.perf_counter() - t0, 1)
        evaluate_stage(name, encoder, cfg, run / "ablations" / "eval", evals)
    reference = {}
    for path in sorted((run / "eval").glob("*.json")):  # the pipeline's own encoders
        r = json.loads(path.read_text())
        reference[path.stem] = {"knn_top1": r["knn_top1"], "linear_top1": r.get("linear", {}).get("top1")}
    result["pipeline"] = reference
    result["variants"] = {n: {"overrides": table[n], "train_seconds": seconds[n], "knn_top1": evals[n]["knn_top1"],
                              "linear_top1": evals[n].get("linear", {}).get("top1")} for n in names}
    emit(result, args.json)


if __name__ == "__main__":
    main()
