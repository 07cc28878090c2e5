"""Public Python API: one function per CLI subcommand (the CLI is a thin shell over these).

Settings are given as keyword sections or dotted overrides, e.g.::

    gensis.pretrain(preset="cifar10", out="runs/c10", data={"path": "train.zip"},
                    overrides={"train.epochs": 5})
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gensis.config.overrides import build_config
from gensis.config.schema import (
    EmbedConfig,
    EvalConfig,
    EvalGeneratorConfig,
    GenerateConfig,
    PretrainConfig,
    ShowConfig,
    TrainGeneratorConfig,
)
from gensis.data import ImageData, load_images
from gensis.errors import GensisError
from gensis.eval.evaluate import evaluate_encoder, format_eval_table  # noqa: F401 (public API)
from gensis.runtime.checkpoint import load_encoder
from gensis.runtime.device import resolve_device
from gensis.runtime.guards import guard_paths
from gensis.runtime.io import write_result_json
from gensis.runtime.lock import released_after
from gensis.train.pretrain import PretrainResult, run_pretrain

log = logging.getLogger("gensis")


def _flatten_kwargs(kwargs: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and prefix.split(".")[-1] != "backbone_kwargs":
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = value

    walk("", kwargs)
    flat.update(overrides or {})
    return flat


def pretrain_config(
    overrides: dict[str, Any] | None = None, config_file: str | None = None, **kwargs: Any
) -> PretrainConfig:
    """The resolved stage-1 config: preset < YAML file < keyword sections < dotted overrides."""
    return build_config(PretrainConfig, _flatten_kwargs(kwargs, overrides), config_file=config_file)


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
    cfg = pretrain_config(overrides, config_file, **kwargs)
    guard_paths(cfg)
    return run_pretrain(cfg, resume=resume, data=images, eval_data=eval_data)


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
    from gensis.train.generator import run_train_generator  # diffusers is slow to import

    cfg = build_config(TrainGeneratorConfig, _flatten_kwargs(kwargs, overrides), config_file=config_file)
    guard_paths(cfg)
    return run_train_generator(cfg, resume=resume, data=data)


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
    from gensis.autoencoder.train import run_train_autoencoder
    from gensis.config.autoencoder import TrainAutoencoderConfig

    cfg = build_config(TrainAutoencoderConfig, _flatten_kwargs(kwargs, overrides), config_file=config_file)
    guard_paths(cfg)
    return run_train_autoencoder(cfg, resume=resume, data=data)


@released_after
def generate(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any):
    """Stage 2: fill a view bank with self-augmented views and SLERP interpolations."""
    from gensis.generator.generate import run_generate  # diffusers is slow to import

    cfg = build_config(GenerateConfig, _flatten_kwargs(kwargs, overrides), config_file=config_file)
    guard_paths(cfg)
    return run_generate(cfg)


@released_after
def run(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """The whole pipeline (``gensis run``): every stage in ``out``, skipped when already done."""
    from gensis.config.schema import PipelineConfig
    from gensis.pipeline import run_pipeline
    from gensis.runtime.loggers import experiment

    cfg = build_config(PipelineConfig, _flatten_kwargs(kwargs, overrides), use_presets=False, config_file=config_file)
    # One experiment for all stages: each stage folder logs under its name (pretrain/..., gen-dino/...).
    with experiment(cfg.out, cfg.loggers, config=cfg.model_dump(mode="json")):
        return run_pipeline(cfg)


def check_run_settings(settings: dict[str, Any]) -> None:
    """Every stage's settings of ``gensis run``, checked without data (for callers that write
    the data themselves, like ``gensis demo``): bad ones are refused before anything is written."""
    from gensis.config.schema import PipelineConfig
    from gensis.pipeline.stages import stage_configs

    flat = {**_flatten_kwargs(settings, None), "data.path": ".", "data.eval_path": None}
    stage_configs(build_config(PipelineConfig, flat, use_presets=False))


@released_after
def eval_generator(
    overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Quality of a view bank in the encoder's space (see :mod:`gensis.generator.quality`)."""
    from gensis.bank import ViewBank
    from gensis.generator.quality import bank_quality
    from gensis.runtime.checkpoint import resolve_encoder_path
    from gensis.runtime.io import file_sha256

    cfg = build_config(EvalGeneratorConfig, _flatten_kwargs(kwargs, overrides), config_file=config_file)
    guard_paths(cfg)
    device = resolve_device(cfg.device)
    bank = ViewBank(cfg.bank)
    enc_path = resolve_encoder_path(cfg.encoder)
    if file_sha256(enc_path) != bank.index.encoder_sha256:
        raise GensisError(f"{enc_path}: not the encoder this bank's generator was conditioned on")
    encoder = load_encoder(enc_path, device)
    data = load_images(cfg.data_path, encoder.info.resolution, cache_dir=cfg.cache_dir,
                       max_images=cfg.max_images, progress=cfg.progress, max_image_bytes=cfg.max_image_bytes)
    if len(data) != bank.index.n_sources:
        raise GensisError(
            f"{cfg.data_path}: {len(data)} images, but the bank was generated from {bank.index.n_sources}"
        )
    bank.check_data(data.fingerprint(), cfg.data_path, "data_path")
    result = bank_quality(bank, encoder, data, max_sources=cfg.max_sources, device=device)
    done, total = len(bank.index.shards), bank.index.n_shards
    result["bank_shards"] = {"done": done, "total": total}
    if done < total:  # measured on what is there, and said so (stage 3 refuses such a bank)
        logging.getLogger("gensis.generate").warning(
            "%s is incomplete (%d of %d shards): these figures are of the finished shards' %d sources only",
            cfg.bank, done, total, result.get("sources", 0))
    if cfg.out:
        write_result_json(cfg.out, result)
    return result


@released_after
def show(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> list[Path]:
    """PNG grids of generated views and interpolations (``views.png``, ``interpolations.png``)."""
    from gensis.generator.show import run_show

    cfg = build_config(ShowConfig, _flatten_kwargs(kwargs, overrides), config_file=config_file)
    guard_paths(cfg)
    return run_show(cfg)


@released_after
def foreground(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> list[Path]:
    """GenView's PCA foreground of an encoder (arXiv 2403.12003, Sec. 3.2): the PCA, every
    image's foreground ratio and ``foreground.png``, to check the maps before ``adaptive_noise``."""
    from gensis.config.schema import ForegroundConfig
    from gensis.generator.adaptive import run_foreground

    cfg = build_config(ForegroundConfig, _flatten_kwargs(kwargs, overrides), config_file=config_file)
    guard_paths(cfg)
    return run_foreground(cfg)


@released_after
def export(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> Path:
    """An encoder as one file that loads without gensis: TorchScript (``out=*.pt``) or
    ``torch.export`` (``out=*.pt2``), with the encoder's normalization inside."""
    from gensis.config.export import ExportConfig
    from gensis.runtime.export import export_self_contained

    cfg = build_config(ExportConfig, _flatten_kwargs(kwargs, overrides), config_file=config_file)
    guard_paths(cfg)
    return export_self_contained(cfg.encoder, cfg.out)


def _load_labelled(path: str, resolution: int, cfg: EvalConfig) -> ImageData:
    return load_images(path, resolution, require_labels=True, cache_dir=cfg.cache_dir, max_images=cfg.max_images,
                       progress=cfg.progress, max_image_bytes=cfg.max_image_bytes)


@released_after
def evaluate(
    overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Frozen-feature evaluation: weighted kNN (DINO, cosine, T=0.07) and a linear probe."""
    cfg = build_config(EvalConfig, _flatten_kwargs(kwargs, overrides), config_file=config_file)
    guard_paths(cfg)
    device = resolve_device(cfg.device)
    encoder = load_encoder(cfg.encoder, device)
    meta = encoder.info
    resolution, (mean, std) = cfg.resolution or meta.resolution, meta.normalization()  # before the data loads
    train = _load_labelled(cfg.train_path, resolution, cfg)
    test = _load_labelled(cfg.test_path, resolution, cfg)
    return evaluate_encoder(
        encoder, train, test, mean=mean, std=std,
        knn_k=cfg.knn_k, temperature=cfg.knn_temperature, linear=cfg.linear,
        linear_epochs=cfg.linear_epochs, batch_size=cfg.batch_size, device=device, seed=cfg.seed,
        out=cfg.out, extra={"encoder": str(cfg.encoder)}, progress=cfg.progress,
    )


@released_after
def embed(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> Path:
    """Write embeddings (N, D) with their image ids (and labels when present); the out suffix picks
    the format: .safetensors, or .npy/.csv/.parquet (an array plus a one-row-per-image table)."""
    from gensis.eval.embed_io import run_embed

    cfg = build_config(EmbedConfig, _flatten_kwargs(kwargs, overrides), config_file=config_file)
    guard_paths(cfg)
    return run_embed(cfg)
