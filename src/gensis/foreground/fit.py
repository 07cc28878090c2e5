"""Fitting the foreground direction on a data set and reading foreground shares from it
(GenView, arXiv 2403.12003, Sec. 3.2, with the user's own encoder in place of CLIP).

Shared by adaptive view generation (``gensis generate adaptive_noise=true``), the
``gensis foreground`` maps and the quality-weighted loss (``quality.*`` in pretraining).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gensis.augment import eval_transform
from gensis.data import ImageData
from gensis.foreground.pca import ForegroundPCA, spatial_features
from gensis.models.backbones import Encoder
from gensis.runtime.device import autocast

SIGNS = {"auto": None, "positive": 1, "negative": -1}  # relative to ForegroundPCA's canonical axis


def resize_for_encoder(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Images resized for the foreground encoder. A stride-32 CNN maps a 32-px image to one
    cell, which has no foreground or background; GenView likewise resizes to CLIP's 224 px."""
    if resolution is None or x.shape[-1] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def feature_batches(
    encoder: Encoder,
    data: ImageData,
    indices: list[int],
    *,
    device: torch.device,
    batch_size: int = 256,
    precision: str = "auto",
    progress: bool = False,
    resolution: int | None = None,
    desc: str = "foreground",
) -> Iterator[torch.Tensor]:
    """Spatial feature maps (B, C, h, w), float32 on the CPU, of ``data[indices]`` in batches,
    normalized with the encoder's own mean/std (as :func:`gensis.eval.features.extract_features`)."""
    mean, std = encoder.info.normalization()
    for start in tqdm(range(0, len(indices), batch_size), desc=desc, disable=not progress, leave=False):
        images = data.batch(torch.tensor(indices[start : start + batch_size])).to(device)
        with autocast(device, precision):
            feats = spatial_features(encoder, resize_for_encoder(eval_transform(images, mean, std), resolution))
        yield feats.float().cpu()


def fit_foreground(
    encoder: Encoder,
    data: ImageData,
    *,
    fit_images: int,
    quantile: float,
    sign: str,
    seed: int,
    device: torch.device,
    batch_size: int = 256,
    precision: str = "auto",
    progress: bool = False,
    resolution: int | None = None,
) -> ForegroundPCA:
    """ForegroundPCA fitted on ``fit_images`` images drawn with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    pick = sorted(torch.randperm(len(data), generator=g)[:fit_images].tolist())
    feats = torch.cat(
        list(
            feature_batches(
                encoder,
                data,
                pick,
                device=device,
                batch_size=batch_size,
                precision=precision,
                progress=progress,
                resolution=resolution,
                desc="foreground fit",
            )
        )
    )
    return ForegroundPCA(quantile=quantile, sign=SIGNS[sign], seed=seed).fit(feats)


def foreground_ratios(
    encoder: Encoder,
    data: ImageData,
    pca: ForegroundPCA,
    *,
    device: torch.device,
    batch_size: int = 256,
    precision: str = "auto",
    progress: bool = False,
    resolution: int | None = None,
) -> torch.Tensor:
    """Foreground share (N,) in [0, 1] of every image, with the PCA's data-set threshold."""
    batches = feature_batches(
        encoder,
        data,
        list(range(len(data))),
        device=device,
        batch_size=batch_size,
        precision=precision,
        progress=progress,
        resolution=resolution,
        desc="foreground ratios",
    )
    out = [pca.foreground_ratio(f) for f in batches]
    return torch.cat(out) if out else torch.zeros(0)
