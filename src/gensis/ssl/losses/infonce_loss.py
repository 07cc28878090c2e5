"""InfoNCE loss of MoCo v3 (Chen, Xie, He 2021, "An Empirical Study of Training
Self-Supervised Vision Transformers", arXiv 2104.02057, Alg. 1 ``ctr``; facebookresearch/moco-v3
``MoCo.contrastive_loss``).

``ctr(q, k)``: queries q (B, D) from the online encoder + predictor, keys k (B, D) from the
momentum encoder, both L2-normalized; logits ``q @ k_all.T / tau`` against the keys of all
ranks, label of local row i = ``rank * B + i``; cross-entropy times ``2 * tau`` (the
reference scales by 2 tau so that the gradient magnitude does not depend on tau). The keys
need no gradient (the momentum encoder is not trained by backprop), so they are gathered
without one. The symmetric loss ``ctr(q1, k2) + ctr(q2, k1)`` is the method's job.

Default ``temperature=1.0`` is the reference code's ResNet setting; its ViT recipes use 0.2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gensis.ssl.losses.gather import gather_no_grad, rank_and_world

_REDUCTIONS = ("mean", "none")


class InfoNCELoss(nn.Module):
    def __init__(self, temperature: float = 1.0, gather_distributed: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, q: torch.Tensor, k: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """``ctr(q, k)``: a scalar (``"mean"``) or one loss per query (B,) (``"none"``)."""
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if q.shape != k.shape or q.dim() != 2:
            raise ValueError(f"q and k must both be (B, D), got {tuple(q.shape)}, {tuple(k.shape)}")
        q = F.normalize(q.float(), dim=1)
        k = F.normalize(k.detach().float(), dim=1)
        offset = 0
        if self.gather_distributed:
            rank, world = rank_and_world()
            if world > 1:
                k = gather_no_grad(k)
                offset = rank * q.shape[0]
        logits = q @ k.T / self.temperature
        labels = torch.arange(q.shape[0], device=q.device) + offset
        loss = F.cross_entropy(logits, labels, reduction="none") * (2.0 * self.temperature)
        return loss.mean() if reduction == "mean" else loss
