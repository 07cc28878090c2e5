"""Frozen-encoder features for kNN, linear probe, retrieval and ``gensis embed``."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from gensis.augment import eval_transform
from gensis.data import ImageData
from gensis.models.backbones import Encoder
from gensis.runtime.device import autocast


@torch.no_grad()
def extract_features(
    encoder: Encoder,
    data: ImageData,
    *,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    progress: bool = False,
    desc: str = "features",
) -> torch.Tensor:
    """Pooled embeddings (N, D) in float32 on the CPU, in the order of ``data``."""
    device = torch.device(device)
    was_training = encoder.training
    encoder.eval()
    out = []
    n = len(data)
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
        idx = torch.arange(start, min(start + batch_size, n))
        images = data.batch(idx).to(device, non_blocking=True)
        x = eval_transform(images, mean, std)
        with autocast(device, precision):
            feats = encoder(x)
        out.append(feats.float().cpu())
    encoder.train(was_training)
    if not out:
        return torch.zeros(0, encoder.embed_dim)
    return torch.cat(out)


def encoder_embeddings(
    encoder: Encoder,
    data: ImageData,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    normalize: bool = True,
    progress: bool = False,
    desc: str = "embeddings",
) -> torch.Tensor:
    """Embeddings of clean images with an exported encoder's own normalization (N, D)."""
    mean, std = encoder.info.normalization()
    feats = extract_features(
        encoder, data, mean=mean, std=std, batch_size=batch_size, device=device, progress=progress, desc=desc
    )
    return torch.nn.functional.normalize(feats, dim=-1).contiguous() if normalize else feats
