"""GenView's ideas on CIFAR-10 with the user's own encoder and generator (Li et al. 2024,
arXiv 2403.12003): SimCLR vs + generated views vs + adaptive noise vs + quality-driven loss,
all for the same epochs from scratch, evaluated by kNN and a linear probe on the test split.

It reuses a finished ``gensis_cifar10.py`` run (its stage-1 DINO encoder, its generator
conditioned on that encoder's embeddings, and its view bank), so run that first:

* ``simclr``: SimCLR with hand-crafted augmentations only;
* ``+gen``: pairs are (real, generated view) with probability ``p_gen`` (the run's bank);
* ``+adaptive``: the same from a bank whose view conditions are noised by the image's
  foreground share (GenView's adaptive generation; the foreground PCA comes from the stage-1
  encoder's feature map, computed at ``--fg-resolution`` px);
* ``+quality``: ``+adaptive`` with each pair's loss weighted by foreground minus background
  similarity under the frozen stage-1 encoder (GenView's quality-driven loss).

    python benchmarks/genview_cifar10.py --run runs/gensis_cifar10/seed0 --epochs 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import emit, header

import gensis
from gensis.config.overrides import build_config
from gensis.config.schema import PipelineConfig
from gensis.pipeline.evaluate import evaluate_stage
from gensis.runtime.device import resolve_device
from gensis.runtime.run_folder import RunFolder


def _train(cfg: dict[str, Any]) -> tuple[Path, float]:
    """Train (or reuse) one run; returns its exported encoder and the seconds spent now."""
    run = RunFolder(cfg["out"])
    t0 = time.perf_counter()
    if not run.exported_encoder.exists():
        gensis.pretrain(cfg, resume=run.last_checkpoint.exists())
    return run.exported_encoder, round(time.perf_counter() - t0, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", default="runs/gensis_cifar10/seed0", help="a finished gensis_cifar10 pipeline folder")
    p.add_argument("--out", default="runs/genview_cifar10")
    p.add_argument("--method", choices=["simclr", "mocov3"], default="simclr")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--p-gen", type=float, default=0.5)
    p.add_argument("--fg-resolution", type=int, default=96, help="3x3 feature cells for a stride-32 CNN")
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    run, out = Path(args.run), Path(args.out)
    pipeline = build_config(PipelineConfig, use_presets=False, config_file=run / "config.yaml")
    pipeline = pipeline.model_copy(update={"device": args.device, "progress": not args.quiet})
    result = header("genview_cifar10", resolve_device(args.device))
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    base_bank = json.loads((run / "bank" / "index.json").read_text())["settings"]
    adaptive_bank = out / "bank-adaptive"
    gensis.generate(
        generator=str(run / "generator"),
        data_path=pipeline.data.path,
        out=str(adaptive_bank),
        max_images=pipeline.data.max_images,
        views_per_image=1,
        interpolations_per_image=0,
        steps=base_bank["steps"],
        sampler=base_bank["sampler"],
        seed=pipeline.seed,
        adaptive_noise=True,
        foreground={"resolution": args.fg_resolution},
        device=args.device,
        progress=not args.quiet,
    )
    seconds["adaptive bank"] = round(time.perf_counter() - t0, 1)

    stage1 = run / "pretrain"
    common = {
        "preset": pipeline.preset,
        "method": args.method,
        "data.path": pipeline.data.path,
        "data.max_images": pipeline.data.max_images,
        "data.resolution": pipeline.data.resolution,
        **pipeline.pretrain,
        "train.epochs": args.epochs,
        "train.seed": pipeline.seed,
        "train.device": args.device,
        "train.progress": not args.quiet,
    }
    gen = {"gen.bank": str(run / "bank"), "gen.p_gen": args.p_gen}
    adaptive = {"gen.bank": str(adaptive_bank), "gen.p_gen": args.p_gen}
    quality = {
        **adaptive,
        "quality.enabled": True,
        "quality.encoder": str(stage1),
        "quality.foreground.resolution": args.fg_resolution,
        "quality.gamma": args.gamma,
    }
    variants = {args.method: {}, "+gen": gen, "+adaptive": adaptive, "+quality": quality}
    rows: dict[str, Any] = {}
    for name, keys in variants.items():
        encoder, seconds[name] = _train({**common, **keys, "out": str(out / name.strip("+"))})
        evals: dict[str, Any] = {}
        evaluate_stage(name.strip("+"), encoder, pipeline, out / "eval", evals)
        r = evals[name.strip("+")]
        rows[name] = {
            "knn_top1": r["knn_top1"],
            "linear_top1": r["linear"]["top1"],
            "trained_steps": r["trained_steps"],
        }
    levels = json.loads((adaptive_bank / "index.json").read_text())["settings"]
    result.update(
        run=str(run),
        method=args.method,
        epochs=args.epochs,
        p_gen=args.p_gen,
        adaptive_settings=levels,
        seconds=seconds,
        results=rows,
        adaptive_bank_quality=json.loads((adaptive_bank / "quality.json").read_text()),
    )
    emit(result, args.json)


if __name__ == "__main__":
    main()
