"""Gen-SIS on CIFAR-10: DINO vs Gen-DINO without disentanglement vs Gen-DINO, plus a
compute-fair DINO baseline, with kNN (k=20, 200) and a linear probe on the test split.

The protocol of Gen-SIS (arXiv 2412.01672) at our scale: stage 1 trains DINO; stage 2 trains
the embedding-conditioned generator and writes the view bank; stage 3 continues from the
stage-1 weights for the same number of epochs three ways (same backbone, same recipe):

* ``control``: DINO without generated views (the equal-epoch baseline);
* ``gen-dino-nodis``: Gen-DINO with (real, generated) pairs, ``lambda_dis = 0``;
* ``gen-dino``: Gen-DINO with the disentanglement task.

``dino-compute-fair`` continues stage 1 with plain DINO for as many epochs as the seconds
the generator, the bank and Gen-DINO cost (measured in this run), so it gets the whole
Gen-SIS pipeline's compute. Every run is one ``gensis run`` folder plus two extra stage-3
runs; a rerun skips what is done.

    python benchmarks/gensis_cifar10.py --scale cpu     # 5k images, ResNet-10t, ~50 min on 2 cores
    python benchmarks/gensis_cifar10.py --scale gpu --device cuda   # 50k images, the cifar10 preset
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gensis
from gensis.config.overrides import build_config
from gensis.config.schema import PipelineConfig
from gensis.pipeline import stage_configs
from gensis.pipeline.evaluate import evaluate_stage
from gensis.pipeline.stages import stage3_variant
from gensis.runtime.device import resolve_device

from _common import emit, header

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"

SCALES: dict[str, dict[str, Any]] = {
    # 2 CPU cores: a spread 5k-image subset at the native 32 px; ResNet-10t with its
    # standard stem (10x cheaper than the CIFAR stem on the CPU) and a small UNet.
    "cpu": {
        "data.max_images": 5000,
        "pretrain": {"model.backbone": "resnet10t", "model.cifar_stem": False, "train.epochs": 40,
                     "train.knn_every": 0, "train.log_every": 5},
        "generator": {"model.spec": "tiny", "model.block_out_channels": [32, 64, 64], "train.batch_size": 64,
                      "train.epochs": 20, "train.lr": 5e-4, "train.warmup_steps": 100, "train.ema_decay": 0.999,
                      "train.log_every": 20},
        "generate": {"views_per_image": 1, "interpolations_per_image": 1, "steps": 10, "batch_size": 500},
        "gen_dino": {"train.epochs": 10},
        "show": {"steps": 10},
        "linear_epochs": 100,
    },
    # One GPU: the full training set, lightly's CIFAR-10 DINO recipe (cifar10 preset) and
    # the 32-px UNet preset.
    "gpu": {
        "pretrain": {"train.epochs": 200, "train.knn_every": 20},
        "generator": {"model.spec": "pixel32", "train.batch_size": 256, "train.epochs": 100},
        "generate": {"views_per_image": 4, "interpolations_per_image": 1, "steps": 20, "batch_size": 1000},
        "gen_dino": {"train.epochs": 100},
        "linear_epochs": 100,
    },
}


def _pipeline_settings(args, seed: int) -> dict[str, Any]:
    s = json.loads(json.dumps(SCALES[args.scale]))
    s.update({"out": str(Path(args.out) / f"seed{seed}"), "preset": "cifar10", "seed": seed, "device": args.device,
              "data.path": args.train, "data.eval_path": args.test, "progress": not args.quiet})
    return s


def run_seed(args, seed: int) -> dict[str, Any]:
    settings = _pipeline_settings(args, seed)
    result = gensis.run(settings)
    cfg = build_config(PipelineConfig, settings, use_presets=False)
    stages = stage_configs(cfg)
    secs = {k: v["seconds"] for k, v in result["stages"].items()}
    encoders = {"dino": Path(stages.pretrain.out) / "exported" / "encoder.safetensors",
                "control": Path(stages.control.out) / "exported" / "encoder.safetensors",
                "gen-dino": Path(stages.gen_dino.out) / "exported" / "encoder.safetensors"}
    t0 = time.perf_counter()
    encoders["gen-dino-nodis"] = stage3_variant(cfg, stages.gen_dino, "gen-dino-nodis", {"gen.lambda_dis": 0.0})
    secs["gen-dino-nodis"] = round(time.perf_counter() - t0, 1)
    # Compute-fair: plain DINO from stage 1 for the seconds stage 2 + Gen-DINO took.
    per_epoch = secs["control"] / stages.control.train.epochs
    extra = secs["train-generator"] + secs["generate"] + secs["gen-dino"]
    fair_epochs = max(1, round(extra / per_epoch))
    t0 = time.perf_counter()
    encoders["dino-compute-fair"] = stage3_variant(cfg, stages.control, "dino-compute-fair",
                                                   {"train.epochs": fair_epochs})
    secs["dino-compute-fair"] = round(time.perf_counter() - t0, 1)
    evals: dict[str, Any] = {}
    for name, path in encoders.items():
        evaluate_stage(name, path, cfg, Path(cfg.out) / "eval", evals)
    rows = {name: {"knn_top1": r["knn_top1"], "linear_top1": r.get("linear", {}).get("top1"),
                   "trained_steps": r.get("trained_steps")} for name, r in evals.items()}
    quality = json.loads((Path(stages.generate.out) / "quality.json").read_text())
    return {"seed": seed, "seconds": secs, "compute_fair_epochs": fair_epochs,
            "stage3_epochs": stages.gen_dino.train.epochs, "results": rows, "generator_quality": quality}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    p.add_argument("--train", default=str(DATA / "train.zip"))
    p.add_argument("--test", default=str(DATA / "test.zip"))
    p.add_argument("--out", default="runs/gensis_cifar10")
    p.add_argument("--seeds", default="0", help="comma-separated")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    result = header("gensis_cifar10", resolve_device(args.device))
    result["scale"] = args.scale
    result["settings"] = SCALES[args.scale]
    result["runs"] = [run_seed(args, int(s)) for s in args.seeds.split(",")]
    emit(result, args.json)


if __name__ == "__main__":
    main()
