"""DINO's teacher temperature schedule (facebookresearch/dino ``main_dino.py``); the learning-rate,
weight-decay and momentum schedules of every loop are in :mod:`gensis.runtime.schedules`."""

from __future__ import annotations


def teacher_temperature(epoch: int, warmup_temp: float, temp: float, warmup_epochs: int) -> float:
    """DINO's teacher temperature: linear from ``warmup_temp`` to ``temp``, then constant.

    Matches ``np.linspace(warmup_temp, temp, warmup_epochs)`` indexed by epoch.
    """
    if epoch >= warmup_epochs:
        return temp
    if warmup_epochs == 1:
        return warmup_temp
    return warmup_temp + (temp - warmup_temp) * epoch / (warmup_epochs - 1)
