"""A latent generator's view bank as uint8 pixels or fp16 latents, side by side in one run:
bytes per view, generation images/s, and stage 3's read throughput (a batch of views and one of
interpolations, as a Gen-DINO step draws them; latents are decoded on the read device).

    python benchmarks/bank_storage.py --generator runs/gensis_lung224/seed0/generator \\
        --data ../shared/data/lc25000-lung/train.zip --images 128 --batch 32 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import emit, header

import gensis
from gensis.bank import ViewBank
from gensis.bank.store import shard_path
from gensis.runtime.device import resolve_device
from gensis.train.view_sources import BankViews


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--generator", required=True, help="a latent-space train-generator run folder")
    p.add_argument("--data", required=True)
    p.add_argument("--images", type=int, default=128, help="source images in each bank")
    p.add_argument("--batch", type=int, default=32, help="views read per stage-3 step")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    device = resolve_device(args.device)
    result = header("bank_storage", device)
    result.update(images=args.images, batch=args.batch, storages={})
    with tempfile.TemporaryDirectory() as tmp:
        for storage in ("pixels", "latents"):
            out = Path(tmp) / storage
            t0 = time.perf_counter()
            made = gensis.generate(
                generator=args.generator,
                data_path=args.data,
                out=str(out),
                storage=storage,
                views_per_image=1,
                interpolations_per_image=1,
                max_images=args.images,
                shard_size=args.images,
                device=args.device,
                progress=False,
                steps=10,
                quality_sources=8,
            )
            seconds = time.perf_counter() - t0
            bank = ViewBank(out)
            views = bank.index.n_sources * 2
            reader = BankViews(str(out), bank.index.n_sources, bank.index.resolution, data=None, device=device)
            rates = []
            for r in range(args.rounds):
                g = torch.Generator().manual_seed(r)
                idx = torch.randint(0, bank.index.n_sources, (args.batch,), generator=g)
                t1 = time.perf_counter()
                reader.views(idx, g)
                reader.interpolations(idx, g)
                rates.append(2 * args.batch / (time.perf_counter() - t1))
            result["storages"][storage] = {
                "bytes_per_view": round(shard_path(out, 0).stat().st_size / views),
                "generate_images_per_s": round(made.n_images / seconds, 2),
                "stage3_read_images_per_s": round(statistics.median(rates), 1),
                "stage3_read_rounds": [round(x, 1) for x in rates],
                "bank_bytes_per_million_views_gb": round(shard_path(out, 0).stat().st_size / views * 1e6 / 1e9, 2),
            }
    emit(result, args.json)


if __name__ == "__main__":
    main()
