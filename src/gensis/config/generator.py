"""Typed configuration of stage 2: training the generator, generating the view bank, pictures.

Split from :mod:`gensis.config.schema` (which re-exports these names); the same rules hold:
unknown keys are rejected and ranges are checked before any work starts.
"""

from __future__ import annotations

import itertools
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from gensis.config.base import (
    MAX_IMAGE_BYTES,
    DataConfig,
    ForegroundFitConfig,
    MaxImageBytes,
    StrictModel,
    _check_interval,
)
from gensis.config.loggers import LoggersConfig
from gensis.config.paths import InputPath, OutputDir, OutputFile, ScratchDir
from gensis.config.products import Product, format_is_gensis


class GeneratorModelConfig(StrictModel):
    """Stage-2 UNet (diffusers ``UNet2DModel``) and its noise schedule."""

    spec: Literal["pixel32", "pixel96", "latent", "tiny"] = Field("pixel32", description="UNet size preset")
    space: Literal["pixel", "latent"] = Field(
        "pixel", description="pixel, or latent: an AutoencoderKL's space (its own, trained by gensis run, or model.vae)"
    )
    vae: InputPath | None = Field(None, description="AutoencoderKL folder or hub id (latent space only)")
    conditioning: Literal["add", "cross_attention"] = Field(
        "add", description="embedding added to the timestep embedding (RCDM/RCG) or cross-attended as tokens (LDM)"
    )
    block_out_channels: list[int] | None = Field(None, description="override the preset's widths")
    layers_per_block: int | None = Field(None, ge=1, le=8)
    p_uncond: float = Field(0.1, ge=0, le=1, description="condition dropout for classifier-free guidance")
    num_train_timesteps: int = Field(1000, ge=2)
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = "squaredcos_cap_v2"
    # The conditioning design, chosen by measurement (docs/RESULTS.md, "Stage 2 that follows its
    # condition"): each of these made the generator follow its embedding sooner on the digits.
    prediction_type: Literal["epsilon", "v_prediction"] = Field(
        "v_prediction",
        description="v-prediction (Salimans & Ho 2022): the loss keeps weight at high noise, "
        "where the condition decides the image; epsilon is the DDPM objective",
    )
    scale_shift: bool = Field(
        True, description="AdaGN (ADM/RCDM): time+condition scale and shift each block after its GroupNorm"
    )
    standardize: bool = Field(
        True, description="embedding x sqrt(D), so the condition starts as large as the timestep embedding"
    )
    zero_init: bool = Field(False, description="start the condition projection's output layer at zero")


class GeneratorTrainConfig(StrictModel):
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(2e-4, gt=0, le=1)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(500, ge=0)
    weight_decay: float = Field(0.0, ge=0, le=1)
    ema_decay: float = Field(0.9999, ge=0, lt=1)
    clip_grad: float = Field(1.0, ge=0, description="global gradient-norm clip; 0 disables")
    min_snr_gamma: float = Field(
        5.0, ge=0, description="min-SNR-gamma loss weights (Hang et al. 2023, arXiv 2303.09556); 0 = plain MSE"
    )
    # Target augmentations: a flipped digit is another digit for an encoder that never saw
    # flips, so by default they follow the stage-1 augmentation recorded in the encoder file.
    hflip_p: float | None = Field(
        None, ge=0, le=1, description="flip the target image; default: the encoder's stage-1 augment.hflip_p"
    )
    vflip_p: float | None = Field(None, ge=0, le=1, description="default: the encoder's stage-1 augment.vflip_p")
    rot90_p: float | None = Field(None, ge=0, le=1, description="default: the encoder's stage-1 augment.rot90_p")
    monitor_every: int = Field(200, ge=0, description="steps between conditioning checks on held-out images (0: off)")
    monitor_images: int = Field(
        64, ge=0, description="images held out of training for the conditioning check (at most 10 % of the set)"
    )
    seed: int = Field(0, ge=0, le=2**32 - 1)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    log_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints/last")
    max_steps: int | None = Field(None, ge=1)
    progress: bool = True


class TrainGeneratorConfig(StrictModel):
    """``gensis train-generator``: stage 2, a diffusion model conditioned on stage-1 embeddings."""

    product: ClassVar[Product] = Product(
        "generator run", "a train-generator run folder", exports=("generator.safetensors",)
    )

    out: OutputDir = Field("runs/generator", description="run folder")
    encoder: InputPath = Field(..., description="stage-1 run folder or exported encoder .safetensors")
    data: DataConfig = Field(default_factory=DataConfig)
    model: GeneratorModelConfig = Field(default_factory=GeneratorModelConfig)
    train: GeneratorTrainConfig = Field(default_factory=GeneratorTrainConfig)
    loggers: LoggersConfig = Field(default_factory=LoggersConfig)


class SamplingConfig(StrictModel):
    """The sampler settings that ``gensis generate`` and ``gensis show`` share."""

    sampler: Literal["ddim", "dpmsolver++"] = "dpmsolver++"
    # 10: DPM-Solver++ at 5, 10 and 20 steps gave the same faithfulness on the digits (source
    # top-1 6.9 / 6.6 / 6.4 %, median rank 20 / 22 / 22) at half the cost per halving; 10 keeps a margin.
    steps: int = Field(10, ge=1, le=1000)
    # 1: guidance 2 doubles source top-1 (8.5 -> 17.3 % on the digits, issue 12) but halves the
    # diversity between views (cosine 0.11 -> 0.07) and doubles the cost; pass 2 when faithfulness is short.
    # PCam (2026-12-03): median rank of the source 41 -> 18, diversity 0.11 -> 0.06, 2.2x the cost. Its
    # stage-3 effect over 3 seeds (2026-12-05, Gen-DINO from scratch): guidance 2 - guidance 1 is +0.23 kNN
    # k=20 (SE 0.23) and -0.31 linear (SE 0.50), inside the noise, for 2.8x the bank's seconds: no reason to switch.
    guidance_scale: float = Field(1.0, ge=0, le=20)


class GenerateConfig(SamplingConfig):
    """``gensis generate``: self-augmented views and SLERP interpolations into a view bank."""

    product: ClassVar[Product] = Product("bank", "a view bank", marker="index.json", accepts=format_is_gensis)

    generator: InputPath | None = Field(None, description="train-generator run folder or exported .safetensors")
    encoder: InputPath | None = Field(
        None, description="default: the encoder recorded in the generator; required with external="
    )
    data_path: InputPath = Field(..., description="the source images (same set the generator trained on, or new ones)")
    out: OutputDir = Field(..., description="view-bank folder")
    views_per_image: int = Field(4, ge=0, le=64, description="K self-augmentations per image")
    interpolations_per_image: int = Field(1, ge=0, le=64, description="M interpolations per image")
    alpha_range: tuple[float, float] = Field((0.3, 0.7), description="share of the source image in SLERP")
    batch_size: int = Field(256, ge=1)
    shard_size: int = Field(1000, ge=1, description="source images per shard")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    max_images: int | None = Field(None, ge=1)
    cache_dir: ScratchDir | None = "auto"
    max_image_bytes: MaxImageBytes = MAX_IMAGE_BYTES
    progress: bool = True
    quality_sources: int = Field(500, ge=1, description="sources sampled for the quality report")
    shards: list[int] | None = Field(
        None, description="generate only these shard numbers now (the rest later, or by other processes)"
    )
    # GenView (arXiv 2403.12003, Sec. 3.2): noise each view's condition by its image's foreground share.
    adaptive_noise: bool = Field(False, description="GenView's adaptive noise on the views' conditions")
    noise_edges: tuple[float, ...] = Field(
        (0.2, 0.4, 0.6, 0.8, 1.0), description="right edges of the foreground-ratio bins (adaptive_noise)"
    )
    noise_levels: tuple[float, ...] = Field(
        (0.0, 0.1, 0.2, 0.3, 0.4), description="noise level of each bin (adaptive_noise; see adaptive_noise.py)"
    )
    foreground: ForegroundFitConfig = Field(default_factory=ForegroundFitConfig, description="adaptive_noise")
    external: InputPath | None = Field(
        None, description="local diffusers image-variation pipeline folder, used instead of generator="
    )
    storage: Literal["auto", "pixels", "latents"] = Field(
        "auto",
        description="what the bank stores for a latent generator: uint8 pixels, or fp16 latents decoded "
        "when read (auto: latents only when a pixel bank would not fit in memory)",
    )

    @model_validator(mode="after")
    def _alpha(self) -> GenerateConfig:
        _check_interval("alpha_range", self.alpha_range, 0.0, 1.0)
        if self.views_per_image + self.interpolations_per_image == 0:
            raise ValueError("views_per_image and interpolations_per_image are both 0: nothing to generate")
        if (self.generator is None) == (self.external is None):
            raise ValueError("generator= or external=: give exactly one")
        if self.external is not None and self.encoder is None:
            raise ValueError("external= needs encoder= (the stage-1 encoder: bank resolution and quality report)")
        edges, levels = self.noise_edges, self.noise_levels
        if len(edges) != len(levels) or not edges:
            raise ValueError(f"noise_edges and noise_levels need one level per bin, got {len(edges)} and {len(levels)}")
        if any(b <= a for a, b in itertools.pairwise(edges)) or edges[-1] < 1.0:
            raise ValueError(f"noise_edges must increase strictly and end at >= 1, got {list(edges)}")
        if any(v < 0 for v in levels):
            raise ValueError(f"noise_levels must be >= 0, got {list(levels)}")
        return self


class EvalGeneratorConfig(StrictModel):
    """``gensis eval-generator``: fidelity, diversity and Frechet distance of a view bank."""

    bank: InputPath = Field(..., description="view-bank folder written by gensis generate")
    encoder: InputPath = Field(..., description="the stage-1 encoder the generator was conditioned on")
    data_path: InputPath = Field(..., description="the source images of the bank")
    max_images: int | None = Field(None, ge=1, description="the max_images the bank was generated with")
    max_sources: int = Field(500, ge=1)
    device: str = "auto"
    cache_dir: ScratchDir | None = "auto"
    max_image_bytes: MaxImageBytes = MAX_IMAGE_BYTES
    out: OutputFile | None = Field(None, description="write the JSON here")
    progress: bool = True


class ShowConfig(SamplingConfig):
    """``gensis show``: PNG grids of generated views and interpolations."""

    product: ClassVar[Product] = Product("pictures", holds=("views.png", "interpolations.png"))

    generator: InputPath = Field(..., description="train-generator run folder or exported .safetensors")
    encoder: InputPath | None = Field(None, description="default: the encoder recorded in the generator")
    data_path: InputPath = Field(..., description="source images")
    out: OutputDir = Field(..., description="folder for views.png and interpolations.png")
    rows: int = Field(8, ge=1, le=64, description="source images (views) and pairs (interpolations)")
    views: int = Field(6, ge=1, le=32, description="generated views per source image")
    alphas: int = Field(7, ge=2, le=32, description="interpolation steps from alpha=1 to alpha=0")
    tile_px: int = Field(64, ge=8, le=512, description="each image is drawn at this size")
    progress: bool = True
    seed: int = Field(0, ge=0, le=2**32 - 1)
    device: str = "auto"
    cache_dir: ScratchDir | None = "auto"
    max_image_bytes: MaxImageBytes = MAX_IMAGE_BYTES
