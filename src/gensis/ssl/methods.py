"""The SSL method a pretraining run trains, by name (``method=dino|simclr|mocov3``).

DINO (with Gen-SIS's disentanglement task when ``lambda_dis > 0``) trains on multi-crop
views; SimCLR and MoCo v3 (GenView's base methods) on two views. All three share the data,
augmentations, generated views, runtime and evaluation. The training loop (train/pretrain.py)
sees only :class:`SSLMethod`; a new method implements it and registers a builder in
:data:`METHODS` (as timm maps a model name to its builder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from gensis.config.schema import PretrainConfig
from gensis.models.backbones import Encoder


class SSLMethod(Protocol):
    """What the training loop relies on, for every method."""

    student: nn.Module  # the network the optimizer trains (and DDP wraps)
    loss_parts: dict[str, torch.Tensor]  # this step's loss terms, for logging

    def __call__(
        self, views: Sequence[torch.Tensor], epoch: int, dis=None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss on ``views`` (+ stage 3's disentanglement inputs ``dis``; ``weights``: one per
        image) and the student's backbone embeddings of the first view."""
        ...

    @property
    def teacher_encoder(self) -> Encoder:
        """The backbone that is evaluated and exported."""
        ...

    @property
    def momentum_start(self) -> float | None:
        """The EMA momentum at step 0 (cosine-scheduled to 1), or None without an EMA network."""
        ...

    def update_teacher(self, momentum: float) -> None: ...

    def after_backward(self, epoch: int) -> None: ...

    def extra_state(self) -> dict:
        """What a checkpoint holds besides the student (teacher, center, momentum encoder)."""
        ...

    def load_extra_state(self, state: dict) -> None: ...

    def log_values(self, epoch: int) -> dict[str, float]: ...

    def to(self, *args: Any, **kwargs: Any) -> SSLMethod:
        """nn.Module's: every method is a module."""
        ...


def _dino(cfg: PretrainConfig, encoder: Encoder, lambda_dis: float) -> SSLMethod:
    from gensis.ssl.dino import DINO

    return DINO(encoder, cfg.dino, lambda_dis, cfg.gen.dis_update_center)


def _simclr(cfg: PretrainConfig, encoder: Encoder, lambda_dis: float) -> SSLMethod:
    from gensis.ssl.simclr import SimCLR

    s = cfg.simclr
    return SimCLR(encoder, s.hidden_dim, s.out_dim, s.head_layers, s.temperature)


def _mocov3(cfg: PretrainConfig, encoder: Encoder, lambda_dis: float) -> SSLMethod:
    from gensis.ssl.moco_v3 import MoCoV3

    m = cfg.mocov3
    return MoCoV3(
        encoder, m.hidden_dim, m.out_dim, m.projector_layers, m.predictor_hidden_dim, m.temperature, momentum=m.momentum
    )


# name -> builder(cfg, encoder, lambda_dis); lambda_dis is used by methods with a teacher (DINO).
METHODS: dict[str, Callable[[PretrainConfig, Encoder, float], SSLMethod]] = {
    "dino": _dino,
    "simclr": _simclr,
    "mocov3": _mocov3,
}


def missing_members(method: object) -> list[str]:
    """The :class:`SSLMethod` members that ``method`` lacks. ``hasattr``, not ``isinstance`` with a
    runtime protocol: since Python 3.12 that looks members up statically and misses the submodules
    of an ``nn.Module`` (DINO's ``student``)."""
    names = [*SSLMethod.__annotations__, *(n for n in vars(SSLMethod) if not n.startswith("_")), "__call__"]
    return [n for n in names if not hasattr(method, n)]


def build_method(cfg: PretrainConfig, encoder: Encoder, lambda_dis: float = 0.0) -> SSLMethod:
    method = METHODS[cfg.method](cfg, encoder, lambda_dis)
    missing = missing_members(method)
    if missing:  # the contract is checked, not only described
        raise TypeError(f"{cfg.method}: {type(method).__name__} does not implement SSLMethod: no {', '.join(missing)}")
    return method
