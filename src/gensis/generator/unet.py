"""Pixel-space UNet conditioned on an SSL embedding (stage 2 of Gen-SIS, arXiv 2412.01672).

The network is diffusers' ``UNet2DModel`` (the DDPM UNet of Ho et al. 2020 with attention
at the lower resolutions). As in RCDM (Bordes et al. 2022, arXiv 2112.09164) and RCG's pixel
generator (Li et al. 2023, arXiv 2312.03701), the embedding enters by being ADDED to the
timestep embedding: with ``class_embed_type="identity"`` diffusers computes
``emb = time_embedding(t) + class_labels`` and feeds ``emb`` to every ResNet block, so
``class_labels`` must already have the time-embedding width (``block_out_channels[0] * 4``).
:class:`EmbeddingConditioner` produces exactly that vector.

That vector then modulates each ResNet block. With ``scale_shift`` (AdaGN, as in ADM and
RCDM: ``resnet_time_scale_shift="scale_shift"``) it gives a per-channel scale and shift
*after* the GroupNorm; without it diffusers adds it as a bias *before* the GroupNorm, which
removes a per-channel bias entirely where a group holds one channel. The old design (bias
before the norm, unscaled embedding) is kept for generators trained with it
(``scale_shift=False, standardize=False``), which still load.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from diffusers.models.unets.unet_2d import UNet2DModel  # its own module: diffusers' top level types it as a dummy
from torch import nn

from gensis.config.generator import TrainGeneratorConfig
from gensis.errors import ConfigError
from gensis.generator.conditioning import EmbeddingConditioner, guided

if TYPE_CHECKING:
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel


@dataclass(frozen=True)
class UNetSpec:
    """Architecture of the stage-2 UNet. ``attention_resolutions`` are in pixels."""

    sample_size: int
    embed_dim: int
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    attention_resolutions: tuple[int, ...] = ()
    channels: int = 3
    p_uncond: float = 0.1
    attention_head_dim: int = 64
    norm_num_groups: int = 32
    dropout: float = 0.0
    conditioning: str = "add"  # "add": to the timestep embedding; "cross_attention": as tokens
    cond_tokens: int = 4  # cross-attention only
    scale_shift: bool = True  # AdaGN: the time+condition vector scales and shifts after each GroupNorm
    standardize: bool = True  # embedding x sqrt(D): unit-variance entries (see EmbeddingConditioner)
    zero_init: bool = False  # the projection's output layer starts at zero

    def __post_init__(self) -> None:
        levels = len(self.block_out_channels)
        if levels < 1 or self.layers_per_block < 1 or self.embed_dim < 1 or self.channels < 1:
            raise ConfigError("UNetSpec needs >= 1 level, layer, embedding dimension and channel")
        if self.sample_size % 2 ** (levels - 1):
            raise ConfigError(
                f"sample_size {self.sample_size} must be divisible by 2**{levels - 1} for {levels} resolution levels"
            )
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ConfigError(f"block_out_channels {c} is not a multiple of norm_num_groups {self.norm_num_groups}")
        unknown = set(self.attention_resolutions) - set(self.resolutions)
        if unknown:
            raise ConfigError(f"attention_resolutions {sorted(unknown)} not among the UNet's {self.resolutions}")
        # diffusers gives a level channels // attention_head_dim heads: 0 heads divides by zero.
        attended = [
            c for c, r in zip(self.block_out_channels, self.resolutions, strict=True) if r in self.attention_resolutions
        ]
        for c in {*attended, self.block_out_channels[-1]}:  # the mid block attends at the last level
            if c < self.attention_head_dim:
                raise ConfigError(
                    f"block_out_channels {c} at an attention level (or the mid block) is below "
                    f"attention_head_dim {self.attention_head_dim}: it would have no attention head"
                )
        if self.conditioning not in ("add", "cross_attention"):
            raise ConfigError(f"conditioning must be 'add' or 'cross_attention', got {self.conditioning!r}")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ConfigError(f"p_uncond must lie in [0, 1], got {self.p_uncond}")

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Feature-map size (px) at each level, top to bottom."""
        return tuple(self.sample_size // 2**i for i in range(len(self.block_out_channels)))

    @property
    def time_embed_dim(self) -> int:
        # UNet2DModel: time_embed_dim = time_embedding_dim or block_out_channels[0] * 4.
        return self.block_out_channels[0] * 4


PRESETS: dict[str, UNetSpec] = {
    # CIFAR-size images: 32 -> 16 -> 8 px, attention at 16 and 8 px (+ the mid block at 8 px),
    # roughly the DDPM CIFAR-10 UNet with one level fewer. embed_dim: ResNet-18's 512.
    "pixel32": UNetSpec(
        sample_size=32,
        embed_dim=512,
        block_out_channels=(128, 256, 256),
        layers_per_block=2,
        attention_resolutions=(16, 8),
        dropout=0.1,
    ),
    # 96-px tiles (STL-10, PCam): one level more than pixel32 (96 -> 48 -> 24 -> 12 px), attention
    # at 24 and 12 px only, where a token sees a tissue structure rather than a few nuclei.
    "pixel96": UNetSpec(
        sample_size=96,
        embed_dim=512,
        block_out_channels=(128, 128, 256, 256),
        layers_per_block=2,
        attention_resolutions=(24, 12),
        dropout=0.1,
    ),
    # LDM-style latents of an 8x-downsampling AutoencoderKL (4 channels; 256-px images -> 32,
    # 224-px -> 28): the pixel32 UNet on 4 channels, as in LDM's small latent models.
    "latent": UNetSpec(
        sample_size=32,
        embed_dim=512,
        channels=4,
        block_out_channels=(128, 256, 256),
        layers_per_block=2,
        attention_resolutions=(16, 8),
        dropout=0.1,
    ),
    # For tests: seconds on one CPU thread.
    "tiny": UNetSpec(
        sample_size=8,
        embed_dim=16,
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_resolutions=(4,),
        attention_head_dim=32,
        norm_num_groups=8,
    ),
}


def unet_spec(name: str, **overrides: Any) -> UNetSpec:
    """A preset with fields replaced, e.g. ``unet_spec("pixel32", embed_dim=384)``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown generator preset {name!r}; choose from {sorted(PRESETS)}")
    try:
        return replace(PRESETS[name], **overrides)
    except TypeError as exc:  # an unknown field name
        raise ConfigError(f"generator preset {name!r}: {exc}") from None


# Spec fields added after the first generators were saved, with the values those were trained
# with: a generator file without them loads as the design it was trained in.
LEGACY_SPEC_FIELDS: dict[str, object] = {"scale_shift": False, "standardize": False, "zero_init": False}


class EmbeddingConditionedUNet(nn.Module):
    """Predicts the noise (or velocity) of ``x_t`` given ``t`` and an embedding."""

    generator_sha256: str  # the file's sha256, set when loaded from one (generator/checkpoint.py)

    def __init__(self, spec: UNetSpec) -> None:
        super().__init__()
        self.spec = spec
        attn = [r in spec.attention_resolutions for r in spec.resolutions]
        self.unet: UNet2DModel | UNet2DConditionModel
        common: dict[str, Any] = dict(
            sample_size=spec.sample_size,
            in_channels=spec.channels,
            out_channels=spec.channels,
            block_out_channels=spec.block_out_channels,
            layers_per_block=spec.layers_per_block,
            attention_head_dim=spec.attention_head_dim,
            norm_num_groups=spec.norm_num_groups,
            dropout=spec.dropout,
            resnet_time_scale_shift="scale_shift" if spec.scale_shift else "default",
        )
        if spec.conditioning == "add":
            down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn)
            up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
            self.unet = UNet2DModel(**common, down_block_types=down, up_block_types=up, class_embed_type="identity")
            # Read the width back from the built model rather than trusting the formula.
            cond_dim = self.unet.time_embedding.linear_2.out_features
        else:
            # LDM-style: the embedding becomes a few tokens that attention layers attend to.
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

            self.token_dim = spec.block_out_channels[0] * 2
            down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn)
            up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
            self.unet = UNet2DConditionModel(
                **common, down_block_types=down, up_block_types=up, cross_attention_dim=self.token_dim
            )
            cond_dim = spec.cond_tokens * self.token_dim
        self.conditioner = EmbeddingConditioner(
            spec.embed_dim, cond_dim, p_uncond=spec.p_uncond, standardize=spec.standardize, zero_init=spec.zero_init
        )

    @property
    def embed_dim(self) -> int:
        return self.spec.embed_dim

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.spec.channels, self.spec.sample_size, self.spec.sample_size)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | int,
        emb: torch.Tensor,
        drop: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Predicted noise (B, C, H, W). ``drop``/``generator``: see ``EmbeddingConditioner``."""
        cond = self.conditioner(emb, drop=drop, generator=generator)
        if self.spec.conditioning == "add":
            return self.unet(x_t, t, class_labels=cond, return_dict=False)[0]
        tokens = cond.view(cond.shape[0], self.spec.cond_tokens, self.token_dim)
        return self.unet(x_t, t, encoder_hidden_states=tokens, return_dict=False)[0]

    def forward_cfg(self, x_t: torch.Tensor, t: torch.Tensor | int, emb: torch.Tensor, scale: float) -> torch.Tensor:
        """Classifier-free guided prediction; both branches run as one batch of 2B."""
        b = x_t.shape[0]
        no_drop = torch.zeros(b, dtype=torch.bool, device=x_t.device)
        if scale == 1:
            return self.forward(x_t, t, emb, drop=no_drop)
        t = torch.as_tensor(t, device=x_t.device)
        if t.dim() == 1 and t.shape[0] == b:
            t = torch.cat([t, t])
        drop = torch.cat([no_drop, torch.ones_like(no_drop)])
        out = self.forward(torch.cat([x_t, x_t]), t, torch.cat([emb, emb]), drop=drop)
        eps_cond, eps_uncond = out.chunk(2)
        return guided(eps_cond, eps_uncond, scale)


def build_unet(cfg: TrainGeneratorConfig, resolution: int, channels: int, embed_dim: int) -> EmbeddingConditionedUNet:
    """The UNet a ``train-generator`` config asks for, at this image (or latent) size and width."""
    base = PRESETS[cfg.model.spec]
    # Keep attention at the same levels of the UNet when the image size differs from the preset.
    levels = [i for i, r in enumerate(base.resolutions) if r in base.attention_resolutions]
    overrides: dict[str, Any] = {
        "sample_size": resolution,
        "channels": channels,
        "embed_dim": embed_dim,
        "p_uncond": cfg.model.p_uncond,
        "conditioning": cfg.model.conditioning,
        "scale_shift": cfg.model.scale_shift,
        "standardize": cfg.model.standardize,
        "zero_init": cfg.model.zero_init,
    }
    if cfg.model.block_out_channels is not None:
        overrides["block_out_channels"] = tuple(cfg.model.block_out_channels)
    if cfg.model.layers_per_block is not None:
        overrides["layers_per_block"] = cfg.model.layers_per_block
    n_levels = len(overrides.get("block_out_channels", base.block_out_channels))
    overrides["attention_resolutions"] = tuple(resolution // 2**i for i in levels if i < n_levels)
    return EmbeddingConditionedUNet(unet_spec(cfg.model.spec, **overrides))
