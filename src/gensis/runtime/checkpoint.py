"""Checkpoints that load without executing pickled code.

* Training state (``checkpoints/last.pt``): a dict of tensors and plain Python values,
  saved with ``torch.save`` and loaded with ``torch.load(weights_only=True)``, so a crafted
  pickle payload is refused instead of run.
* Exported encoder (``exported/encoder.safetensors``): safetensors, with what is needed to
  rebuild the backbone stored in the file's metadata.
Both are written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import json
import math
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from gensis.config.overrides import config_range
from gensis.config.schema import DataConfig, ModelConfig
from gensis.errors import CheckpointError, first_line
from gensis.models.backbones import Encoder, build_encoder
from gensis.runtime.guards import folder_kind
from gensis.runtime.io import atomic_write, save_safetensors

ENCODER_FORMAT = "gensis.encoder/1"


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:  # a crash mid-copy or a full disk, not gensis (its writes are atomic)
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"[Uu]nsupported (?:global|GLOBAL|operand)[^\n]*?(?= whose|\n|$)", str(exc))
        if zipfile.is_zipfile(path) and found:
            raise CheckpointError(
                f"{path}: refused to load: it holds objects other than tensors and plain values "
                f"({found.group(0)}); gensis never unpickles code"
            ) from None
        raise CheckpointError(f"{path}: corrupt or not a torch checkpoint (refused to unpickle it)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({first_line(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a gensis checkpoint (expected a dict)")
    return state


def restore_state(run, fmt: str, what: str, apply, device: str | torch.device = "cpu") -> int:
    """Load ``run``'s last checkpoint of format ``fmt`` into a model via ``apply(state)``; the
    step it was saved at. Another run's checkpoint or one that does not fit is one line."""
    state = load_state(run.last_checkpoint, map_location=device)
    if state.get("format") != fmt:
        raise CheckpointError(f"{run.last_checkpoint}: not a gensis {what} checkpoint")
    run.check_stamp(state)
    try:
        apply(state)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{run.last_checkpoint}: does not fit this {what} ({first_line(exc)})") from None
    return int(state["step"])


def export_encoder(path: str | Path, encoder: Encoder, extra: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in encoder.backbone.state_dict().items()}
    meta = {"format": ENCODER_FORMAT, **encoder.metadata(), **(extra or {})}
    save_safetensors(path, tensors, meta)


def resolve_exported(path: str | Path, what: str) -> Path:
    """A run folder (-> its ``exported/<what>.safetensors``) or a file, which must exist."""
    p = Path(path)
    if p.is_dir():
        kind = _folder_kind(p)
        p = p / "exported" / f"{what}.safetensors"
        if not p.is_file() and kind is not None:
            raise CheckpointError(f"{what} not found: {path} is {kind}, not a gensis {what}")
    if not p.is_file():
        raise CheckpointError(f"{what} not found: {p}")
    return p


_KIND_NAMES = {"autoencoder run": "an autoencoder (train-autoencoder)", "bank": "a view bank",
               "pretrain run": "a stage-1 run folder (an encoder)", "generator run": "a train-generator run folder",
               "pipeline": "a gensis run folder (one subfolder per stage)"}


def _folder_kind(folder: Path) -> str | None:
    """What gensis folder ``folder`` is (runtime/guards.py: folder_kind), to name it when another
    kind was expected; also an exported autoencoder and a diffusers model folder."""
    if (folder / "gensis.json").is_file():
        return _KIND_NAMES["autoencoder run"]
    kind = _KIND_NAMES.get(folder_kind(folder) or "")
    if kind is None and (folder / "config.json").is_file():
        return "a diffusers model folder"
    return kind


def resolve_encoder_path(path: str | Path) -> Path:
    """A stage-1 run folder or an exported file -> the exported encoder file."""
    return resolve_exported(path, "encoder")


def read_encoder_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    p = resolve_encoder_path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{p}: corrupt or not a safetensors file ({exc})") from None
    if meta.get("format") != ENCODER_FORMAT:
        raise CheckpointError(f"{p}: not a gensis encoder (metadata format={meta.get('format')!r})")
    check_encoder_metadata(p, meta)
    return meta


def _meta_json(path: Path, meta: dict[str, str], key: str) -> Any:
    if key not in meta:
        raise CheckpointError(f"{path}: metadata '{key}' is missing")
    try:
        return json.loads(meta[key])
    except ValueError:
        raise CheckpointError(f"{path}: metadata '{key}' is not valid JSON: {meta[key][:60]!r}") from None


def _bad(path: Path, key: str, meta: dict[str, str], what: str) -> CheckpointError:
    return CheckpointError(f"{path}: metadata '{key}' must be {what}, got {meta[key][:60]!r}")


def check_encoder_metadata(path: Path, meta: dict[str, str]) -> None:
    """Every field an encoder is rebuilt and normalized with, checked before use (one line each)."""
    if not meta.get("backbone"):
        raise CheckpointError(f"{path}: metadata 'backbone' is missing or empty")
    if not isinstance(_meta_json(path, meta, "cifar_stem"), bool):
        raise _bad(path, "cifar_stem", meta, "true or false")
    if not isinstance(_meta_json(path, meta, "backbone_kwargs"), dict):
        raise _bad(path, "backbone_kwargs", meta, "a JSON object")
    resolution = _meta_json(path, meta, "resolution")
    lo, hi = config_range(DataConfig, "resolution")  # the range a run could have been trained at
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not lo <= resolution <= hi:
        raise _bad(path, "resolution", meta, f"an integer in [{lo}, {hi}] (data.resolution's range)")
    for key in ("mean", "std"):  # written by gensis pretrain; other exporters may leave them out
        if key not in meta:
            continue
        values = _meta_json(path, meta, key)
        ok = isinstance(values, list) and len(values) == 3 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
        if not ok or (key == "std" and min(values) <= 0):
            raise _bad(path, key, meta, "a list of 3 finite numbers" + (" > 0" if key == "std" else ""))


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> Encoder:
    """Rebuild the backbone from the file's metadata and load its weights."""
    p = resolve_encoder_path(path)
    meta = read_encoder_metadata(p)
    cfg = ModelConfig(
        backbone=meta["backbone"],
        cifar_stem=json.loads(meta["cifar_stem"]),
        backbone_kwargs=json.loads(meta["backbone_kwargs"]),
    )
    res = int(meta["resolution"])
    try:  # timm on odd kwargs fails at build or only in forward (a drop rate of "x"): try both here
        encoder = build_encoder(cfg, res).eval()
        with torch.no_grad():
            encoder(torch.zeros(1, 3, res, res))
    except (TypeError, ValueError, RuntimeError, KeyError, AssertionError, ArithmeticError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{p}: metadata 'backbone'/'backbone_kwargs' do not build a working backbone "
                              f"({first_line(exc)})") from None
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{p}: corrupt encoder weights ({exc})") from None
    load_backbone_weights(encoder, tensors, str(p))
    encoder.extra_metadata = meta  # type: ignore[attr-defined]
    return encoder.to(device).eval()


def load_backbone_weights(encoder: Encoder, tensors: dict[str, torch.Tensor], source: str) -> None:
    own = encoder.backbone.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    bad_shape = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or unexpected or bad_shape:
        detail = (missing[:2] and f"missing {missing[:2]}") or (unexpected[:2] and f"unexpected {unexpected[:2]}") or f"shape mismatch at {bad_shape[:2]}"
        raise CheckpointError(f"{source}: weights do not fit backbone {encoder.cfg.backbone!r} ({detail})")
    encoder.backbone.load_state_dict(tensors)
