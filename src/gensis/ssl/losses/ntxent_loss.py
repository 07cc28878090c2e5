"""NT-Xent loss of SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of
Visual Representations", arXiv 2002.05709, Eq. 1; lightly ``NTXentLoss`` without memory bank).

Each of the 2B projections is an anchor; its positive is the other view of the same image
and its negatives are the other 2B - 2 projections (2WB - 2 with ``gather_distributed`` over
W processes). Cosine similarities are divided by ``temperature``.

Per-sample output: ``reduction="none"`` returns one value per positive PAIR, shape (B,), the
mean of the two directions (anchor in view 0, anchor in view 1). The mean of that vector is
exactly the usual mean over 2B anchors, and a per-pair weight (GenView's quality weights)
can multiply it directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gensis.ssl.losses.gather import gather_with_grad, rank_and_world

_REDUCTIONS = ("mean", "none")


class NTXentLoss(nn.Module):
    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, z0: torch.Tensor, z1: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """NT-Xent between two views z0, z1 (B, D); row i of both is the same image.

        Returns a scalar (``"mean"``) or the per-pair losses (B,) (``"none"``).
        """
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if z0.shape != z1.shape or z0.dim() != 2:
            raise ValueError(f"z0 and z1 must both be (B, D), got {tuple(z0.shape)}, {tuple(z1.shape)}")
        # float32 even under autocast: logits / 0.1 overflow the half-precision softmax.
        z0 = F.normalize(z0.float(), dim=1)
        z1 = F.normalize(z1.float(), dim=1)
        offset = 0
        z0_all, z1_all = z0, z1
        if self.gather_distributed:
            rank, world = rank_and_world()
            if world > 1:
                z0_all, z1_all = gather_with_grad(z0), gather_with_grad(z1)
                offset = rank * z0.shape[0]
        loss0 = self._anchor_losses(z0, z1_all, z0_all, offset)
        loss1 = self._anchor_losses(z1, z0_all, z1_all, offset)
        per_pair = 0.5 * (loss0 + loss1)
        return per_pair.mean() if reduction == "mean" else per_pair

    def _anchor_losses(
        self, anchors: torch.Tensor, other_view: torch.Tensor, same_view: torch.Tensor, offset: int
    ) -> torch.Tensor:
        """Cross-entropy per anchor; the positive is column ``offset + i`` of ``other_view``.

        The anchor's own column in ``same_view`` is masked out (similarity 1 to itself would
        otherwise dominate the softmax), which equals removing it as lightly does.
        """
        b = anchors.shape[0]
        idx = torch.arange(b, device=anchors.device) + offset
        logits_other = anchors @ other_view.T / self.temperature
        logits_same = anchors @ same_view.T / self.temperature
        self_mask = torch.zeros_like(logits_same, dtype=torch.bool)
        self_mask[torch.arange(b, device=anchors.device), idx] = True
        logits_same = logits_same.masked_fill(self_mask, float("-inf"))
        logits = torch.cat([logits_other, logits_same], dim=1)
        return F.cross_entropy(logits, idx, reduction="none")
