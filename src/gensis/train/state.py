"""The pretraining loop's state on disk: ``checkpoints/last`` (student, the method's extra
state such as DINO's teacher and center, optimizer) and the two ways a run starts from
another: ``init_from`` (the encoder's weights only) and ``init_full`` (the whole model, as
stage 3 continues stage 1). Every check runs before the run folder is written.
"""

from __future__ import annotations

import torch

from gensis.config.schema import PretrainConfig
from gensis.errors import CheckpointError, first_line
from gensis.models.backbones import build_encoder
from gensis.runtime import distributed
from gensis.runtime.checkpoint import (
    load_backbone_weights,
    load_state,
    resolve_encoder_path,
    restore_state,
    save_training_state,
)
from gensis.runtime.run_folder import RunFolder
from gensis.ssl.methods import build_method

PRETRAIN_FORMAT = "gensis.pretrain/1"


def init_full_state(cfg: PretrainConfig) -> dict:
    """The model part of the ``init_from`` run's last checkpoint (``init_full``), checked here,
    before the run folder exists, against this method and backbone."""
    assert cfg.init_from is not None  # called with init_full, which needs init_from (train/pretrain.py)
    path = RunFolder(cfg.init_from).last_checkpoint
    if not path.is_file():
        raise CheckpointError(f"init_full: {cfg.init_from} is not a pretrain run folder with {path.name}")
    state = load_state(path)
    if state.get("format") != PRETRAIN_FORMAT or state.get("method", "dino") != cfg.method:
        raise CheckpointError(f"init_full: {path} is not a gensis {cfg.method} checkpoint")
    model = build_method(cfg, build_encoder(cfg.model, cfg.data.resolution))
    # The model's parts only: not the optimizer, nor what describes the run (settings, data, backbone, method).
    full = {k: v for k, v in state.items() if k not in ("optimizer", "backbone", "method", "run")}
    load_model_state(model, full, f"{path} (init_full)")
    return full


def load_model_state(model, state: dict, source: str) -> None:
    try:
        model.student.load_state_dict(state["student"])
        model.load_extra_state(state)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{source}: does not fit this model ({first_line(exc)})") from None


def init_weights_state(cfg: PretrainConfig) -> dict[str, torch.Tensor]:
    """The ``init_from`` encoder's weights, checked against this backbone before any work."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    assert cfg.init_from is not None  # called only with init_from set (train/pretrain.py)
    path = resolve_encoder_path(cfg.init_from)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable encoder file ({exc})") from None
    encoder = build_encoder(cfg.model, cfg.data.resolution)
    load_backbone_weights(encoder, tensors, str(path))
    return encoder.state_dict()


def save_pretrain_state(run: RunFolder, model, optimizer, step: int, cfg: PretrainConfig) -> None:
    parts = {
        "method": cfg.method,
        "student": distributed.unwrap(model.student).state_dict(),
        **model.extra_state(),  # DINO: teacher and center; MoCo v3: the momentum network
        "backbone": cfg.model.backbone,
    }
    save_training_state(run, PRETRAIN_FORMAT, step, parts, optimizer)


def restore_pretrain_state(run: RunFolder, model, optimizer, device: torch.device) -> int:
    return restore_state(
        run,
        PRETRAIN_FORMAT,
        "pretrain",
        lambda state: load_model_state(model, state, str(run.last_checkpoint)),
        device,
        optimizer,
    )
