"""What the contrastive methods (SimCLR, MoCo v3) share: two views, one online network.

Every method implements :class:`gensis.ssl.methods.SSLMethod`, the contract the training loop
relies on; :class:`TwoViewMethod` gives the two-view methods its no-op parts (no teacher, no
extra checkpoint state), and DINO implements all of it itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from gensis.models.backbones import Encoder
from gensis.runtime.distributed import unwrap


def check_two_views(views: Sequence[torch.Tensor]) -> None:
    """Contrastive methods here take exactly two views (no multi-crop)."""
    if len(views) != 2:
        raise ValueError(f"expected exactly 2 views, got {len(views)}")
    if views[0].shape[0] < 2:
        raise ValueError("contrastive losses need a batch of at least 2 images (negatives, BatchNorm)")


class TwoViewNet(nn.Module):
    """Backbone + head over the views in one call per step (as DDP needs): per-view outputs
    and the backbone embeddings of the first view. Each view runs on its own, so BatchNorm
    statistics are per view (as in lightly and MoCo v3)."""

    def __init__(self, backbone: Encoder, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        embeddings = [self.backbone(v) for v in views]
        return [self.head(e) for e in embeddings], embeddings[0]


class TwoViewMethod(nn.Module):
    """Base of the contrastive methods: ``self.student`` is a :class:`TwoViewNet`."""

    student: nn.Module
    momentum_start: float | None = None

    @property
    def teacher_encoder(self) -> Encoder:
        """The online backbone: SimCLR has one network, MoCo v3 evaluates its base encoder."""
        return cast(TwoViewNet, unwrap(self.student)).backbone

    def update_teacher(self, momentum: float) -> None:
        pass

    def after_backward(self, epoch: int) -> None:
        pass

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def log_values(self, epoch: int) -> dict[str, float]:
        return {}
