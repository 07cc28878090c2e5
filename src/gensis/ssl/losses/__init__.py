"""SSL losses, one per file; each takes a list of views."""

from gensis.ssl.losses.dino_loss import DINOLoss
from gensis.ssl.losses.disentangle_loss import DisentanglementLoss
from gensis.ssl.losses.gather import gather_no_grad, gather_with_grad
from gensis.ssl.losses.infonce_loss import InfoNCELoss
from gensis.ssl.losses.ntxent_loss import NTXentLoss
from gensis.ssl.losses.quality_weights import (
    foreground_background_pool,
    masked_pool,
    quality_scores,
    quality_weights,
    weighted_mean,
)

__all__ = [
    "DINOLoss",
    "DisentanglementLoss",
    "InfoNCELoss",
    "NTXentLoss",
    "foreground_background_pool",
    "gather_no_grad",
    "gather_with_grad",
    "masked_pool",
    "quality_scores",
    "quality_weights",
    "weighted_mean",
]
