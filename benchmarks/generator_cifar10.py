"""Stage 2 on CIFAR-10: how the embedding should enter the UNet, measured.

For each conditioning variant (added to the timestep embedding as in RCDM/RCG, or
cross-attended as tokens as in LDM), train a generator on the stage-1 encoder's embeddings
with the same budget, generate K views (and one interpolation) for the sources of one shard,
and report fidelity (cosine to the condition; retrieval of the source among every training
embedding), diversity, the Frechet distance in the encoder's space, and generation
throughput. Pictures of each variant go to <out>/<variant>/pics.

    python benchmarks/generator_cifar10.py --encoder runs/bench_c10_cpu --max-images 10000 \
        --max-steps 600 --sources 500

``--train`` takes any image source, e.g. the demo digits as an .npz for a CPU-sized check.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _common import emit, header

import gensis
from gensis.runtime.device import resolve_device

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", required=True, help="stage-1 run folder or exported encoder")
    p.add_argument("--train", default=str(DATA / "train.zip"))
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--variants", default="add,cross_attention")
    p.add_argument("--widths", default="64,128,128", help="UNet block_out_channels")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=500, help="warm-up steps")
    p.add_argument("--sources", type=int, default=500, help="sources generated (one shard)")
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=1.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/gen_c10")
    p.add_argument("--results", default=None)
    args = p.parse_args()
    device = resolve_device(args.device)
    limit = {"data.max_images": args.max_images} if args.max_images else {}

    for variant in args.variants.split(","):
        out = Path(args.out) / variant
        t0 = time.perf_counter()
        run = gensis.train_generator(
            {
                "encoder": args.encoder,
                "data.path": args.train,
                "out": str(out / "generator"),
                "model.conditioning": variant,
                "model.block_out_channels": [int(w) for w in args.widths.split(",")],
                "model.layers_per_block": 1,
                "train.batch_size": args.batch_size,
                "train.epochs": args.epochs,
                "train.lr": args.lr,
                "train.warmup_steps": args.warmup,
                "train.device": args.device,
                "train.progress": False,
                **({"train.max_steps": args.max_steps} if args.max_steps else {}),
                **limit,
            },
            resume=(out / "generator" / "checkpoints" / "last.pt").exists(),
        )
        train_min = (time.perf_counter() - t0) / 60
        gen = gensis.generate(
            {
                "generator": str(run.out),
                "data_path": args.train,
                "out": str(out / "bank"),
                "views_per_image": args.views,
                "interpolations_per_image": 1,
                "steps": args.steps,
                "guidance_scale": args.guidance,
                "shard_size": args.sources,
                "shards": [0],
                "quality_sources": args.sources,
                "device": args.device,
                "progress": False,
                **({"max_images": args.max_images} if args.max_images else {}),
            }
        )
        gensis.show(
            generator=str(run.out),
            data_path=args.train,
            out=str(out / "pics"),
            rows=8,
            views=6,
            alphas=7,
            steps=args.steps,
            guidance_scale=args.guidance,
            device=args.device,
            tile_px=48,
        )
        emit(
            {
                **header("generator_cifar10", device),
                "conditioning": variant,
                "train_images": args.max_images or 50000,
                "unet_widths": args.widths,
                "train_steps": run.steps,
                "train_minutes": round(train_min, 2),
                "final_loss": round(run.final_loss, 4) if run.final_loss is not None else None,
                "sampler": f"dpmsolver++, {args.steps} steps, guidance {args.guidance}",
                "generated_images": gen.n_images,
                "generation_images_per_s": round(gen.images_per_s, 2) if gen.images_per_s else None,
                "quality": gen.quality,
            },
            args.results,
        )


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main()
