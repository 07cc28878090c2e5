"""Stage 2: which conditioning design makes generated views views of their source? Measured.

On the demo digits (1,437 real digits at 16 px, the demo's stage-1 DINO encoder and its
UNet widths 32/64/64), one run trains a generator per design with the same budget, writes a
bank of K views per image, and measures it against real stage-1 views (the ceiling) and
chance (:mod:`gensis.eval.faithfulness`): source retrieval, class consistency, and
diversity between two views of a source. The designs add one change at a time, from the
old design (embedding added to the timestep embedding before the GroupNorm, unscaled,
epsilon loss, targets flipped with p=0.5) to the new default, so each change is measured:

    old       the design before issue 12
    noflip    + target flips follow stage 1 (the digits preset has none)
    adagn     + AdaGN scale-shift after the GroupNorm
    std       + embedding x sqrt(D)
    new       + v-prediction with min-SNR-5 weights (the default now)
    zero      + zero-initialized condition projection

Also per design: the conditioning monitor's curve (loss gap and one-step retrieval every
``--monitor-every`` steps, i.e. faithfulness vs steps), training and generation images/s,
and for the designs in ``--guidance-designs`` the guidance trade-off (faithfulness vs
diversity at each scale of ``--guidance``).

    python benchmarks/generator_conditioning.py --steps 1200 --out runs/cond_bench \\
        --results docs/results/generator_conditioning.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import emit, header

import gensis
from gensis.data import demo_digits
from gensis.demo import DEMO_STAGES, write_demo_data
from gensis.runtime.device import resolve_device
from gensis.runtime.run_folder import RunFolder

OLD = {
    "model.scale_shift": False,
    "model.standardize": False,
    "model.prediction_type": "epsilon",
    "train.min_snr_gamma": 0.0,
    "train.hflip_p": 0.5,
}
DESIGNS: dict[str, dict] = {
    "old": OLD,
    "noflip": {**OLD, "train.hflip_p": None},
    "adagn": {**OLD, "train.hflip_p": None, "model.scale_shift": True},
    "std": {**OLD, "train.hflip_p": None, "model.scale_shift": True, "model.standardize": True},
    "new": {},
    "zero": {"model.zero_init": True},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/cond_bench")
    p.add_argument("--designs", default=",".join(DESIGNS))
    p.add_argument(
        "--stage1-epochs", type=int, default=30, help="stage-1 epochs (the digits preset's 30; the demo now runs 20)"
    )
    p.add_argument("--steps", type=int, default=1200, help="generator training steps per design")
    p.add_argument("--monitor-every", type=int, default=200)
    p.add_argument("--sources", type=int, default=500, help="source images given views and measured")
    p.add_argument("--views", type=int, default=2, help="generated views per image in each bank")
    p.add_argument("--sample-steps", type=int, default=10, help="DPM-Solver++ steps (the demo's)")
    p.add_argument("--guidance", default="1", help="comma-separated guidance scales")
    p.add_argument("--guidance-designs", default="new", help="designs measured at every guidance scale")
    p.add_argument("--device", default="auto")
    p.add_argument("--results", default=None, help="append the JSON result here")
    args = p.parse_args()
    device = resolve_device(args.device)
    out = Path(args.out)
    train, _ = demo_digits(resolution=16)
    data_path = write_demo_data(out / "data", train)
    encoder = out / "pretrain"
    t0 = time.perf_counter()
    if not RunFolder(encoder).exported_encoder.exists():
        gensis.pretrain(
            preset="digits",
            out=str(encoder),
            data={"path": str(data_path)},
            resume=RunFolder(encoder).last_checkpoint.exists(),
            overrides={"train.progress": False, "train.device": args.device, "train.epochs": args.stage1_epochs},
        )
    stage1_s = time.perf_counter() - t0
    scales = [float(g) for g in args.guidance.split(",")]
    rows = {}
    for name in args.designs.split(","):
        rows[name] = run_design(
            name, DESIGNS[name], args, encoder, data_path, scales if name in args.guidance_designs.split(",") else [1.0]
        )
        print(json.dumps({name: rows[name]["banks"]}, indent=1), flush=True)
    emit(
        {
            **header("generator_conditioning", device),
            "data": "demo digits, 1,437 at 16 px",
            "stage1_seconds": round(stage1_s, 1),
            "steps": args.steps,
            "designs": rows,
        },
        args.results,
    )


def run_design(name: str, overrides: dict, args, encoder: Path, data_path: Path, scales: list[float]) -> dict:
    root = Path(args.out) / name
    gen_cfg = {
        **DEMO_STAGES["generator"],
        **overrides,
        "train.max_steps": args.steps,
        "train.epochs": 10_000,
        "train.monitor_every": args.monitor_every,
        "train.progress": False,
        "train.device": args.device,
        "encoder": str(encoder),
        "data.path": str(data_path),
        "out": str(root / "generator"),
    }
    t0 = time.perf_counter()
    run = gensis.train_generator(gen_cfg)
    train_s = time.perf_counter() - t0
    metrics = RunFolder(run.out).read_metrics()
    rates = [m["images_per_s"] for m in metrics if "images_per_s" in m]
    curve = [
        {k: m[k] for k in m if k == "step" or k.startswith(("cond_gap", "monitor"))}
        for m in metrics
        if "cond_gap_mid" in m
    ]
    banks = {}
    for g in scales:
        t1 = time.perf_counter()
        result = gensis.generate(
            {
                "generator": str(run.out),
                "data_path": str(data_path),
                "out": str(root / f"bank-g{g:g}"),
                "views_per_image": args.views,
                "interpolations_per_image": 0,
                "steps": args.sample_steps,
                "guidance_scale": g,
                "device": args.device,
                "progress": False,
                # Only the first --sources images get views: the figures need no more.
                "shard_size": args.sources,
                "shards": [0],
                "quality_sources": args.sources,
            }
        )
        banks[f"guidance {g:g}"] = {
            "generation_images_per_s": round(result.images_per_s or 0, 1),
            "generate_seconds": round(time.perf_counter() - t1, 1),
            **result.quality,
        }
    gensis.show(
        generator=str(run.out),
        data_path=str(data_path),
        out=str(root / "pics"),
        rows=8,
        views=6,
        alphas=7,
        steps=args.sample_steps,
        device=args.device,
        tile_px=32,
    )
    return {
        "overrides": overrides,
        "train_seconds": round(train_s, 1),
        "train_images_per_s": round(sum(rates) / max(len(rates), 1), 1),
        "curve": curve,
        "banks": banks,
    }


if __name__ == "__main__":
    main()
