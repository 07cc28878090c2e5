"""GenView's adaptive view generation in ``gensis generate`` and the ``gensis foreground`` maps
(Li et al. 2024, arXiv 2403.12003, Sec. 3.2).

GenView noises the condition of each generated view by an amount chosen from the source
image's foreground share: little noise when the object is small (a strong perturbation would
easily lose it and make a false positive pair), more when the object fills the image (more
diverse views at no such risk). Here the share comes from a PCA of the generator's own
encoder's spatial features (:mod:`gensis.foreground.pca`), fitted on a seeded sample of the
source images with ONE data-set threshold, and the noise is
:func:`gensis.generator.adaptive_noise.perturb_embedding` on the conditioning embedding.

Only the self-augmented views are perturbed: GenView has no interpolations, and a SLERP of
two embeddings is already a controlled departure from the source; noising it too would
blur what ``alpha`` means. The perturbation noise comes from its own generator seeded by
(seed, shard), not from the shard's sampling generator: a shard stays deterministic, and the
sampling noise is the same as without adaptive noise, so a view whose level is 0 is exactly
the non-adaptive bank's view and any other differs only by its condition.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gensis.config.schema import ForegroundConfig, GenerateConfig
from gensis.data import ImageData, load_images
from gensis.data.loader import subset_indices
from gensis.errors import CheckpointError
from gensis.foreground.fit import feature_batches, fit_foreground, foreground_ratios
from gensis.foreground.pca import ForegroundPCA
from gensis.generator.adaptive_noise import noise_bin, noise_level_for_ratio, perturb_embedding
from gensis.models.backbones import Encoder
from gensis.runtime import lock
from gensis.runtime.device import resolve_device
from gensis.runtime.io import atomic_write, read_safetensors, save_safetensors
from gensis.runtime.run_folder import RunFolder

log = logging.getLogger("gensis.generate")

FOREGROUND_FORMAT = "gensis.foreground/1"
PCA_FILE = "foreground_pca.safetensors"
RATIO_FILE = "foreground.safetensors"


def foreground_noise_levels(encoder: Encoder, data: ImageData, cfg: GenerateConfig,
                            device: torch.device) -> tuple[torch.Tensor, torch.Tensor, ForegroundPCA]:
    """(ratios, noise levels, fitted PCA) of the source images, by GenView's bins."""
    fg = cfg.foreground
    kw: dict[str, Any] = dict(device=device, batch_size=cfg.batch_size, precision=cfg.precision, progress=cfg.progress,
                              resolution=fg.resolution)
    pca = fit_foreground(encoder, data, fit_images=fg.fit_images, quantile=fg.quantile, sign=fg.sign, seed=cfg.seed,
                         **kw)
    ratios = foreground_ratios(encoder, data, pca, **kw)
    return ratios, noise_level_for_ratio(ratios, cfg.noise_edges, cfg.noise_levels), pca


def adaptive_settings(cfg: GenerateConfig) -> dict:
    """The bank-index settings of adaptive noise; empty when off, so older banks resume."""
    if not cfg.adaptive_noise:
        return {}
    return {"adaptive_noise": True, "noise_edges": list(cfg.noise_edges), "noise_levels": list(cfg.noise_levels),
            "foreground_quantile": cfg.foreground.quantile, "foreground_sign": cfg.foreground.sign,
            "foreground_fit_images": cfg.foreground.fit_images,
            **({"foreground_resolution": cfg.foreground.resolution} if cfg.foreground.resolution else {})}


def bank_noise_levels(root: Path, encoder: Encoder, data: ImageData, cfg: GenerateConfig,
                      device: torch.device) -> torch.Tensor:
    """Per-source noise levels (N,) of a bank: read from ``foreground.safetensors`` when a
    previous run of this bank wrote it (a resumed run uses the very same levels), else
    computed and saved with the PCA (``foreground_pca.safetensors``)."""
    path = root / RATIO_FILE
    settings = json.dumps(adaptive_settings(cfg), sort_keys=True)
    if path.is_file():
        tensors, meta = _read(path)
        if meta.get("settings") != settings or len(tensors.get("level", ())) != len(data):
            raise CheckpointError(f"{path}: foreground levels of other settings or images; remove it to recompute")
        return tensors["level"].float()
    ratios, levels, pca = foreground_noise_levels(encoder, data, cfg, device)
    pca.save(root / PCA_FILE)
    from gensis.foreground.picture import log_foreground  # inside `gensis run`: "bank/foreground"

    log_foreground(RunFolder(root), encoder, data, pca, device=device, resolution=cfg.foreground.resolution)
    _write(path, {"ratio": ratios, "level": levels}, {"settings": settings})
    counts = torch.bincount(noise_bin(ratios, cfg.noise_edges), minlength=len(cfg.noise_edges)).tolist()
    log.info("adaptive noise: sources per level %s", dict(zip(cfg.noise_levels, counts, strict=True)))
    return levels


def _noise_generator(seed: int, shard: int) -> torch.Generator:
    """A CPU generator for the perturbation of one shard, independent of its sampling stream."""
    digest = hashlib.sha256(f"gensis.adaptive-noise/{seed}/{shard}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def perturb_views(cond: torch.Tensor, src: torch.Tensor, is_view: torch.Tensor, levels: torch.Tensor,
                  seed: int, shard: int) -> torch.Tensor:
    """``cond`` with the rows of self-augmented views perturbed by their source's level."""
    if not bool(is_view.any()):
        return cond
    out = cond.clone()
    g = _noise_generator(seed, shard)
    noisy = perturb_embedding(cond[is_view].cpu(), levels[src[is_view]].float(), generator=g)
    out[is_view] = noisy.to(out.device, out.dtype)
    return out


def _write(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    clean = {k: v.detach().float().contiguous().cpu() for k, v in tensors.items()}
    save_safetensors(path, clean, {"format": FOREGROUND_FORMAT, **meta})


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return read_safetensors(path, FOREGROUND_FORMAT, "gensis foreground file")


def run_foreground(cfg: ForegroundConfig) -> list[Path]:
    """``gensis foreground``: fit the PCA, write it, every image's foreground ratio (with its
    id) and ``foreground.png``: sample images, their soft maps and their foreground."""
    from gensis.runtime.checkpoint import load_encoder

    device = resolve_device(cfg.device)
    encoder = load_encoder(cfg.encoder, device)
    data = load_images(cfg.data_path, encoder.info.resolution,
                       cache_dir=cfg.cache_dir, max_images=cfg.max_images, progress=cfg.progress,
                       max_image_bytes=cfg.max_image_bytes)
    kw: dict[str, Any] = dict(device=device, batch_size=cfg.batch_size, progress=cfg.progress,
                              resolution=cfg.resolution)
    pca = fit_foreground(encoder, data, fit_images=cfg.fit_images, quantile=cfg.quantile, sign=cfg.sign,
                         seed=cfg.seed, **kw)
    ratios = foreground_ratios(encoder, data, pca, **kw)
    out = Path(cfg.out)
    lock.hold(out)  # one writer per folder (runtime/lock.py); also marks it as gensis's
    pca.save(out / PCA_FILE)
    _write(out / RATIO_FILE, {"ratio": ratios},
           {"ids": json.dumps(data.ids), "source": data.source, "encoder": str(cfg.encoder)})
    picked = subset_indices(len(data), min(cfg.rows, len(data)))
    feats = torch.cat(list(feature_batches(encoder, data, picked, **kw)))
    _draw(out / "foreground.png", data.batch(torch.tensor(picked)), pca.maps(feats), pca.masks(feats), ratios[picked])
    RunFolder(out).log_image("foreground", out / "foreground.png")  # to the loggers of an enclosing `gensis run`
    log.info("foreground: mean ratio %.3f over %d images (threshold %.4g, sign %+d)",
             float(ratios.mean()), len(ratios), pca.threshold, pca.sign)
    return [out / PCA_FILE, out / RATIO_FILE, out / "foreground.png"]


def _draw(path: Path, images: torch.Tensor, maps: torch.Tensor, masks: torch.Tensor, ratios: torch.Tensor) -> None:
    """Three rows per image column: the image, its soft map, the image with the background dimmed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, size = len(images), images.shape[-2:]
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n, 4.2), squeeze=False)
    mask = F.interpolate(masks.float(), size=size, mode="nearest")
    dimmed = (images.float() * (0.25 + 0.75 * mask)).round().to(torch.uint8)
    for k in range(n):
        axes[0, k].imshow(images[k].permute(1, 2, 0).numpy())
        axes[0, k].set_title(f"{float(ratios[k]):.2f}", fontsize=8)
        axes[1, k].imshow(maps[k, 0].numpy(), cmap="viridis", vmin=0, vmax=1)
        axes[2, k].imshow(dimmed[k].permute(1, 2, 0).numpy())
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for r, label in enumerate(("image (ratio)", "map", "foreground")):
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
