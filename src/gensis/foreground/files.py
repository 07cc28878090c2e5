"""The files ``gensis foreground`` writes and ``gensis generate`` (adaptive noise) reads back."""

from __future__ import annotations

from pathlib import Path

import torch

from gensis.runtime.io import read_safetensors, save_safetensors

FOREGROUND_FORMAT = "gensis.foreground/1"
PCA_FILE = "foreground_pca.safetensors"
RATIO_FILE = "foreground.safetensors"


def write_foreground_file(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    clean = {k: v.detach().float().contiguous().cpu() for k, v in tensors.items()}
    save_safetensors(path, clean, {"format": FOREGROUND_FORMAT, **meta})


def read_foreground_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return read_safetensors(path, FOREGROUND_FORMAT, "gensis foreground file")
