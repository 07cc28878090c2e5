"""GenView's adaptive view generation in ``gensis generate`` (Li et al. 2024, arXiv 2403.12003,
Sec. 3.2); the ``gensis foreground`` maps it reads are written by :mod:`gensis.foreground.command`.

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

from gensis.config.schema import GenerateConfig
from gensis.data import ImageData
from gensis.errors import CheckpointError
from gensis.foreground.files import PCA_FILE, RATIO_FILE, read_foreground_file, write_foreground_file
from gensis.foreground.fit import fit_foreground, foreground_ratios
from gensis.foreground.pca import ForegroundPCA
from gensis.generator.adaptive_noise import noise_bin, noise_level_for_ratio, perturb_embedding
from gensis.models.backbones import Encoder
from gensis.runtime.run_folder import RunFolder

log = logging.getLogger("gensis.generate")


def foreground_noise_levels(
    encoder: Encoder, data: ImageData, cfg: GenerateConfig, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, ForegroundPCA]:
    """(ratios, noise levels, fitted PCA) of the source images, by GenView's bins."""
    fg = cfg.foreground
    kw: dict[str, Any] = dict(
        device=device,
        batch_size=cfg.batch_size,
        precision=cfg.precision,
        progress=cfg.progress,
        resolution=fg.resolution,
    )
    pca = fit_foreground(
        encoder, data, fit_images=fg.fit_images, quantile=fg.quantile, sign=fg.sign, seed=cfg.seed, **kw
    )
    ratios = foreground_ratios(encoder, data, pca, **kw)
    return ratios, noise_level_for_ratio(ratios, cfg.noise_edges, cfg.noise_levels), pca


def adaptive_settings(cfg: GenerateConfig) -> dict:
    """The bank-index settings of adaptive noise; empty when off, so older banks resume."""
    if not cfg.adaptive_noise:
        return {}
    return {
        "adaptive_noise": True,
        "noise_edges": list(cfg.noise_edges),
        "noise_levels": list(cfg.noise_levels),
        "foreground_quantile": cfg.foreground.quantile,
        "foreground_sign": cfg.foreground.sign,
        "foreground_fit_images": cfg.foreground.fit_images,
        **({"foreground_resolution": cfg.foreground.resolution} if cfg.foreground.resolution else {}),
    }


def bank_noise_levels(
    root: Path, encoder: Encoder, data: ImageData, cfg: GenerateConfig, device: torch.device
) -> torch.Tensor:
    """Per-source noise levels (N,) of a bank: read from ``foreground.safetensors`` when a
    previous run of this bank wrote it (a resumed run uses the very same levels), else
    computed and saved with the PCA (``foreground_pca.safetensors``)."""
    path = root / RATIO_FILE
    settings = json.dumps(adaptive_settings(cfg), sort_keys=True)
    if path.is_file():
        tensors, meta = read_foreground_file(path)
        if meta.get("settings") != settings or len(tensors.get("level", ())) != len(data):
            raise CheckpointError(f"{path}: foreground levels of other settings or images; remove it to recompute")
        return tensors["level"].float()
    ratios, levels, pca = foreground_noise_levels(encoder, data, cfg, device)
    pca.save(root / PCA_FILE)
    from gensis.foreground.picture import log_foreground  # inside `gensis run`: "bank/foreground"

    log_foreground(RunFolder(root), encoder, data, pca, device=device, resolution=cfg.foreground.resolution)
    write_foreground_file(path, {"ratio": ratios, "level": levels}, {"settings": settings})
    counts = torch.bincount(noise_bin(ratios, cfg.noise_edges), minlength=len(cfg.noise_edges)).tolist()
    log.info("adaptive noise: sources per level %s", dict(zip(cfg.noise_levels, counts, strict=True)))
    return levels


def _noise_generator(seed: int, shard: int) -> torch.Generator:
    """A CPU generator for the perturbation of one shard, independent of its sampling stream."""
    digest = hashlib.sha256(f"gensis.adaptive-noise/{seed}/{shard}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def perturb_views(
    cond: torch.Tensor, src: torch.Tensor, is_view: torch.Tensor, levels: torch.Tensor, seed: int, shard: int
) -> torch.Tensor:
    """``cond`` with the rows of self-augmented views perturbed by their source's level."""
    if not bool(is_view.any()):
        return cond
    out = cond.clone()
    g = _noise_generator(seed, shard)
    noisy = perturb_embedding(cond[is_view].cpu(), levels[src[is_view]].float(), generator=g)
    out[is_view] = noisy.to(out.device, out.dtype)
    return out
