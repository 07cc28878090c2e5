"""GenView quality-driven contrastive weights (Li et al. 2024, "GenView: Enhancing View Quality
with Pretrained Generative Model for Self-Supervised Learning", arXiv 2403.12003, Sec. 3.3;
xiaojieli0903/genview ``MoCoV3.calculate_weight``).

A positive pair is good when the two views share their foreground and differ in their
background; a pair whose views match only by background (a crop that missed the object, a
generated view that lost it) teaches the wrong invariance. With the features of a frozen
quality encoder pooled over the foreground and over the background of each view,

    q_i = cos(f1_i, f2_i) - cos(b1_i, b2_i),    w = B * softmax(gamma * q)   (over the batch),

so the weights average to 1 (the loss keeps its scale) and are detached (they rank pairs,
they are not trained). Under data parallelism the softmax runs over the local batch, as in
the reference code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area averaging when shrinking (a soft mask's mean over each cell), bilinear otherwise."""
    if tuple(mask.shape[-2:]) == size:
        return mask
    shrink = mask.shape[-2] >= size[0] and mask.shape[-1] >= size[1]
    if shrink:
        return F.interpolate(mask, size=size, mode="area")
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=False)


def masked_pool(feature_map: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mask-weighted mean of ``feature_map`` (B, C, H, W) under ``mask`` (B, 1, h, w) in [0, 1].

    The mask is resized to (H, W). ``eps`` keeps an empty mask finite (the result is then
    ~0, whose cosine similarity with anything is 0).
    """
    if feature_map.dim() != 4 or mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(
            f"expected feature_map (B, C, H, W) and mask (B, 1, h, w), got "
            f"{tuple(feature_map.shape)} and {tuple(mask.shape)}"
        )
    m = _resize_mask(mask.to(feature_map.dtype), (feature_map.shape[-2], feature_map.shape[-1])).clamp(0, 1)
    total = (feature_map * m).sum(dim=(2, 3))
    return total / (m.sum(dim=(2, 3)) + eps)


def foreground_background_pool(
    feature_map: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """(foreground, background) pooled features: ``mask`` and its complement ``1 - mask``."""
    return masked_pool(feature_map, mask, eps), masked_pool(feature_map, 1.0 - mask, eps)


def quality_scores(fg1: torch.Tensor, fg2: torch.Tensor, bg1: torch.Tensor, bg2: torch.Tensor) -> torch.Tensor:
    """q = cos(fg1, fg2) - cos(bg1, bg2) per pair, in [-2, 2]."""
    cos_fg = F.cosine_similarity(fg1.float(), fg2.float(), dim=-1, eps=1e-8)
    cos_bg = F.cosine_similarity(bg1.float(), bg2.float(), dim=-1, eps=1e-8)
    return cos_fg - cos_bg


@torch.no_grad()
def quality_weights(
    fg1: torch.Tensor, fg2: torch.Tensor, bg1: torch.Tensor, bg2: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    """Per-pair weights ``B * softmax(gamma * q)`` (B,), mean 1, without gradient.

    ``gamma = 0`` gives all ones (plain contrastive loss); larger gamma trusts the quality
    score more.
    """
    q = quality_scores(fg1, fg2, bg1, bg2)
    return (q.shape[0] * torch.softmax(gamma * q, dim=0)).detach()


def weighted_mean(per_sample_loss: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean(w * loss); with weights of mean 1 this keeps the loss scale; None = plain mean."""
    if weights is None:
        return per_sample_loss.mean()
    if weights.shape != per_sample_loss.shape:
        raise ValueError(
            f"weights {tuple(weights.shape)} must match the per-sample loss {tuple(per_sample_loss.shape)}"
        )
    return (per_sample_loss * weights.detach().to(per_sample_loss.dtype)).mean()
