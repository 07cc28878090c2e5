"""Exported stage-2 generators: EMA weights in safetensors, with what rebuilds them.

The metadata holds the UNet spec, the noise-schedule settings shared by training and
sampling, and the SHA-256 of the encoder whose embeddings the generator was trained on, so a
bank or a generation run can refuse a mismatched encoder.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from gensis.config.schema import TrainGeneratorConfig
from gensis.errors import CheckpointError
from gensis.generator.unet import LEGACY_SPEC_FIELDS, EmbeddingConditionedUNet, UNetSpec
from gensis.runtime.checkpoint import resolve_exported
from gensis.runtime.io import atomic_write, file_sha256, read_safetensors

GENERATOR_FORMAT = "gensis.generator/1"


def export_generator(path: Path, model: EmbeddingConditionedUNet, ema, cfg: TrainGeneratorConfig,
                     encoder_path: Path, step: int) -> None:
    names = [n for n, _ in model.named_parameters()]
    tensors = dict(model.state_dict())
    tensors.update({n: e.detach() for n, e in zip(names, ema, strict=True)})
    tensors = {k: v.contiguous().cpu() for k, v in tensors.items()}
    meta = {
        "format": GENERATOR_FORMAT,
        "spec": json.dumps(asdict(model.spec)),
        "scheduler": json.dumps({"num_train_timesteps": cfg.model.num_train_timesteps,
                                 "beta_schedule": cfg.model.beta_schedule,
                                 "prediction_type": cfg.model.prediction_type}),
        "space": cfg.model.space,
        "vae": cfg.model.vae or "",
        "encoder_sha256": file_sha256(encoder_path),
        "encoder": str(encoder_path),
        "trained_steps": str(step),
    }
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def resolve_generator_path(path: str | Path) -> Path:
    """A train-generator run folder or an exported file -> the exported file."""
    return resolve_exported(path, "generator")


def load_generator(path: str | Path, device: Any = "cpu") -> tuple[EmbeddingConditionedUNet, dict[str, str]]:
    """The EMA generator in eval mode, and its metadata (spec, scheduler, encoder hash)."""
    p = resolve_generator_path(path)
    tensors, meta = read_safetensors(p, GENERATOR_FORMAT, "gensis generator")
    spec_fields = {**LEGACY_SPEC_FIELDS, **json.loads(meta["spec"])}
    for key in ("block_out_channels", "attention_resolutions"):
        spec_fields[key] = tuple(spec_fields[key])
    model = EmbeddingConditionedUNet(UNetSpec(**spec_fields))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"{p}: weights do not fit the recorded spec ({str(exc).splitlines()[0][:160]})") from None
    model.generator_sha256 = file_sha256(p)  # type: ignore[attr-defined]
    return model.to(device).eval(), meta
