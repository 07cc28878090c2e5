"""Stage-3 options of Gen-SIS, each measured over seeds: variants of a finished experiment folder.

Every variant is the pipeline's Gen-DINO run with one setting changed (same stage 1, same
bank, same epochs), trained once per training seed in ``<run>/ablations/<name>[-sN]`` and
evaluated like the pipeline's encoders (kNN and linear probe on ``data.eval_path``). The
default set isolates the paper's two ideas (arXiv 2412.01672, Table 5): generated views
(``no_gen``: p_gen 0 with the disentanglement task on; p_gen 0.25 and 1.0) and the
disentanglement task (``no_dis``), plus generated views per image (1 or 4; the bank must hold 4).

The table (``<run>/ablations/table.md`` and ``.json``) gives mean +- sd per variant and the
paired differences against the control and against full Gen-DINO (the experiment's own
``gen-dino``, ``gen-dino-s1``, ... and ``control``, ``control-s1``, ..., same seeds):

    python benchmarks/gensis_digits.py                                  # stage 1, bank, 3 seeds
    python benchmarks/gensis_ablations.py --run runs/gensis_digits/seed0 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import emit, header
from _gensis_table import dis_curve, split_name, summarize, write_table

from gensis.config.overrides import build_config
from gensis.config.schema import PipelineConfig
from gensis.pipeline import stage_configs
from gensis.pipeline.evaluate import evaluate_stage
from gensis.pipeline.stages import stage3_variant
from gensis.runtime.device import resolve_device

DEFAULT = ["no_dis", "no_gen", "p_gen=0.25", "p_gen=1.0", "views_per_image=1", "views_per_image=4"]


def variants(run: Path, stage1_epochs: int) -> dict[str, dict[str, Any]]:
    generator = str(run / "generator")
    return {
        "no_dis": {"gen.lambda_dis": 0.0},
        "no_gen": {"gen.p_gen": 0.0},  # disentanglement on, no (real, generated) pairs
        "p_gen=0.25": {"gen.p_gen": 0.25},
        "p_gen=1.0": {"gen.p_gen": 1.0},
        "lambda_dis=0.25": {"gen.lambda_dis": 0.25},
        "lambda_dis=2": {"gen.lambda_dis": 2.0},
        "views_per_image=1": {"gen.views_per_image": 1},
        "views_per_image=4": {"gen.views_per_image": 4},
        "dis_update_center": {"gen.dis_update_center": True},
        # Views drawn from the generator during training instead of the bank (alpha from
        # gen.alpha_range, here wider than the bank's).
        "on_the_fly": {"gen.bank": None, "gen.generator": generator, "gen.steps": 10},
        "on_the_fly_alpha=0.1-0.9": {
            "gen.bank": None,
            "gen.generator": generator,
            "gen.steps": 10,
            "gen.alpha_range": [0.1, 0.9],
        },
        # Stage 3 from a random init for as many epochs as stage 1: compare with stage 1.
        "from_scratch": {"init_from": None, "init_full": False, "train.epochs": stage1_epochs},
    }


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {"knn_top1": r["knn_top1"], "linear_top1": r.get("linear", {}).get("top1")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a finished gensis run (or experiment seed) folder")
    p.add_argument("--variants", default=",".join(DEFAULT), help="comma-separated names")
    p.add_argument("--seeds", default="0", help="stage-3 training seeds, comma-separated")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    run = Path(args.run)
    cfg = build_config(PipelineConfig, {}, use_presets=False, config_file=run / "config.yaml")
    stages = stage_configs(cfg)
    table = variants(run, stages.pretrain.train.epochs)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(table)}")
    result = header("gensis_ablations", resolve_device(cfg.device))
    result["run"] = str(run)
    evals: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in names:
            key = name if seed == 0 else f"{name}-s{seed}"
            t0 = time.perf_counter()
            encoder = stage3_variant(cfg, stages.gen_dino, f"ablations/{key}", {**table[name], "train.seed": seed})
            seconds[key] = round(time.perf_counter() - t0, 1)
            evaluate_stage(key, encoder, cfg, run / "ablations" / "eval", evals)
    rows = {}
    for path in sorted((run / "eval").glob("*.json")):  # the experiment's own encoders
        if split_name(path.stem)[0] in ("dino", "control", "gen-dino"):
            rows[path.stem] = _row(json.loads(path.read_text()))
    rows.update({key: _row(r) for key, r in evals.items()})
    versus = [("gen-dino", "control")] + [(n, "control") for n in names] + [("gen-dino", n) for n in names]
    summary = summarize(rows, versus, n_test=next(iter(evals.values()))["n_test"])
    out_dim = stages.gen_dino.dino.out_dim
    summary["disentanglement_loss"] = {key: dis_curve(run / "ablations" / key, out_dim) for key in evals}
    summary["overrides"] = {n: table[n] for n in names}
    summary["train_seconds"] = seconds
    md = write_table(
        run / "ablations", summary, {"gen-dino": "Gen-DINO (full)", "control": "control (no generated views)"}
    )
    print(md.read_text())
    result["summary"] = summary
    emit(result, args.json)


if __name__ == "__main__":
    main()
