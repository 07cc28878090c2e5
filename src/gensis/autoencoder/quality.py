"""How well the autoencoder keeps what the encoder sees, measured the project's way.

* PSNR of the reconstruction against its source (pixels in [0, 255]);
* cosine between the stage-1 embeddings of the reconstruction and of its source;
* source retrieval: the rank of the source among the embeddings of *all* real images, found
  from the reconstruction's embedding (top-1, median rank), beside the real-view ceiling
  (stage 1's own views of the same images, :mod:`gensis.eval.faithfulness`) and chance.

A latent generator cannot make a view more faithful than its decoder: these figures bound
what stage 2 can reach in this latent space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gensis.data import ImageData
from gensis.eval.faithfulness import as_data, ceiling_and_chance, retrieval
from gensis.eval.features import encoder_embeddings


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """uint8 reconstructions (posterior mean, decoded) of uint8 images (N, 3, R, R)."""
    device = next(vae.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device).float() / 127.5 - 1
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample
        out.append(((rec.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu())
    return torch.cat(out)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of uint8 images."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


@torch.no_grad()
def reconstruction_quality(
    vae,
    images: torch.Tensor,
    sources: torch.Tensor,
    *,
    encoder=None,
    data: ImageData | None = None,
    real_embeddings: torch.Tensor | None = None,
    device="cpu",
) -> tuple[dict[str, Any], torch.Tensor]:
    """Figures of the reconstructions of ``images`` (the items ``sources`` of ``data``), and the
    reconstructions. Without an encoder only PSNR is measured."""
    rec = reconstruct(vae, images)
    p = psnr(rec, images)
    result: dict[str, Any] = {
        "images": len(images),
        "psnr_db": round(float(p.mean()), 2),
        "psnr_db_min": round(float(p.min()), 2),
    }
    if encoder is None or data is None:
        return result, rec
    real_emb = real_embeddings if real_embeddings is not None else encoder_embeddings(encoder, data, device=device)
    real_emb = real_emb.cpu()
    rec_emb = encoder_embeddings(encoder, as_data(rec), device=device).cpu()
    result["cosine_to_source"] = round(float((rec_emb * real_emb[sources]).sum(-1).mean()), 4)
    result.update(retrieval(rec_emb, sources, real_emb))
    rest = ceiling_and_chance(encoder, data, sources, real_emb, views=2, device=device)
    result["ceiling"] = {k: v for k, v in rest["ceiling"].items() if k.startswith("retrieval") or k == "augment"}
    result["chance"] = {k: v for k, v in rest["chance"].items() if k.startswith("retrieval") or k == "images"}
    return result, rec


FIGURES = (
    ("psnr_db", "PSNR (dB)"),
    ("cosine_to_source", "cosine to the source (stage-1 space)"),
    ("retrieval_top1", "source retrieval top-1 (%)"),
    ("retrieval_top5", "source retrieval top-5 (%)"),
    ("retrieval_median_rank", "median rank of the source"),
)


def reconstruction_table(quality: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Rows: figure | reconstructions | real stage-1 views (ceiling) | chance."""
    ceiling, chance = quality.get("ceiling", {}), quality.get("chance", {})
    rows = [
        [label, str(quality[key]), str(ceiling.get(key, "-")), str(chance.get(key, "-"))]
        for key, label in FIGURES
        if key in quality
    ]
    return ["figure", "reconstructions", "real stage-1 views (ceiling)", "chance"], rows


def save_pairs_grid(
    path: Path, originals: torch.Tensor, reconstructions: torch.Tensor, columns: int = 8, tile_px: int | None = None
) -> Path:
    """A PNG with rows of originals, each followed by a row of their reconstructions."""
    from PIL import Image

    from gensis.runtime.io import atomic_write

    n = min(len(originals), 2 * columns)
    r = originals.shape[-1]
    gap = 4
    rows = (n + columns - 1) // columns
    canvas = np.full((rows * (2 * r + gap) + gap, columns * (r + gap) + gap, 3), 255, np.uint8)
    for i in range(n):
        row, col = divmod(i, columns)
        y, x = gap + row * (2 * r + gap), gap + col * (r + gap)
        canvas[y : y + r, x : x + r] = originals[i].permute(1, 2, 0).numpy()
        canvas[y + r : y + 2 * r, x : x + r] = reconstructions[i].permute(1, 2, 0).numpy()
    image = Image.fromarray(canvas)
    if tile_px is not None and tile_px != r:
        image = image.resize((round(image.width * tile_px / r), round(image.height * tile_px / r)))
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path
