"""Per-step schedules of every training loop: stage 1/3 (DINO's), stage 2 and the autoencoder.

``cosine_schedule`` is facebookresearch/dino's ``utils.cosine_scheduler`` for one step: that code
precomputes an array over all iterations, a linear warm-up from ``start_warmup`` to ``base`` over
``warmup_steps`` (``np.linspace``, end point included), then a half cosine from ``base`` to
``final``; one value per step means a resumed run needs no stored array. ``warmup_cosine`` is the
learning rate of stage 2 and of the autoencoder: a linear ramp that reaches ``base`` at the last
warm-up step, then the same half cosine to 0 (or ``base`` held).
"""

from __future__ import annotations

import math


def cosine_schedule(
    step: int, total_steps: int, base: float, final: float, warmup_steps: int = 0, start_warmup: float = 0.0
) -> float:
    """Value at ``step`` (0-based) of DINO's warm-up + cosine schedule."""
    if total_steps <= 0:
        raise ValueError("total_steps must be positive")
    warmup_steps = min(warmup_steps, total_steps)
    if step < warmup_steps:
        if warmup_steps == 1:  # np.linspace(start_warmup, base, 1) is [start_warmup]
            return start_warmup
        return start_warmup + (base - start_warmup) * step / (warmup_steps - 1)
    n = total_steps - warmup_steps
    i = min(step - warmup_steps, n - 1) if n > 0 else 0
    return final + 0.5 * (base - final) * (1.0 + math.cos(math.pi * i / n)) if n > 0 else final


def warmup_cosine(step: int, total_steps: int, base: float, warmup_steps: int, *, cosine: bool = True) -> float:
    """``base * (step + 1) / warmup_steps`` during the warm-up, then a half cosine from ``base`` to 0
    over the remaining steps (``cosine=False``: ``base`` held)."""
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    if not cosine:
        return base
    return cosine_schedule(step - warmup_steps, max(total_steps - warmup_steps, 1), base, 0.0)
