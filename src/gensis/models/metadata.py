"""An exported encoder's metadata, parsed and checked once when the file is read.

An exported encoder (``exported/encoder.safetensors``) carries, as safetensors string metadata,
what rebuilds and normalizes it: the timm backbone and its kwargs, the resolution, the mean and
std it was trained with, and what stage 1 recorded (method, steps, augmentations). As timm
resolves a model's ``pretrained_cfg`` once, :meth:`EncoderInfo.parse` turns those strings into
one typed object; every other module reads its attributes and never the raw strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gensis.config.overrides import config_range
from gensis.config.schema import DataConfig, ModelConfig
from gensis.errors import CheckpointError

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class EncoderInfo:
    """What an exported encoder's file says about it."""

    source: str
    backbone: str
    cifar_stem: bool
    backbone_kwargs: dict[str, Any]
    resolution: int
    embed_dim: int | None = None
    mean: Triple | None = None
    std: Triple | None = None
    method: str | None = None
    trained_steps: int | None = None
    augment: dict[str, Any] | None = None  # stage 1's ``augment`` section, when it recorded one

    @classmethod
    def parse(cls, path: str | Path, meta: Mapping[str, str]) -> EncoderInfo:
        """Every field checked before use, each failure one line naming the file and the key."""
        p = Path(path)
        if not meta.get("backbone"):
            raise CheckpointError(f"{p}: metadata 'backbone' is missing or empty")
        cifar_stem = _json(p, meta, "cifar_stem")
        if not isinstance(cifar_stem, bool):
            raise _bad(p, "cifar_stem", meta, "true or false")
        kwargs = _json(p, meta, "backbone_kwargs")
        if not isinstance(kwargs, dict):
            raise _bad(p, "backbone_kwargs", meta, "a JSON object")
        resolution = _json(p, meta, "resolution")
        lo, hi = config_range(DataConfig, "resolution")  # the range a run could have been trained at
        if isinstance(resolution, bool) or not isinstance(resolution, int) or not lo <= resolution <= hi:
            raise _bad(p, "resolution", meta, f"an integer in [{lo}, {hi}] (data.resolution's range)")
        mean, std = (_triple(p, meta, key) for key in ("mean", "std"))  # other exporters may leave them out
        return cls(
            source=str(p),
            backbone=meta["backbone"],
            cifar_stem=cifar_stem,
            backbone_kwargs=kwargs,
            resolution=resolution,
            embed_dim=_count(p, meta, "embed_dim", 1),
            mean=mean,
            std=std,
            method=meta.get("method"),
            trained_steps=_count(p, meta, "trained_steps", 0),
            augment=recorded_augment(meta),
        )

    def model_config(self) -> ModelConfig:
        return ModelConfig(backbone=self.backbone, cifar_stem=self.cifar_stem, backbone_kwargs=self.backbone_kwargs)

    def normalization(self) -> tuple[Triple, Triple]:
        """The mean and std the encoder was trained with; one line when the file lacks them."""
        if self.mean is None or self.std is None:
            raise CheckpointError(f"{self.source}: no mean/std in its metadata (not exported by a gensis training run)")
        return self.mean, self.std


def recorded_augment(meta: Mapping[str, str]) -> dict[str, Any] | None:
    """Stage 1's ``augment`` section as recorded in an exported encoder, or None (also when it is
    not a JSON object: the recorded augmentations are a default, never a reason to refuse)."""
    raw = meta.get("augment")
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _json(path: Path, meta: Mapping[str, str], key: str) -> Any:
    if key not in meta:
        raise CheckpointError(f"{path}: metadata '{key}' is missing")
    try:
        return json.loads(meta[key])
    except ValueError:
        raise CheckpointError(f"{path}: metadata '{key}' is not valid JSON: {meta[key][:60]!r}") from None


def _bad(path: Path, key: str, meta: Mapping[str, str], what: str) -> CheckpointError:
    return CheckpointError(f"{path}: metadata '{key}' must be {what}, got {meta[key][:60]!r}")


def _triple(path: Path, meta: Mapping[str, str], key: str) -> Triple | None:
    if key not in meta:
        return None
    values = _json(path, meta, key)
    ok = (
        isinstance(values, list)
        and len(values) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    )
    if not ok or (key == "std" and min(values) <= 0):
        raise _bad(path, key, meta, "a list of 3 finite numbers" + (" > 0" if key == "std" else ""))
    return (float(values[0]), float(values[1]), float(values[2]))


def _count(path: Path, meta: Mapping[str, str], key: str, least: int) -> int | None:
    if key not in meta:
        return None
    value = _json(path, meta, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise _bad(path, key, meta, f"an integer >= {least}")
    return value
