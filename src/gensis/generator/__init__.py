"""Stage 2 of Gen-SIS (arXiv 2412.01672): an embedding-conditioned diffusion generator."""

from gensis.generator.conditioning import EmbeddingConditioner, guided
from gensis.generator.sampling import make_scheduler, sample, training_loss
from gensis.generator.slerp import slerp
from gensis.generator.unet import PRESETS, EmbeddingConditionedUNet, UNetSpec, unet_spec

__all__ = [
    "PRESETS",
    "EmbeddingConditionedUNet",
    "EmbeddingConditioner",
    "UNetSpec",
    "guided",
    "make_scheduler",
    "sample",
    "slerp",
    "training_loss",
    "unet_spec",
]
