"""The one exponential moving average of every loop: DINO's teacher, MoCo v3's momentum encoder
and the stage-2 generator's exported weights.

``target = momentum * target + (1 - momentum) * source``, written as in facebookresearch/dino
(``param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)``) with torch's public in-place
ops, one tensor at a time as lightly does. diffusers' ``EMAModel`` keeps a shadow copy and
rounds as ``s -= (1 - m) * (s - p)``: the teacher of a run started before would then continue
off its last bit, and the legacy runs would no longer resume to the encoder they exported.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


@torch.no_grad()
def ema_update_(targets: Iterable[torch.Tensor], sources: Iterable[torch.Tensor], momentum: float) -> None:
    """Move every ``target`` towards its ``source`` in place: ``m * target + (1 - m) * source``."""
    for target, source in zip(targets, sources, strict=True):
        target.mul_(momentum).add_(source.detach(), alpha=1.0 - momentum)
