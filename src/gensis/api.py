"""Public Python API: one function per CLI subcommand (the CLI is a thin shell over these).

Settings are given as keyword sections or dotted overrides, e.g.::

    gensis.pretrain(preset="cifar10", out="runs/c10", data={"path": "train.zip"},
                    overrides={"train.epochs": 5})

Each function resolves its command's typed config (preset < YAML file < keyword sections <
dotted overrides), runs the output guard and hands the config to the function that runs it: the
table in :mod:`gensis.commands` says which.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gensis.commands import COMMANDS
from gensis.config.commands import COMMAND_CONFIGS
from gensis.config.overrides import build_config, flatten
from gensis.config.schema import PretrainConfig
from gensis.data import ImageData
from gensis.eval.evaluate import evaluate_encoder, format_eval_table  # noqa: F401 (public API)
from gensis.runtime.guards import guard_paths
from gensis.runtime.lock import released_after

if TYPE_CHECKING:
    from gensis.train.pretrain import PretrainResult

log = logging.getLogger("gensis")


def _settings(kwargs: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    return {**flatten(kwargs), **(overrides or {})}


def _call(
    name: str, overrides: dict[str, Any] | None, config_file: str | None, kwargs: dict[str, Any], **extras: Any
) -> Any:
    """The one body of every public function: config, guard, run (``extras``: resume, in-memory data)."""
    command = COMMANDS[name]
    cfg = build_config(
        COMMAND_CONFIGS[name], _settings(kwargs, overrides), use_presets=command.presets, config_file=config_file
    )
    if command.guarded:
        guard_paths(cfg)
    return command.run(cfg, **extras)


def pretrain_config(
    overrides: dict[str, Any] | None = None, config_file: str | None = None, **kwargs: Any
) -> PretrainConfig:
    """The resolved stage-1 config: preset < YAML file < keyword sections < dotted overrides."""
    return build_config(PretrainConfig, _settings(kwargs, overrides), config_file=config_file)


@released_after
def pretrain(
    overrides: dict[str, Any] | None = None,
    *,
    resume: bool = False,
    config_file: str | None = None,
    data: ImageData | dict[str, Any] | None = None,
    eval_data: ImageData | None = None,
    **kwargs: Any,
) -> PretrainResult:
    """Stage 1: DINO pretraining. Writes the run folder ``out`` and returns its paths.

    ``resume=True`` continues ``out`` exactly from ``checkpoints/last.pt``; ``init_from=``
    only loads encoder weights into a fresh run. ``data`` may be an in-memory
    :class:`~gensis.data.ImageData` instead of a path section.
    """
    images = data if isinstance(data, ImageData) else None
    if isinstance(data, dict):
        kwargs["data"] = data
    return _call("pretrain", overrides, config_file, kwargs, resume=resume, data=images, eval_data=eval_data)


@released_after
def train_generator(
    overrides: dict[str, Any] | None = None,
    *,
    resume: bool = False,
    config_file: str | None = None,
    data: ImageData | None = None,
    **kwargs: Any,
):
    """Stage 2: train the embedding-conditioned diffusion generator (run folder ``out``)."""
    return _call("train-generator", overrides, config_file, kwargs, resume=resume, data=data)


@released_after
def train_autoencoder(
    overrides: dict[str, Any] | None = None,
    *,
    resume: bool = False,
    config_file: str | None = None,
    data: ImageData | None = None,
    **kwargs: Any,
):
    """The latent space of stage 2, trained on the user's own images: a diffusers ``AutoencoderKL``
    from scratch, written with ``save_pretrained`` to ``<out>/exported/autoencoder``."""
    return _call("train-autoencoder", overrides, config_file, kwargs, resume=resume, data=data)


@released_after
def generate(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any):
    """Stage 2: fill a view bank with self-augmented views and SLERP interpolations."""
    return _call("generate", overrides, config_file, kwargs)


@released_after
def run(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """The whole pipeline (``gensis run``): every stage in ``out``, skipped when already done."""
    return _call("run", overrides, config_file, kwargs)


def check_run_settings(settings: dict[str, Any]) -> None:
    """Every stage's settings of ``gensis run``, checked without data (for callers that write
    the data themselves, like ``gensis demo``): bad ones are refused before anything is written."""
    from gensis.config.schema import PipelineConfig
    from gensis.pipeline.stage_configs import stage_configs

    flat = {**_settings(settings, None), "data.path": ".", "data.eval_path": None}
    stage_configs(build_config(PipelineConfig, flat, use_presets=False))


@released_after
def eval_generator(
    overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Quality of a view bank in the encoder's space (see :mod:`gensis.generator.quality`)."""
    return _call("eval-generator", overrides, config_file, kwargs)


@released_after
def show(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> list[Path]:
    """PNG grids of generated views and interpolations (``views.png``, ``interpolations.png``)."""
    return _call("show", overrides, config_file, kwargs)


@released_after
def foreground(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> list[Path]:
    """GenView's PCA foreground of an encoder (arXiv 2403.12003, Sec. 3.2): the PCA, every
    image's foreground ratio and ``foreground.png``, to check the maps before ``adaptive_noise``."""
    return _call("foreground", overrides, config_file, kwargs)


@released_after
def export(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> Path:
    """An encoder as one file that loads without gensis: TorchScript (``out=*.pt``) or
    ``torch.export`` (``out=*.pt2``), with the encoder's normalization inside."""
    return _call("export", overrides, config_file, kwargs)


@released_after
def evaluate(
    overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Frozen-feature evaluation: weighted kNN (DINO, cosine, T=0.07) and a linear probe."""
    return _call("eval", overrides, config_file, kwargs)


@released_after
def embed(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> Path:
    """Write embeddings (N, D) with their image ids (and labels when present); the out suffix picks
    the format: .safetensors, or .npy/.csv/.parquet (an array plus a one-row-per-image table)."""
    return _call("embed", overrides, config_file, kwargs)
