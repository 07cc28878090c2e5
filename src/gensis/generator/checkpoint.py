"""Exported stage-2 generators: EMA weights in safetensors, with what rebuilds them.

The metadata holds the UNet spec, the noise-schedule settings shared by training and
sampling, and the SHA-256 of the encoder whose embeddings the generator was trained on, so a
bank or a generation run can refuse a mismatched encoder.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gensis.config.schema import TrainGeneratorConfig
from gensis.errors import BUILD_ERRORS, CheckpointError, first_line
from gensis.generator.unet import LEGACY_SPEC_FIELDS, EmbeddingConditionedUNet, UNetSpec
from gensis.runtime.checkpoint import resolve_exported
from gensis.runtime.io import file_sha256, read_safetensors, relative_path, save_safetensors

GENERATOR_FORMAT = "gensis.generator/1"


def export_generator(
    path: Path,
    model: EmbeddingConditionedUNet,
    ema,
    cfg: TrainGeneratorConfig,
    encoder_path: Path,
    step: int,
    *,
    vae_sha256: str | None = None,
) -> None:
    names = [n for n, _ in model.named_parameters()]
    tensors = dict(model.state_dict())
    tensors.update({n: e.detach() for n, e in zip(names, ema, strict=True)})
    tensors = {k: v.contiguous().cpu() for k, v in tensors.items()}
    meta = {
        "format": GENERATOR_FORMAT,
        "spec": json.dumps(asdict(model.spec)),
        "scheduler": json.dumps(
            {
                "num_train_timesteps": cfg.model.num_train_timesteps,
                "beta_schedule": cfg.model.beta_schedule,
                "prediction_type": cfg.model.prediction_type,
            }
        ),
        "space": cfg.model.space,
        # A local folder as an absolute path, like the encoder: the file is used from anywhere.
        "vae": (str(Path(cfg.model.vae).resolve()) if Path(cfg.model.vae).exists() else cfg.model.vae)
        if cfg.model.vae
        else "",
        # The autoencoder's content digest: sampling refuses any other (its latents mean other things).
        "vae_sha256": vae_sha256 or "",
        "encoder_sha256": file_sha256(encoder_path),
        "encoder": str(Path(encoder_path).resolve()),  # absolute: the file is used from anywhere
        # ... and relative to this file: a moved or copied pipeline folder finds its own (sha256-checked)
        "encoder_relative": relative_path(encoder_path, path.parent),
        "vae_relative": relative_path(cfg.model.vae, path.parent) if cfg.model.vae else "",
        "trained_steps": str(step),
    }
    save_safetensors(path, tensors, meta)


def resolve_generator_path(path: str | Path) -> Path:
    """A train-generator run folder or an exported file -> the exported file."""
    return resolve_exported(path, "generator")


def _json_field(path: Path, meta: dict[str, str], key: str, kind: type) -> Any:
    try:
        value = json.loads(meta[key])
    except KeyError:
        raise CheckpointError(f"{path}: metadata '{key}' is missing") from None
    except ValueError:
        raise CheckpointError(f"{path}: metadata '{key}' is not valid JSON: {meta[key][:60]!r}") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: metadata '{key}' must be a JSON {kind.__name__}, got {meta[key][:60]!r}")
    return value


def check_generator_metadata(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    """The fields a generator is rebuilt and sampled with, checked before use; returns the spec.
    Generic on purpose: fields are checked when present, so newer formats keep loading."""
    spec = _json_field(path, meta, "spec", dict)
    if "scheduler" in meta:
        _json_field(path, meta, "scheduler", dict)
    space = meta.get("space", "pixel")
    if space not in ("pixel", "latent"):
        raise CheckpointError(f"{path}: metadata 'space' must be 'pixel' or 'latent', got {space[:60]!r}")
    if space == "latent" and not meta.get("vae"):
        raise CheckpointError(f"{path}: metadata 'vae' is empty, but space=latent needs the VAE")
    for key in ("encoder_sha256", "vae_sha256"):
        digest = meta.get(key)
        if digest and not re.fullmatch(r"[0-9a-f]{64}", digest) or (key == "encoder_sha256" and digest == ""):
            raise CheckpointError(f"{path}: metadata '{key}' must be 64 hex digits, got {digest[:60]!r}")
    return spec


def load_generator(path: str | Path, device: Any = "cpu") -> tuple[EmbeddingConditionedUNet, dict[str, str]]:
    """The EMA generator in eval mode, and its metadata (spec, scheduler, encoder hash)."""
    p = resolve_generator_path(path)
    tensors, meta = read_safetensors(p, GENERATOR_FORMAT, "gensis generator")
    spec_fields = {**LEGACY_SPEC_FIELDS, **check_generator_metadata(p, meta)}
    try:
        for key in ("block_out_channels", "attention_resolutions"):
            if key in spec_fields:
                spec_fields[key] = tuple(spec_fields[key])
        model = EmbeddingConditionedUNet(UNetSpec(**spec_fields))
    except BUILD_ERRORS as exc:
        raise CheckpointError(f"{p}: metadata 'spec' does not build a UNet ({first_line(exc)})") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"{p}: weights do not fit the recorded spec ({first_line(exc)})") from None
    model.generator_sha256 = file_sha256(p)
    return model.to(device).eval(), meta
