"""Augmentations of the generator's target image, following stage 1's.

The generator learns p(image | embedding of the clean image). Flipping or rotating the
target is only right when the encoder sees the flipped image as the same image, i.e. when
stage 1 trained with that flip: a flipped digit is another digit for an encoder that never
saw flips (a real digit flipped is retrieved at 6 % top-1 by the demo encoder). So by
default each target augmentation uses the probability that stage 1 used, which the
exported encoder records (``augment`` in its metadata); an encoder file without that record
gets none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gensis.augment import ops


@dataclass(frozen=True)
class TargetAugment:
    hflip_p: float = 0.0
    vflip_p: float = 0.0
    rot90_p: float = 0.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per-sample flips/rotations of a (B, C, S, S) batch, drawn from the CPU ``generator``.

        The horizontal flip always consumes B draws (as gensis always did), the others only
        when enabled, so generators trained without them keep their random stream.
        """
        x = ops.random_hflip(x, self.hflip_p, generator)
        if self.vflip_p > 0:
            x = ops.random_vflip(x, self.vflip_p, generator)
        if self.rot90_p > 0:
            x = ops.random_rot90(x, self.rot90_p, generator)
        return x


def resolve_target_augment(train_cfg, recorded: dict[str, Any] | None) -> TargetAugment:
    """Explicit ``train.hflip_p/vflip_p/rot90_p`` win; unset ones follow the encoder's stage 1
    (``EncoderInfo.augment``; none recorded: no flips, and train-generator logs that)."""
    recorded = recorded or {}
    probs = {}
    for key in ("hflip_p", "vflip_p", "rot90_p"):
        set_value = getattr(train_cfg, key)
        probs[key] = float(set_value if set_value is not None else recorded.get(key, 0.0))
    return TargetAugment(**probs)
