"""Per-step schedules of DINO (facebookresearch/dino ``utils.cosine_scheduler``).

The reference code precomputes an array over all iterations: a linear warm-up from
``start_warmup`` to ``base`` over ``warmup_steps`` (``np.linspace``, end point included),
then a half cosine from ``base`` to ``final``. ``cosine_schedule`` returns the same value for
one step, so a resumed run needs no stored array.
"""

from __future__ import annotations

import math


def cosine_schedule(
    step: int,
    total_steps: int,
    base: float,
    final: float,
    warmup_steps: int = 0,
    start_warmup: float = 0.0,
) -> float:
    """Value at ``step`` (0-based) of DINO's warm-up + cosine schedule."""
    if total_steps <= 0:
        raise ValueError("total_steps must be positive")
    warmup_steps = min(warmup_steps, total_steps)
    if step < warmup_steps:
        if warmup_steps == 1:
            return base
        return start_warmup + (base - start_warmup) * step / (warmup_steps - 1)
    n = total_steps - warmup_steps
    i = min(step - warmup_steps, n - 1) if n > 0 else 0
    return final + 0.5 * (base - final) * (1.0 + math.cos(math.pi * i / n)) if n > 0 else final


def teacher_temperature(epoch: int, warmup_temp: float, temp: float, warmup_epochs: int) -> float:
    """DINO's teacher temperature: linear from ``warmup_temp`` to ``temp``, then constant.

    Matches ``np.linspace(warmup_temp, temp, warmup_epochs)`` indexed by epoch.
    """
    if epoch >= warmup_epochs:
        return temp
    if warmup_epochs == 1:
        return warmup_temp
    return warmup_temp + (temp - warmup_temp) * epoch / (warmup_epochs - 1)
