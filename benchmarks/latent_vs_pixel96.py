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

``--seeds 0,1,2 --pixel-time total`` repeats both generators (and their banks) with each training
seed on one stage 1 and one autoencoder, and gives ``pixel96`` as many steps as fit in the latent
side's whole time: its generator's training plus the autoencoder's, at the seconds per step of
a separate 20-step run. The table reports each figure's mean +- sd and the paired latent - pixel
difference per seed:

    python benchmarks/latent_vs_pixel96.py --latent-steps 1500 --seeds 0,1,2 --pixel-time total --sources 100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import emit, header
from _gensis_table import paired, spread

import gensis
from gensis.runtime.device import resolve_device
from gensis.runtime.run_folder import RunFolder

FIGURES = ("retrieval_top1", "retrieval_median_rank", "class_consistency")

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
    p.add_argument(
        "--seeds", default="0", help="comma-separated generator training seeds (one stage 1 and autoencoder)"
    )
    p.add_argument(
        "--pixel-time",
        choices=("steps", "total"),
        default="steps",
        help="total: pixel96 trains for the latent generator's seconds plus the autoencoder's",
    )
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
            gensis.pretrain(
                {
                    **common,
                    "preset": "histology",
                    "out": encoder,
                    "model.backbone": "resnet10t",
                    "augment.n_local_crops": 0,
                    "train.epochs": args.stage1_epochs,
                    "optim.warmup_epochs": 1,
                    "train.knn_every": 0,
                    "train.progress": False,
                }
            )
    t0 = time.perf_counter()
    ae = out / "autoencoder"
    if args.pixel_time == "total" and (ae / "exported" / "autoencoder" / "gensis.json").exists():
        p.error(
            f"--pixel-time total: {ae} was trained by an earlier call, so its seconds are not known here; "
            "use a new --out"
        )  # pixel96's budget is the latent side's seconds, measured in this call
    if not (ae / "exported" / "autoencoder" / "gensis.json").exists():
        gensis.train_autoencoder(
            {
                **common,
                "encoder": encoder,
                "out": str(ae),
                "train.epochs": args.ae_epochs,
                "model.block_out_channels": [int(w) for w in args.ae_widths.split(",")],
                "train.crop_size": 48,
                "train.eval_every": 0,
                "train.progress": False,
            }
        )
    result["autoencoder_seconds"] = round(time.perf_counter() - t0, 1)
    result["autoencoder"] = json.loads((ae / "reconstruction.json").read_text())
    widths = [int(w) for w in args.widths.split(",")]
    spaces = {
        "pixel96": {"model.spec": "pixel96", "model.block_out_channels": [widths[0], *widths]},
        "latent": {
            "model.spec": "latent",
            "model.space": "latent",
            "model.vae": str(ae),
            "model.block_out_channels": widths,
        },
    }
    seeds = [int(x) for x in args.seeds.split(",")]
    result["spaces"], result["seeds"] = {}, seeds
    for seed in seeds:
        suffix = "" if seed == seeds[0] else f"-s{seed}"
        latent = _space(
            args, out, common, encoder, spaces["latent"], f"latent{suffix}", seed, args.latent_steps or args.steps
        )
        pixel_steps = args.steps
        if args.pixel_time == "total":  # the latent side's whole time: its generator and the autoencoder
            pixel_steps = lambda per_step, latent=latent: max(
                1, round((latent["train_seconds"] + result["autoencoder_seconds"]) / per_step)
            )
        pixel = _space(args, out, common, encoder, spaces["pixel96"], f"pixel96{suffix}", seed, pixel_steps)
        result["spaces"][f"latent{suffix}"], result["spaces"][f"pixel96{suffix}"] = latent, pixel
    s = result["spaces"]
    result["latent_speedup_per_step"] = round(s["pixel96"]["seconds_per_step"] / s["latent"]["seconds_per_step"], 2)
    if len(seeds) > 1:
        result["summary"] = _summary(s, seeds)
        print(_table(result["summary"]))
    result["picture"] = str(views_picture(out, args.train, args.sources))
    emit(result, args.json)


def _space(
    args: argparse.Namespace,
    out: Path,
    common: dict[str, Any],
    encoder: str,
    model: dict[str, Any],
    name: str,
    seed: int,
    steps: Any,
) -> dict[str, Any]:
    """Train one generator (``steps``: a number, or a function of its seconds per step, measured
    on a separate 20-step run), make its bank, and measure."""
    gen_out = out / f"generator-{name}"
    settings = {
        **common,
        **model,
        "encoder": encoder,
        "out": str(gen_out),
        "train.seed": seed,
        "train.batch_size": args.batch_size,
        "train.epochs": 1000,
        "train.lr": 5e-4,
        "train.warmup_steps": 50,
        "train.ema_decay": 0.995,
        "train.log_every": 10,
        "train.monitor_every": 0,
        "train.progress": False,
        "train.device": args.device,
    }
    if callable(steps):  # seconds per step from a separate 20-step run (steps 11-20), once per space
        calibration = out / f"calibration-{name.split('-s')[0]}"
        if not (calibration / "exported" / "generator.safetensors").exists():
            gensis.train_generator({**settings, "out": str(calibration), "train.max_steps": 20})
        steps = steps(args.batch_size / RunFolder(calibration).read_metrics()[-1]["images_per_s"])
    t_train = time.perf_counter()  # the calibration run is not counted
    if not (gen_out / "exported" / "generator.safetensors").exists():
        gensis.train_generator({**settings, "train.max_steps": steps})
    t_train_done = time.perf_counter()  # 0 s when an earlier run's generator was reused
    rate = _median_rate(gen_out)
    t1 = time.perf_counter()
    bank = gensis.generate(
        generator=str(gen_out),
        data_path=args.train,
        out=str(out / f"bank-{name}"),
        max_images=args.sources,
        views_per_image=2,
        interpolations_per_image=0,
        quality_sources=args.sources,
        seed=seed,
        device=args.device,
        progress=False,
    )
    q = bank.quality or json.loads((out / f"bank-{name}" / "quality.json").read_text())
    return {
        "steps": max(r.get("step", 0) for r in RunFolder(gen_out).read_metrics()),  # as trained, also when reused
        "train_seconds": round(t_train_done - t_train, 1),
        "train_images_per_s": round(rate, 2),
        "seconds_per_step": round(args.batch_size / rate, 3),
        "sample_images_per_s": round(bank.images_per_s, 2) if bank.images_per_s else None,
        "generate_seconds": round(time.perf_counter() - t1, 1),
        **{k: q.get(k) for k in (*FIGURES, "diversity_cosine", "fidelity_cosine")},
        "ceiling": {k: q["ceiling"].get(k) for k in FIGURES},
        "chance_top1": q["chance"]["retrieval_top1"],
    }


def views_picture(out: Path, train: str, sources: int, rows: int = 8) -> Path:
    """``out/views.png``: for ``rows`` tiles, the tile, then two views from the first seed's latent
    bank, then two from its ``pixel96`` bank, to look at beside the figures."""
    import torch
    from safetensors.torch import load_file

    from gensis.data import load_images
    from gensis.generator.show import save_view_grid

    data = load_images(train, 96, max_images=sources, progress=False)
    banks = [load_file(str(out / f"bank-{space}" / "shard-00000.safetensors")) for space in ("latent", "pixel96")]
    views = [lambda i, b=b: list(b["images"][b["source"] == i][:2]) for b in banks]
    tiles = range(0, sources, max(1, sources // rows))[:rows]
    path = out / "views.png"
    save_view_grid(path, [([data.batch(torch.tensor([i]))[0]], views[0](i), views[1](i)) for i in tiles], tile=96)
    return path


def _median_rate(gen_out: Path) -> float:
    records = [r["images_per_s"] for r in RunFolder(gen_out).read_metrics() if "images_per_s" in r]
    return sorted(records)[len(records) // 2]


def _summary(spaces: dict[str, dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Each space's figures over the seeds, and latent - pixel96 per seed with its SE."""
    names = {seed: "" if seed == seeds[0] else f"-s{seed}" for seed in seeds}
    by_seed = {
        space: {s: {k: float(spaces[space + names[s]][k]) for k in (*FIGURES, "steps", "train_seconds")} for s in seeds}
        for space in ("pixel96", "latent")
    }
    table = {
        space: {k: spread([runs[s][k] for s in seeds]) for k in (*FIGURES, "steps", "train_seconds")}
        for space, runs in by_seed.items()
    }
    return {"spaces": table, "latent - pixel96": paired(by_seed["latent"], by_seed["pixel96"], FIGURES)}


def _table(summary: dict[str, Any]) -> str:
    rows = [
        "| figure | pixel96 | latent | latent - pixel96 (per seed) | 95 % t-interval | decided? |",
        "|---|---|---|---|---|---|",
    ]
    for k in FIGURES:
        a, b, d = summary["spaces"]["pixel96"][k], summary["spaces"]["latent"][k], summary["latent - pixel96"][k]
        rows.append(
            f"| {k} | {a['mean']:.2f} +- {a['sd']:.2f} | {b['mean']:.2f} +- {b['sd']:.2f} | "
            f"{', '.join(f'{v:+.2f}' for v in d['values'])} | {d['ci95'][0]:+.2f} to {d['ci95'][1]:+.2f} | "
            f"{'yes' if d['decided'] else 'no'} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
