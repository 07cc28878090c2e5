"""Foreground maps as one picture for the experiment loggers (no matplotlib: an array).

Three rows: sample images, their soft maps (gray), the images with the background dimmed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gensis.data import ImageData
from gensis.data.loader import subset_indices
from gensis.foreground.fit import feature_batches
from gensis.foreground.pca import ForegroundPCA
from gensis.models.backbones import Encoder


def foreground_picture(images: torch.Tensor, maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, H, W), maps in [0, 1] and masks (B, 1, h, w) -> uint8 (3, 3H, B*W)."""
    size = images.shape[-2:]
    soft = (F.interpolate(maps.float(), size=size, mode="nearest") * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)
    mask = F.interpolate(masks.float(), size=size, mode="nearest")
    dimmed = (images.float() * (0.25 + 0.75 * mask)).round().to(torch.uint8)
    rows = [torch.cat(list(x), dim=-1) for x in (images, soft, dimmed)]  # each (3, H, B*W)
    return torch.cat(rows, dim=-2)


@torch.no_grad()
def log_foreground(
    run,
    encoder: Encoder,
    data: ImageData,
    pca: ForegroundPCA,
    *,
    device: torch.device,
    resolution: int | None = None,
    n: int = 8,
) -> None:
    """Send ``n`` images' foreground maps to ``run``'s loggers (a RunFolder); nothing to compute without any."""
    if not run.has_loggers():
        return
    picked = subset_indices(len(data), min(n, len(data)))
    feats = torch.cat(list(feature_batches(encoder, data, picked, device=device, resolution=resolution)))
    run.log_image("foreground", foreground_picture(data.batch(torch.tensor(picked)), pca.maps(feats), pca.masks(feats)))
