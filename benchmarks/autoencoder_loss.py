"""The autoencoder's loss, chosen by measurement: variants trained with the same budget on the
same tiles, each measured the project's way (PSNR; cosine and source retrieval of the
reconstructions in a stage-1 encoder's space, beside real stage-1 views) on the same held-out tiles.

A variant whose folder exists under ``--out`` is measured, not retrained (e.g. the
``autoencoder`` stage of a ``gensis run`` with the same settings, copied to ``<out>/l1``).

    python benchmarks/autoencoder_loss.py --encoder runs/lung_s1 --data ../shared/data/lc25000-lung/train.zip \\
        --variants l1,l1+perceptual0.1 --epochs 8 --out runs/ae_loss

Seeds and equal time: ``--variants l1+seed1,l1+perceptual0.1+seed1,l1+epochs9`` (a variant's
``epochs`` overrides ``--epochs``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import emit, header

import gensis
from gensis.autoencoder.latent import load_vae
from gensis.autoencoder.quality import reconstruction_quality
from gensis.data import load_images
from gensis.data.loader import subset_indices
from gensis.eval.features import encoder_embeddings
from gensis.runtime.checkpoint import load_encoder
from gensis.runtime.device import resolve_device
from gensis.runtime.run_folder import RunFolder


def variant_settings(name: str) -> dict:
    """``l1``, ``l2``, ``l1+perceptual<w>``, ``l1+kl<w>``, each optionally ``+seed<k>`` and
    ``+epochs<n>`` (e.g. ``l1+epochs9+seed1``): the settings of one variant."""
    pixel, *extra = name.split("+")
    out: dict = {"train.pixel_loss": pixel}
    for term in extra:
        for key, field, kind in (
            ("perceptual", "train.perceptual_weight", float),
            ("kl", "train.kl_weight", float),
            ("seed", "train.seed", int),
            ("epochs", "train.epochs", int),
        ):
            if term.startswith(key):
                out[field] = kind(term[len(key) :])
                break
        else:
            raise SystemExit(f"--variants: unknown term {term!r} in {name!r}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", required=True, help="stage-1 run: the perceptual space and the measurement")
    p.add_argument("--data", required=True)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--variants", default="l1,l1+perceptual0.1")
    p.add_argument("--widths", default="16,32,64,64")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--eval-images", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/autoencoder_loss")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    device = resolve_device(args.device)
    result = header("autoencoder_loss", device)
    result.update(encoder=args.encoder, data=args.data, epochs=args.epochs, variants={})
    data = load_images(args.data, args.resolution, progress=False)
    encoder = load_encoder(args.encoder, device)
    real_emb = encoder_embeddings(encoder, data, device=device)
    for name in args.variants.split(","):
        out = Path(args.out) / name
        t0 = time.perf_counter()
        if not (out / "exported" / "autoencoder" / "gensis.json").exists():
            gensis.train_autoencoder(
                {
                    "data.path": args.data,
                    "data.resolution": args.resolution,
                    "encoder": args.encoder,
                    "out": str(out),
                    "model.block_out_channels": [int(w) for w in args.widths.split(",")],
                    "train.epochs": args.epochs,
                    "train.batch_size": args.batch_size,
                    "train.crop_size": args.crop,
                    "train.eval_every": 150,
                    "train.eval_images": args.eval_images,
                    "train.progress": False,
                    "train.device": args.device,
                    **variant_settings(name),
                }
            )
        # The same held-out tiles for every variant (train-autoencoder's spread choice).
        held = subset_indices(len(data), min(args.eval_images, len(data) // 10))
        import torch

        held_t = torch.tensor(held)
        quality, _ = reconstruction_quality(
            load_vae(str(out), device),
            data.batch(held_t),
            held_t,
            encoder=encoder,
            data=data,
            real_embeddings=real_emb,
            device=device,
        )
        curve = [(r["step"], r["psnr_db"]) for r in RunFolder(out).read_metrics() if "psnr_db" in r]
        train_s = [r["time"] for r in RunFolder(out).read_metrics() if "time" in r]
        result["variants"][name] = {
            **quality,
            "psnr_curve": curve,
            "train_seconds": round(train_s[-1] - train_s[0], 1) if train_s else None,
            "settings": variant_settings(name),
            "seconds_here": round(time.perf_counter() - t0, 1),
        }
        print(name, json.dumps({k: quality[k] for k in quality if k not in ("ceiling", "chance")}), flush=True)
    emit(result, args.json)


if __name__ == "__main__":
    main()
