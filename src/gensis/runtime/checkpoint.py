"""Checkpoints that load without executing pickled code.

* Training state (``checkpoints/last.pt``): a dict of tensors and plain Python values,
  saved with ``torch.save`` and loaded with ``torch.load(weights_only=True)``, so a crafted
  pickle payload is refused instead of run.
* Exported encoder (``exported/encoder.safetensors``): safetensors, with what is needed to
  rebuild the backbone stored in the file's metadata.
Both are written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from gensis.errors import BUILD_ERRORS, CheckpointError, first_line
from gensis.models.backbones import Encoder, build_encoder
from gensis.models.metadata import EncoderInfo
from gensis.runtime.io import atomic_write, save_safetensors
from gensis.runtime.products import described_kind
from gensis.runtime.run_folder import EXPORTED

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


def save_training_state(run, fmt: str, step: int, model: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """Every trainer's ``checkpoints/last.pt`` has one shape: its format, the step, the model's
    parts (``model``: state dicts and plain values), the optimizer, and the run's stamp."""
    stamp = {"run": run.stamp} if run.stamp is not None else {}
    state = {"format": fmt, "step": step, **model, "optimizer": optimizer.state_dict(), **stamp}
    save_state(run.last_checkpoint, state)


def restore_state(
    run, fmt: str, what: str, apply, device: str | torch.device = "cpu", optimizer: torch.optim.Optimizer | None = None
) -> int:
    """Load ``run``'s last checkpoint of format ``fmt`` into a model via ``apply(state)`` and into
    ``optimizer``; the step it was saved at. Another run's checkpoint or one that does not fit is one line."""
    state = load_state(run.last_checkpoint, map_location=device)
    if state.get("format") != fmt:
        raise CheckpointError(f"{run.last_checkpoint}: not a gensis {what} checkpoint")
    run.check_stamp(state)
    _fits(run.last_checkpoint, what, lambda: apply(state))
    if optimizer is not None:
        _fits(run.last_checkpoint, "optimizer", lambda: optimizer.load_state_dict(state["optimizer"]))
    return int(state["step"])


def _fits(path: Path, what: str, load) -> None:
    try:
        load()
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: does not fit this {what} ({first_line(exc)})") from None


def export_encoder(path: str | Path, encoder: Encoder, extra: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in encoder.backbone.state_dict().items()}
    meta = {"format": ENCODER_FORMAT, **encoder.metadata(), **(extra or {})}
    save_safetensors(path, tensors, meta)


def resolve_exported(path: str | Path, what: str) -> Path:
    """A run folder (-> its ``exported/<what>.safetensors``) or a file, which must exist."""
    p = Path(path)
    if p.is_dir():
        kind = _folder_kind(p)
        p = p / EXPORTED / f"{what}.safetensors"
        if not p.is_file() and kind is not None:
            raise CheckpointError(f"{what} not found: {path} is {kind}, not a gensis {what}")
    if not p.is_file():
        raise CheckpointError(f"{what} not found: {p}")
    return p


def _folder_kind(folder: Path) -> str | None:
    """What gensis folder ``folder`` is (runtime/products.py), to name it when another kind was
    expected; also a diffusers model folder."""
    kind = described_kind(folder)
    if kind is None and (folder / "config.json").is_file():
        return "a diffusers model folder"
    return kind


def resolve_encoder_path(path: str | Path) -> Path:
    """A stage-1 run folder or an exported file -> the exported encoder file."""
    return resolve_exported(path, "encoder")


def read_encoder_metadata(path: str | Path) -> EncoderInfo:
    """The exported encoder's metadata, parsed and checked (one line per bad field)."""
    from safetensors import safe_open

    p = resolve_encoder_path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{p}: corrupt or not a safetensors file ({exc})") from None
    if meta.get("format") != ENCODER_FORMAT:
        raise CheckpointError(f"{p}: not a gensis encoder (metadata format={meta.get('format')!r})")
    return EncoderInfo.parse(p, meta)


def load_encoder(path: str | Path, device: str | torch.device = "cpu", *, need_normalization: bool = True) -> Encoder:
    """Rebuild the backbone from the file's metadata and load its weights.

    Every command embeds images, so a file without the mean/std it was trained with is refused
    here, in one line, before any data loads; ``need_normalization=False`` loads one anyway (the
    caller then normalizes images itself)."""
    p = resolve_encoder_path(path)
    info = read_encoder_metadata(p)
    if need_normalization:
        info.normalization()
    cfg, res = info.model_config(), info.resolution
    try:  # timm on odd kwargs fails at build or only in forward (a drop rate of "x"): try both here
        encoder = build_encoder(cfg, res).eval()
        with torch.no_grad():
            encoder(torch.zeros(1, 3, res, res))
    except BUILD_ERRORS as exc:
        raise CheckpointError(
            f"{p}: metadata 'backbone'/'backbone_kwargs' do not build a working backbone ({first_line(exc)})"
        ) from None
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{p}: corrupt encoder weights ({exc})") from None
    load_backbone_weights(encoder, tensors, str(p))
    encoder.info = info
    return encoder.to(device).eval()


def load_backbone_weights(encoder: Encoder, tensors: dict[str, torch.Tensor], source: str) -> None:
    own = encoder.backbone.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    bad_shape = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or unexpected or bad_shape:
        detail = (
            (missing[:2] and f"missing {missing[:2]}")
            or (unexpected[:2] and f"unexpected {unexpected[:2]}")
            or f"shape mismatch at {bad_shape[:2]}"
        )
        raise CheckpointError(f"{source}: weights do not fit backbone {encoder.cfg.backbone!r} ({detail})")
    encoder.backbone.load_state_dict(tensors)
