"""Backbones by timm name, behind one embedding API.

``Encoder(x)`` returns one pooled embedding per image (timm's ``num_classes=0``), and
``Encoder.forward_features(x)`` the unpooled map (patch tokens or the last CNN stage), which
later stages use for foreground maps. We never write our own ResNet/ViT: for small images the
ResNet stem is swapped for a 3x3 stride-1 conv without max-pool (the usual CIFAR variant).
"""

from __future__ import annotations

import json
from typing import Any

import timm
import torch
from torch import nn

from gensis.config.schema import ModelConfig
from gensis.errors import ConfigError, GensisError
from gensis.models.metadata import EncoderInfo


class Encoder(nn.Module):
    """A timm backbone that maps images (B, 3, H, W) to pooled embeddings (B, D)."""

    def __init__(self, cfg: ModelConfig, resolution: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.resolution = resolution
        # a timm model: num_features and forward_features are timm's, beyond nn.Module's
        backbone: Any = _create_timm(cfg, resolution)
        self.backbone = backbone
        self.embed_dim: int = int(backbone.num_features)
        self._info: EncoderInfo | None = None

    @property
    def info(self) -> EncoderInfo:
        """The exported file's metadata, typed (set when the encoder is loaded from a file)."""
        if self._info is None:
            raise GensisError(
                "this encoder was built in memory, not loaded from an exported file: it has no "
                "recorded metadata (mean, std, resolution)"
            )
        return self._info

    @info.setter
    def info(self, value: EncoderInfo) -> None:
        self._info = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def metadata(self) -> dict[str, str]:
        """What is needed to rebuild this encoder from an exported file."""
        return {
            "backbone": self.cfg.backbone,
            "cifar_stem": json.dumps(self.cfg.cifar_stem),
            "backbone_kwargs": json.dumps(self.cfg.backbone_kwargs, sort_keys=True),
            "embed_dim": str(self.embed_dim),
            "resolution": str(self.resolution),
        }


def check_model(cfg: ModelConfig, resolution: int) -> None:
    """Refuse a backbone that cannot be built (unknown name, bad kwargs, a CIFAR stem on a model
    without one) before any folder is written: it is built on the meta device, which allocates
    nothing (with ``pretrained`` only the name is checked: the weights would be downloaded)."""
    if cfg.pretrained:
        if cfg.backbone not in timm.list_models() and not timm.is_model(cfg.backbone):
            _create_timm(cfg, resolution)  # raises the one-line error
        return
    with torch.device("meta"):
        _create_timm(cfg, resolution)


def _create_timm(cfg: ModelConfig, resolution: int) -> nn.Module:
    kwargs: dict[str, Any] = dict(cfg.backbone_kwargs)
    if cfg.backbone not in timm.list_models() and not timm.is_model(cfg.backbone):
        raise ConfigError(
            f"model.backbone: unknown timm model {cfg.backbone!r} "
            "(see timm.list_models(), e.g. resnet18, vit_small_patch16_224)"
        )
    is_vit = "vit" in cfg.backbone or "deit" in cfg.backbone
    if is_vit:
        # Global and local crops differ in size: let timm interpolate the position embedding.
        kwargs.setdefault("img_size", resolution)
        kwargs.setdefault("dynamic_img_size", True)
    try:
        model = timm.create_model(cfg.backbone, pretrained=cfg.pretrained, num_classes=0, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.backbone_kwargs: {exc}") from None
    if cfg.cifar_stem:
        _apply_cifar_stem(model, cfg.backbone)
    return model


def _apply_cifar_stem(model: nn.Module, name: str) -> None:
    """3x3 stride-1 first conv, no max-pool: keeps 32-px images at 32x32 into stage 1.

    Works for plain and deep ("d"/"t") timm ResNet stems: the whole stem becomes one conv
    with as many output channels as ``bn1`` expects.
    """
    bn1 = getattr(model, "bn1", None)
    if not hasattr(model, "conv1") or not hasattr(model, "maxpool") or bn1 is None:
        raise ConfigError(f"model.cifar_stem=true needs a timm ResNet (conv1, bn1, maxpool); {name!r} has none")
    model.conv1 = nn.Conv2d(3, bn1.num_features, 3, 1, 1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()


def build_encoder(cfg: ModelConfig, resolution: int) -> Encoder:
    return Encoder(cfg, resolution)
