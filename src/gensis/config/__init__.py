"""Typed configs, named presets and ``key=value`` overrides."""

from gensis.config.schema import (
    AugmentConfig,
    DataConfig,
    DINOConfig,
    EmbedConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    PretrainConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "DINOConfig",
    "EmbedConfig",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "PretrainConfig",
    "TrainConfig",
]
