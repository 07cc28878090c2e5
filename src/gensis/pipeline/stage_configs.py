"""Every stage's config of ``gensis run``, resolved from the pipeline's and checked before any work;
errors name the stage section."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gensis.config.autoencoder import TrainAutoencoderConfig
from gensis.config.overrides import build_config
from gensis.config.presets import GENERATOR_DEFAULTS
from gensis.config.schema import GenerateConfig, PipelineConfig, PretrainConfig, ShowConfig, TrainGeneratorConfig
from gensis.errors import ConfigError, DataError, by_rule
from gensis.runtime.products import exported_path

log = logging.getLogger("gensis.run")


@dataclass
class StageConfigs:
    pretrain: PretrainConfig
    autoencoder: TrainAutoencoderConfig | None
    generator: TrainGeneratorConfig
    generate: GenerateConfig
    show: ShowConfig | None
    gen_dino: PretrainConfig
    control: PretrainConfig | None
    # The encoder Gen-DINO is judged against: "control", "dino" (stage 1, when stage 3 starts from
    # scratch with stage 1's recipe: the same run without generated views), or None.
    baseline: str | None = None


def _build(stage: str, model, overrides: dict[str, Any], **kw):
    try:
        return build_config(model, overrides, **kw)
    except ConfigError as exc:
        raise ConfigError(f"{stage}: {exc}") from None


# Keys `gensis run` sets itself in each stage: given in a stage section they would be silently
# replaced (out, the stage's inputs) or would make the stages disagree (stage 3 on other images
# than its bank's), so they are refused before any work.
OWNED = {
    "pretrain": ("out",),
    "autoencoder": ("out", "encoder"),
    "generator": ("out", "encoder"),
    "generate": ("out", "generator", "data_path", "max_images"),
    "show": ("out", "generator"),
    "gen_dino": ("out", "gen.bank", "gen.generator", "data.path", "data.max_images"),
}
WHY = {
    "out": "each stage's folder is <out>/<stage>: move them all with the top-level out=",
    "data.path": "the bank is made from the top-level data.path",
    "data.max_images": "use the top-level one",
    "data_path": "the bank is made from the top-level data.path",
    "max_images": "use data.max_images",
}


def _refuse_owned(cfg: PipelineConfig) -> None:
    owned = dict(OWNED)
    if cfg.stage3_init != "scratch":
        owned["gen_dino"] += ("init_from", "init_full")  # stage3_init decides them
    for section, keys in owned.items():
        for key in getattr(cfg, section):
            if key in keys:
                raise ConfigError(
                    by_rule(
                        "pipeline-owns",
                        f"{section}.{key}: set by gensis run itself, not by a "
                        f"stage section ({WHY.get(key, 'it wires the stages together')}); remove it",
                    )
                )


def stage_configs(cfg: PipelineConfig) -> StageConfigs:
    """Every stage's config, resolved from the pipeline's; errors name the stage section."""
    _refuse_owned(cfg)
    if cfg.data.path is None:
        raise ConfigError("data.path: no training images given (data.path=<folder|.zip|.npz>)")
    for key, path in (("data.path", cfg.data.path), ("data.eval_path", cfg.data.eval_path)):
        if path is not None and not Path(path).exists():
            raise DataError(f"{key}: {path} does not exist")
    root = Path(cfg.out)
    data = {
        f"data.{k}": v
        for k, v in cfg.data.model_dump(exclude_unset=True).items()
        if not (k == "resolution" and v is None)
    }  # None: the preset's resolution
    train = {"train.device": cfg.device, "train.seed": cfg.seed, "train.progress": cfg.progress}
    stage1_keys = {"preset": cfg.preset, **data, **train, **cfg.pretrain}
    stage1 = _build("pretrain", PretrainConfig, {**stage1_keys, "out": str(root / "pretrain")})
    autoencoder, generator = _stage2_configs(cfg, root, train)
    generate, show = _bank_configs(cfg, root)
    gen_dino, control, baseline = _stage3_configs(cfg, root, stage1, stage1_keys)
    return StageConfigs(stage1, autoencoder, generator, generate, show, gen_dino, control, baseline)


def _stage2_configs(
    cfg: PipelineConfig, root: Path, train: dict[str, Any]
) -> tuple[TrainAutoencoderConfig | None, TrainGeneratorConfig]:
    """The generator's config, and the autoencoder's where a latent generator has none given."""
    images = {
        "data.path": cfg.data.path,
        "data.max_images": cfg.data.max_images,
        "data.cache_dir": cfg.data.cache_dir,
        "data.max_image_bytes": cfg.data.max_image_bytes,
    }
    generator_keys = {
        **images,
        **train,
        **GENERATOR_DEFAULTS.get(cfg.preset, {}),
        **cfg.generator,
        "encoder": str(root / "pretrain"),
        "out": str(root / "generator"),
    }
    generator = _build("generator", TrainGeneratorConfig, generator_keys)
    if generator.model.space != "latent" or generator.model.vae is not None:
        if cfg.autoencoder:
            raise ConfigError(
                "autoencoder: settings given, but no autoencoder is trained (the generator is in pixel "
                "space or generator.model.vae is set)"
            )
        return None, generator
    # The latent space of the user's own images: trained here, on the same images, at the
    # encoder's resolution (an outside VAE stays possible: generator.model.vae=).
    resolution = {"data.resolution": cfg.data.resolution} if cfg.data.resolution is not None else {}
    autoencoder_keys = {**images, **resolution, **train, **cfg.autoencoder}
    autoencoder = _build(
        "autoencoder",
        TrainAutoencoderConfig,
        {**autoencoder_keys, "encoder": str(root / "pretrain"), "out": str(root / "autoencoder")},
    )
    vae = exported_path(root / "autoencoder", TrainAutoencoderConfig.product).parent
    return autoencoder, _build("generator", TrainGeneratorConfig, {**generator_keys, "model.vae": str(vae)})


def _bank_configs(cfg: PipelineConfig, root: Path) -> tuple[GenerateConfig, ShowConfig | None]:
    """The bank's config, and the pictures' when asked for."""
    sources = {
        "data_path": cfg.data.path,
        "cache_dir": cfg.data.cache_dir,
        "device": cfg.device,
        "max_image_bytes": cfg.data.max_image_bytes,
    }
    generator = str(root / "generator")
    generate_keys = {**sources, "max_images": cfg.data.max_images, "seed": cfg.seed, "progress": cfg.progress}
    generate = _build(
        "generate", GenerateConfig, {**generate_keys, **cfg.generate, "generator": generator, "out": str(root / "bank")}
    )
    if not cfg.pictures:
        return generate, None
    show_keys = {**sources, "seed": cfg.seed, "progress": cfg.progress, **cfg.show}
    return generate, _build("show", ShowConfig, {**show_keys, "generator": generator, "out": str(root / "pictures")})


def _stage3_configs(
    cfg: PipelineConfig, root: Path, stage1: PretrainConfig, stage1_keys: dict[str, Any]
) -> tuple[PretrainConfig, PretrainConfig | None, str | None]:
    """Gen-DINO's config, its control's (when one is trained) and the name of the encoder it is judged against."""
    stage3_keys = {**stage1_keys, **cfg.gen_dino}
    if cfg.stage3_init in ("stage1", "stage1-backbone"):
        stage3_keys["init_from"] = str(root / "pretrain")
        stage3_keys["init_full"] = cfg.stage3_init == "stage1"
    gen_dino = _build(
        "gen_dino", PretrainConfig, {**stage3_keys, "gen.bank": str(root / "bank"), "out": str(root / "gen-dino")}
    )
    plain = {k: v for k, v in stage3_keys.items() if not k.startswith("gen.")}
    if cfg.stage3_init == "scratch" and _same_run(stage1, _build("control", PretrainConfig, plain)):
        if cfg.control:
            log.info(
                "control: stage 1 is stage 3's recipe without generated views (stage3_init=scratch); "
                "Gen-DINO is compared with it"
            )
        return gen_dino, None, "dino"  # training it again would repeat stage 1
    if cfg.control:
        return gen_dino, _build("control", PretrainConfig, {**plain, "out": str(root / "control")}), "control"
    return gen_dino, None, None


def _same_run(a: PretrainConfig, b: PretrainConfig) -> bool:
    """The same training, wherever its folder."""
    return a.model_dump(exclude={"out"}) == b.model_dump(exclude={"out"})
