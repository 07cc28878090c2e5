"""MoCo v3 (Chen, Xie, He 2021, "An Empirical Study of Training Self-Supervised Vision
Transformers", arXiv 2104.02057, Alg. 1; facebookresearch/moco-v3), with optional GenView
per-pair weights (Li et al. 2024, arXiv 2403.12003, whose experiments build on MoCo v3).

Online network: backbone -> projector -> predictor, trained by backprop. Momentum network:
a copy of backbone + projector, updated by an exponential moving average of the online
parameters (``update_momentum``; the reference schedules m from 0.99 to 1 by a cosine). The
loss is symmetric, ``ctr(q1, k2) + ctr(q2, k1)``. As in the reference, both networks stay in
train mode and only parameters, not BatchNorm buffers, are averaged. Linear evaluation in
the reference uses the online (base) backbone, so that is ``eval_encoder``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from gensis.models.backbones import Encoder
from gensis.ssl.losses import InfoNCELoss, weighted_mean
from gensis.ssl.projection import mocov3_predictor, mocov3_projector
from gensis.ssl.simclr import check_two_views


class MoCoV3(nn.Module):
    def __init__(
        self,
        encoder: Encoder,
        hidden_dim: int = 4096,
        out_dim: int = 256,
        projector_layers: int = 3,
        predictor_hidden_dim: int = 4096,
        temperature: float = 1.0,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = encoder
        self.projector = mocov3_projector(encoder.embed_dim, hidden_dim, out_dim, projector_layers)
        self.predictor = mocov3_predictor(out_dim, predictor_hidden_dim)
        self.momentum_backbone = copy.deepcopy(encoder)
        self.momentum_projector = copy.deepcopy(self.projector)
        for p in self._momentum_params():
            p.requires_grad = False
        self.criterion = InfoNCELoss(temperature=temperature, gather_distributed=gather_distributed)
        self.loss_parts: dict[str, torch.Tensor] = {}

    def _online_params(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters()) + list(self.projector.parameters())

    def _momentum_params(self) -> list[nn.Parameter]:
        return list(self.momentum_backbone.parameters()) + list(self.momentum_projector.parameters())

    def forward(
        self, views: Sequence[torch.Tensor], weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetric loss on ``views`` = [view1, view2] (optionally per-pair weighted) and the
        online backbone embeddings of the first view; the unweighted loss is left in
        ``self.loss_parts``."""
        check_two_views(views)
        embeddings = [self.backbone(v) for v in views]
        q1, q2 = (self.predictor(self.projector(e)) for e in embeddings)
        with torch.no_grad():
            k1, k2 = (self.momentum_projector(self.momentum_backbone(v)) for v in views)
        per_pair = self.criterion(q1, k2, reduction="none") + self.criterion(q2, k1, reduction="none")
        self.loss_parts = {"loss_mocov3": per_pair.detach().mean()}
        return weighted_mean(per_pair, weights), embeddings[0]

    @torch.no_grad()
    def update_momentum(self, momentum: float) -> None:
        """EMA: momentum_param = m * momentum_param + (1 - m) * online_param."""
        m_params = self._momentum_params()
        torch._foreach_mul_(m_params, momentum)
        torch._foreach_add_(m_params, [p.detach() for p in self._online_params()], alpha=1.0 - momentum)

    # Same name as DINO's, so a training loop can treat the methods alike.
    update_teacher = update_momentum

    @property
    def eval_encoder(self) -> Encoder:
        """The online backbone: the one MoCo v3 evaluates (``base_encoder``)."""
        return self.backbone  # type: ignore[return-value]

    teacher_encoder = eval_encoder
