"""MoCo v3 (Chen, Xie, He 2021, "An Empirical Study of Training Self-Supervised Vision
Transformers", arXiv 2104.02057, Alg. 1; facebookresearch/moco-v3), with optional GenView
per-pair weights (Li et al. 2024, arXiv 2403.12003, whose experiments build on MoCo v3).

Online network: backbone -> projector -> predictor, trained by backprop. Momentum network:
a copy of backbone + projector, updated by an exponential moving average of the online
parameters (``update_momentum``; the reference schedules m from 0.99 to 1 by a cosine). The
loss is symmetric, ``ctr(q1, k2) + ctr(q2, k1)``. As in the reference, both networks stay in
train mode and only parameters, not BatchNorm buffers, are averaged. Linear evaluation in
the reference uses the online (base) backbone, so that is ``teacher_encoder``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from gensis.models.backbones import Encoder
from gensis.runtime.distributed import unwrap
from gensis.runtime.ema import ema_update_
from gensis.ssl.losses import InfoNCELoss, weighted_mean
from gensis.ssl.projection import mocov3_predictor, mocov3_projector
from gensis.ssl.two_view import TwoViewMethod, TwoViewNet, check_two_views


class MoCoV3(TwoViewMethod):
    def __init__(
        self,
        encoder: Encoder,
        hidden_dim: int = 4096,
        out_dim: int = 256,
        projector_layers: int = 3,
        predictor_hidden_dim: int = 4096,
        temperature: float = 1.0,
        gather_distributed: bool = True,
        momentum: float = 0.99,
    ) -> None:
        super().__init__()
        projector = mocov3_projector(encoder.embed_dim, hidden_dim, out_dim, projector_layers)
        predictor = mocov3_predictor(out_dim, predictor_hidden_dim)
        self.student = TwoViewNet(encoder, nn.Sequential(projector, predictor))  # the online network
        self.momentum = TwoViewNet(copy.deepcopy(encoder), copy.deepcopy(projector))
        for p in self.momentum.parameters():
            p.requires_grad = False
        self.criterion = InfoNCELoss(temperature=temperature, gather_distributed=gather_distributed)
        self.momentum_start = momentum
        self.loss_parts: dict[str, torch.Tensor] = {}

    @property
    def projector(self) -> nn.Module:
        return cast(nn.Sequential, unwrap(self.student).head)[0]  # (projector, predictor)

    @property
    def momentum_projector(self) -> nn.Module:
        return self.momentum.head

    def _online_params(self) -> list[nn.Parameter]:
        online = cast(TwoViewNet, unwrap(self.student))
        return list(online.backbone.parameters()) + list(self.projector.parameters())

    def forward(
        self, views: Sequence[torch.Tensor], epoch: int = 0, dis: None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetric loss on ``views`` = [view1, view2] (optionally per-pair weighted) and the
        online backbone embeddings of the first view; the unweighted loss is left in
        ``self.loss_parts``."""
        check_two_views(views)
        (q1, q2), emb = self.student(views)
        with torch.no_grad():
            (k1, k2), _ = self.momentum(views)
        per_pair = self.criterion(q1, k2, reduction="none") + self.criterion(q2, k1, reduction="none")
        self.loss_parts = {"loss_mocov3": per_pair.detach().mean()}
        return weighted_mean(per_pair, weights), emb

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """EMA: momentum_param = m * momentum_param + (1 - m) * online_param."""
        ema_update_(self.momentum.parameters(), self._online_params(), momentum)

    update_momentum = update_teacher

    def extra_state(self) -> dict:
        return {"momentum": self.momentum.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.momentum.load_state_dict(state["momentum"])
