"""SSL losses, one per file; each takes a list of views."""

from gensis.ssl.losses.dino_loss import DINOLoss

__all__ = ["DINOLoss"]
