"""``gensis foreground``: GenView's PCA foreground of an encoder, written for a person to check
(arXiv 2403.12003, Sec. 3.2) before ``generate adaptive_noise=true`` uses it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gensis.config.schema import ForegroundConfig
from gensis.data import load_images
from gensis.data.loader import subset_indices
from gensis.foreground.files import PCA_FILE, RATIO_FILE, write_foreground_file
from gensis.foreground.fit import feature_batches, fit_foreground, foreground_ratios
from gensis.runtime import lock
from gensis.runtime.device import resolve_device
from gensis.runtime.io import atomic_write
from gensis.runtime.run_folder import RunFolder

log = logging.getLogger("gensis.foreground")


def run_foreground(cfg: ForegroundConfig) -> list[Path]:
    """``gensis foreground``: fit the PCA, write it, every image's foreground ratio (with its
    id) and ``foreground.png``: sample images, their soft maps and their foreground."""
    from gensis.runtime.checkpoint import load_encoder

    device = resolve_device(cfg.device)
    encoder = load_encoder(cfg.encoder, device)
    data = load_images(
        cfg.data_path,
        encoder.info.resolution,
        cache_dir=cfg.cache_dir,
        max_images=cfg.max_images,
        progress=cfg.progress,
        max_image_bytes=cfg.max_image_bytes,
    )
    kw: dict[str, Any] = dict(
        device=device, batch_size=cfg.batch_size, progress=cfg.progress, resolution=cfg.resolution
    )
    pca = fit_foreground(
        encoder, data, fit_images=cfg.fit_images, quantile=cfg.quantile, sign=cfg.sign, seed=cfg.seed, **kw
    )
    ratios = foreground_ratios(encoder, data, pca, **kw)
    out = Path(cfg.out)
    lock.hold(out)  # one writer per folder (runtime/lock.py); also marks it as gensis's
    pca.save(out / PCA_FILE)
    write_foreground_file(
        out / RATIO_FILE,
        {"ratio": ratios},
        {"ids": json.dumps(data.ids), "source": data.source, "encoder": str(cfg.encoder)},
    )
    picked = subset_indices(len(data), min(cfg.rows, len(data)))
    feats = torch.cat(list(feature_batches(encoder, data, picked, **kw)))
    _draw(out / "foreground.png", data.batch(torch.tensor(picked)), pca.maps(feats), pca.masks(feats), ratios[picked])
    RunFolder(out).log_image("foreground", out / "foreground.png")  # to the loggers of an enclosing `gensis run`
    log.info(
        "foreground: mean ratio %.3f over %d images (threshold %.4g, sign %+d)",
        float(ratios.mean()),
        len(ratios),
        pca.threshold,
        pca.sign,
    )
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
