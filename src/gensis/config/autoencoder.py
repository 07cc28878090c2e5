"""Typed configuration of ``gensis train-autoencoder``: the latent space, trained on the user's images.

Same rules as every config: unknown keys are rejected and ranges are checked before any work.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from gensis.config.base import DataConfig, StrictModel
from gensis.config.loggers import LoggersConfig
from gensis.config.paths import InputPath, OutputDir
from gensis.config.products import Product

DEFAULT_PERCEPTUAL = 0.1  # the perceptual weight when an encoder is given (docs/RESULTS.md)


class AutoencoderModelConfig(StrictModel):
    """A diffusers ``AutoencoderKL`` built from scratch (its own blocks; gensis sets only the sizes)."""

    # None: by resolution (:meth:`widths`). Set it to choose the levels (downsampling
    # 2^(levels-1)) and widths yourself.
    block_out_channels: list[int] | None = Field(
        None,
        min_length=2,
        max_length=6,
        description="widths per level; downsampling 2^(levels-1); "
        "null: 16-32-64 (4x) below 128 px, else 32-64-128-128 (8x)",
    )
    layers_per_block: int = Field(1, ge=1, le=4)
    latent_channels: int = Field(4, ge=1, le=64)
    mid_attention: bool = Field(True, description="self-attention in the latent-resolution middle block")

    @model_validator(mode="after")
    def _widths(self) -> AutoencoderModelConfig:
        if self.block_out_channels is None:
            return self
        groups = min(32, self.block_out_channels[0])
        bad = [w for w in self.block_out_channels if w < 1 or w % groups]
        if bad:
            raise ValueError(
                f"block_out_channels: every width must be a multiple of {groups} (GroupNorm groups), got {bad}"
            )
        return self

    def widths(self, resolution: int) -> list[int]:
        """The widths per level at ``resolution``: ``block_out_channels``, or by resolution.

        Below 128 px, 3 levels (4x: 96 px -> 24x24 latents), the autoencoder that
        benchmarks/latent_vs_pixel96.py measured on PCam; an 8x latent of a 96-px tile would be
        12x12. From 128 px, 4 levels (8x: 224 px -> 28x28), the LDM f=8 layout, with the narrow
        widths that train on 2 CPU cores (docs/RESULTS.md, "An autoencoder of your own").
        """
        if self.block_out_channels is not None:
            return list(self.block_out_channels)
        return [16, 32, 64] if resolution < 128 else [32, 64, 128, 128]


class AutoencoderTrainConfig(StrictModel):
    epochs: int = Field(20, ge=1)
    max_steps: int | None = Field(
        None, ge=1, description="stop after this many steps (the lr schedule still spans train.epochs)"
    )
    batch_size: int = Field(16, ge=1)
    # Random crops: the autoencoder is convolutional, so it learns from crops and is used on
    # whole images; 4x fewer pixels per step than 224-px images, at the same images per step.
    crop_size: int | None = Field(64, ge=8, description="random square crops to train on; null: whole images")
    lr: float = Field(1e-3, gt=0, le=1)
    warmup_steps: int = Field(100, ge=0)
    pixel_loss: Literal["l1", "l2"] = Field("l1", description="reconstruction loss in pixels")
    # LDM's KL weight: keeps the latent close to N(0, I) without costing reconstruction.
    kl_weight: float = Field(1e-6, ge=0, le=1)
    # Chosen by measurement (docs/RESULTS.md, "The autoencoder's loss"): +1.2 dB PSNR and +0.04
    # cosine on 224-px lung tiles over L1 alone (3 seeds), at 1.6x the time per step.
    perceptual_weight: float | None = Field(
        None,
        ge=0,
        description="weight of 1 - cosine of the stage-1 embeddings of crop and reconstruction "
        "(needs encoder=); 0: off; null: 0.1 when encoder= is given, else 0",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1)
    device: str = "auto"
    log_every: int = Field(50, ge=1)
    eval_every: int = Field(250, ge=0, description="steps between PSNR checks on held-out images (0: off)")
    eval_images: int = Field(32, ge=1, description="images held out of training for the PSNR check and the report")
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints/last")
    progress: bool = True


class TrainAutoencoderConfig(StrictModel):
    """``gensis train-autoencoder``: an AutoencoderKL from scratch on the user's own images."""

    product: ClassVar[Product] = Product(
        "autoencoder run", "an autoencoder (train-autoencoder)", exports=("autoencoder",), export_marker="gensis.json"
    )

    out: OutputDir = Field("runs/autoencoder", description="run folder")
    encoder: InputPath | None = Field(
        None, description="stage-1 run folder or encoder file: perceptual term and reconstruction retrieval"
    )
    data: DataConfig = Field(default_factory=DataConfig)
    model: AutoencoderModelConfig = Field(default_factory=AutoencoderModelConfig)
    train: AutoencoderTrainConfig = Field(default_factory=AutoencoderTrainConfig)
    loggers: LoggersConfig = Field(default_factory=LoggersConfig)

    @model_validator(mode="after")
    def _perceptual(self) -> TrainAutoencoderConfig:
        if self.train.perceptual_weight is None:  # resolved here, so config.yaml records the value used
            self.train.perceptual_weight = DEFAULT_PERCEPTUAL if self.encoder is not None else 0.0
        if self.train.perceptual_weight > 0 and self.encoder is None:
            raise ValueError("train.perceptual_weight > 0 needs encoder= (the stage-1 encoder's feature space)")
        return self
