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

from gensis.models.backbones import Encoder
from gensis.ssl.losses import NTXentLoss, weighted_mean
from gensis.ssl.projection import simclr_projection_head
from gensis.ssl.two_view import TwoViewMethod, TwoViewNet, check_two_views


class SimCLR(TwoViewMethod):
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
        self.student = TwoViewNet(encoder, simclr_projection_head(encoder.embed_dim, hidden_dim, out_dim, num_layers))
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)
        self.loss_parts: dict[str, torch.Tensor] = {}

    def forward(
        self, views: Sequence[torch.Tensor], epoch: int = 0, dis: None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss on ``views`` = [view1, view2] (optionally per-pair weighted) and the backbone
        embeddings of the first view; the unweighted loss is left in ``self.loss_parts``."""
        check_two_views(views)
        (z0, z1), emb = self.student(views)
        per_pair = self.criterion(z0, z1, reduction="none")
        self.loss_parts = {"loss_ntxent": per_pair.detach().mean()}
        return weighted_mean(per_pair, weights), emb
