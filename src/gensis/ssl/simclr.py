"""SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", arXiv 2002.05709), with optional GenView per-pair weights.

Backbone + projection head on two views; NT-Xent between the projections. When
``weights`` (B,) are given, e.g. GenView's quality weights (arXiv 2403.12003), the per-pair
losses are averaged with them. Each view runs through the network on its own, as in lightly
and MoCo v3, so BatchNorm statistics are per view.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gensis.models.backbones import Encoder
from gensis.ssl.losses import NTXentLoss, weighted_mean
from gensis.ssl.projection import simclr_projection_head


def check_two_views(views: Sequence[torch.Tensor]) -> None:
    """Contrastive methods here take exactly two views (no multi-crop)."""
    if len(views) != 2:
        raise ValueError(f"expected exactly 2 views, got {len(views)}")
    if views[0].shape[0] < 2:
        raise ValueError("contrastive losses need a batch of at least 2 images (negatives, BatchNorm)")


class SimCLR(nn.Module):
    def __init__(
        self,
        encoder: Encoder,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        num_layers: int = 2,
        temperature: float = 0.5,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = encoder
        self.projection = simclr_projection_head(encoder.embed_dim, hidden_dim, out_dim, num_layers)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)
        self.loss_parts: dict[str, torch.Tensor] = {}

    def forward(
        self, views: Sequence[torch.Tensor], weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss on ``views`` = [view1, view2] (optionally per-pair weighted) and the backbone
        embeddings of the first view; the unweighted loss is left in ``self.loss_parts``."""
        check_two_views(views)
        embeddings = [self.backbone(v) for v in views]
        z0, z1 = (self.projection(e) for e in embeddings)
        per_pair = self.criterion(z0, z1, reduction="none")
        self.loss_parts = {"loss_ntxent": per_pair.detach().mean()}
        return weighted_mean(per_pair, weights), embeddings[0]

    @property
    def eval_encoder(self) -> Encoder:
        """The backbone to evaluate and export (SimCLR has a single network)."""
        return self.backbone  # type: ignore[return-value]

    # Same name as DINO's, so an exporting loop can treat the methods alike.
    teacher_encoder = eval_encoder
