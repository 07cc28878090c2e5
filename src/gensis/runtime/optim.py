"""Optimizer set-up and per-step updates as in facebookresearch/dino ``main_dino.py``.

Biases and 1-D parameters (norm layers) get no weight decay; the weight decay of the
regularized group and the learning rate of both groups follow per-step schedules; gradients
are clipped per parameter (``utils.clip_gradients``), not by the global norm.
"""

from __future__ import annotations

import torch
from torch import nn

from gensis.config.schema import OptimConfig


def param_groups(model: nn.Module) -> list[dict]:
    regularized, not_regularized = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith(".bias") or p.ndim <= 1:
            not_regularized.append(p)
        else:
            regularized.append(p)
    return [{"params": regularized}, {"params": not_regularized, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=0.0, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=0.0)


def set_lr_wd(optimizer: torch.optim.Optimizer, lr: float, wd: float) -> None:
    for i, group in enumerate(optimizer.param_groups):
        group["lr"] = lr
        if i == 0:
            group["weight_decay"] = wd


@torch.no_grad()
def clip_gradients_per_param(model: nn.Module, clip: float) -> None:
    """DINO's clipping: each parameter's gradient norm is capped at ``clip`` on its own."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads or clip <= 0:
        return
    for grad in grads:  # as facebookresearch/dino's utils.clip_gradients, with public ops only
        grad.mul_(torch.clamp(clip / (torch.linalg.vector_norm(grad) + 1e-6), max=1.0))
