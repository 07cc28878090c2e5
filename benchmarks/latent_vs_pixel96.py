"""Stage 2 at 96 px, pixel space (``pixel96``) against the latent space of an autoencoder
trained on the same tiles (``latent``), side by side in one run with the same generator budget
(batch, steps, learning rate, EMA): generator step time, sampling images/s, and faithfulness
against the real-view ceiling (a bank of 2 views for each of ``--sources`` tiles, retrieved among
those tiles).

Both UNets keep their preset's levels and attention; ``--widths`` narrows them alike for a CPU
(``pixel96`` gets one level more, since its input is 4x larger per side than 24x24 latents).

    python benchmarks/latent_vs_pixel96.py --max-images 4000 --stage1-epochs 3 --steps 300 --out runs/lvp96

``--latent-steps`` gives the latent generator its own step count, e.g. the steps it makes in
the wall time that ``pixel96`` needs for ``--steps``: an equal-compute comparison. Each
space's training seconds are recorded beside its steps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gensis
from gensis.runtime.device import resolve_device
from gensis.runtime.run_folder import RunFolder

from _common import emit, header

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pcam"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", default=str(DATA / "train.zip"))
    p.add_argument("--max-images", type=int, default=4000)
    p.add_argument("--encoder", default=None, help="a stage-1 run at 96 px (default: trained here)")
    p.add_argument("--stage1-epochs", type=int, default=3)
    p.add_argument("--ae-epochs", type=int, default=4)
    p.add_argument("--ae-widths", default="16,32,64", help="3 levels: 4x down, 24x24 latents")
    p.add_argument("--widths", default="32,64,64", help="latent UNet widths; pixel96 gets one more level")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=300, help="generator steps, both spaces")
    p.add_argument("--latent-steps", type=int, default=None, help="the latent generator's steps (default: --steps)")
    p.add_argument("--sources", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/latent_vs_pixel96")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    out = Path(args.out)
    result = header("latent_vs_pixel96", resolve_device(args.device))
    common = {"data.path": args.train, "data.max_images": args.max_images, "data.resolution": 96}
    encoder = args.encoder
    if encoder is None:
        encoder = str(out / "stage1")
        if not RunFolder(encoder).exported_encoder.exists():
            gensis.pretrain({**common, "preset": "histology", "out": encoder, "model.backbone": "resnet10t",
                             "augment.n_local_crops": 0, "train.epochs": args.stage1_epochs,
                             "optim.warmup_epochs": 1, "train.knn_every": 0, "train.progress": False})
    t0 = time.perf_counter()
    ae = out / "autoencoder"
    if not (ae / "exported" / "autoencoder" / "gensis.json").exists():
        gensis.train_autoencoder({**common, "encoder": encoder, "out": str(ae), "train.epochs": args.ae_epochs,
                                  "model.block_out_channels": [int(w) for w in args.ae_widths.split(",")],
                                  "train.crop_size": 48, "train.eval_every": 0, "train.progress": False})
    result["autoencoder_seconds"] = round(time.perf_counter() - t0, 1)
    result["autoencoder"] = json.loads((ae / "reconstruction.json").read_text())
    widths = [int(w) for w in args.widths.split(",")]
    spaces = {"pixel96": {"model.spec": "pixel96", "model.block_out_channels": [widths[0], *widths]},
              "latent": {"model.spec": "latent", "model.space": "latent", "model.vae": str(ae),
                         "model.block_out_channels": widths}}
    result["spaces"] = {}
    steps = {"pixel96": args.steps, "latent": args.latent_steps or args.steps}
    for name, model in spaces.items():
        gen_out = out / f"generator-{name}"
        t_train = time.perf_counter()
        if not (gen_out / "exported" / "generator.safetensors").exists():
            gensis.train_generator({**common, **model, "encoder": encoder, "out": str(gen_out),
                                    "train.batch_size": args.batch_size, "train.max_steps": steps[name],
                                    "train.epochs": 1000, "train.lr": 5e-4, "train.warmup_steps": 50,
                                    "train.ema_decay": 0.995, "train.log_every": 10, "train.monitor_every": 0,
                                    "train.progress": False, "train.device": args.device})
        t_train_done = time.perf_counter()  # 0 s when an earlier run's generator was reused
        records = [r for r in RunFolder(gen_out).read_metrics() if "images_per_s" in r]
        rate = sorted(r["images_per_s"] for r in records)[len(records) // 2]
        t1 = time.perf_counter()
        bank = gensis.generate(generator=str(gen_out), data_path=args.train, out=str(out / f"bank-{name}"),
                               max_images=args.sources, views_per_image=2, interpolations_per_image=0,
                               quality_sources=args.sources, device=args.device, progress=False)
        q = bank.quality or json.loads((out / f"bank-{name}" / "quality.json").read_text())
        result["spaces"][name] = {
            "steps": steps[name], "train_seconds": round(t_train_done - t_train, 1),
            "train_images_per_s": round(rate, 2), "seconds_per_step": round(args.batch_size / rate, 3),
            "sample_images_per_s": round(bank.images_per_s, 2) if bank.images_per_s else None,
            "generate_seconds": round(time.perf_counter() - t1, 1),
            **{k: q.get(k) for k in ("retrieval_top1", "retrieval_median_rank", "class_consistency",
                                     "diversity_cosine", "fidelity_cosine")},
            "ceiling": {k: q["ceiling"].get(k) for k in ("retrieval_top1", "retrieval_median_rank", "class_consistency")},
            "chance_top1": q["chance"]["retrieval_top1"],
        }
    s = result["spaces"]
    result["latent_speedup_per_step"] = round(s["pixel96"]["seconds_per_step"] / s["latent"]["seconds_per_step"], 2)
    emit(result, args.json)


if __name__ == "__main__":
    main()
