"""Stage 2 speed, old design vs new, side by side in one run: training and generation images/s.

The designs are those of ``generator_conditioning.py`` (same UNet widths, batch and data: the
demo digits); only the conditioning and the loss differ. Each design is timed ``--rounds``
times, alternating, so a slow spell of the machine hits both.

    python benchmarks/generator_throughput.py --encoder runs/cond_bench/pretrain \\
        --data runs/cond_bench/data/digits_train.npz --steps 150 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import emit, header
from generator_conditioning import DESIGNS

import gensis
from gensis.demo import DEMO_STAGES
from gensis.generator.checkpoint import load_generator
from gensis.generator.sampling import make_scheduler, sample
from gensis.runtime.device import resolve_device
from gensis.runtime.run_folder import RunFolder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--designs", default="old,new")
    p.add_argument("--steps", type=int, default=150, help="training steps timed per round (after 20 warm-up)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--samples", type=int, default=512, help="images generated per round (10 DPM-Solver++ steps)")
    p.add_argument("--device", default="auto")
    p.add_argument("--results", default=None)
    args = p.parse_args()
    device = resolve_device(args.device)
    train: dict[str, list[float]] = {d: [] for d in args.designs.split(",")}
    gen: dict[str, list[float]] = {d: [] for d in train}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name in train:
                out = Path(tmp) / f"{name}-{r}"
                run = gensis.train_generator(
                    {
                        **DEMO_STAGES["generator"],
                        **DESIGNS[name],
                        "train.max_steps": args.steps + 20,
                        "train.epochs": 10_000,
                        "train.log_every": 10,
                        "train.monitor_every": 0,
                        "train.progress": False,
                        "train.device": args.device,
                        "encoder": args.encoder,
                        "data.path": args.data,
                        "data.cache_dir": None,
                        "out": str(out),
                    }
                )
                rates = [
                    m["images_per_s"]
                    for m in RunFolder(run.out).read_metrics()
                    if "images_per_s" in m and m["step"] > 20
                ]
                train[name].append(statistics.fmean(rates))
                unet, meta = load_generator(run.generator_path, device)
                sch = make_scheduler("dpmsolver++", **json.loads(meta["scheduler"]))
                emb = torch.nn.functional.normalize(torch.randn(args.samples, unet.embed_dim), dim=-1)
                t0 = time.perf_counter()
                sample(unet, sch, emb, steps=10, generator=torch.Generator().manual_seed(0))
                gen[name].append(args.samples / (time.perf_counter() - t0))
    emit(
        {
            **header("generator_throughput", device),
            "unet": DEMO_STAGES["generator"]["model.block_out_channels"],
            "batch_size": DEMO_STAGES["generator"]["train.batch_size"],
            "rounds": args.rounds,
            "train_images_per_s": {k: [round(v, 1) for v in vs] for k, vs in train.items()},
            "generate_images_per_s": {k: [round(v, 1) for v in vs] for k, vs in gen.items()},
        },
        args.results,
    )


if __name__ == "__main__":
    main()
