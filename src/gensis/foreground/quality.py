"""GenView's quality-driven contrastive loss with the user's own frozen encoder (Li et al.
2024, arXiv 2403.12003, Sec. 3.3). GenView scores pairs with a CLIP ConvNeXt; gensis uses a
frozen SSL encoder, by default the stage-1 one, so nothing external is needed.

The foreground direction is fitted once on a sample of the data set
(:func:`gensis.foreground.fit.fit_foreground`); ``PairQuality`` then weights each pair of a
batch by foreground minus background similarity of its two (augmented) views:
``w = B * softmax(gamma * q)``, mean 1, without gradient.
"""

from __future__ import annotations

import torch

from gensis.foreground.fit import resize_for_encoder
from gensis.foreground.pca import ForegroundPCA, spatial_features
from gensis.models.backbones import Encoder
from gensis.ssl.losses.quality_weights import foreground_background_pool, quality_weights


class PairQuality:
    """Per-pair weights of a batch of two views, from a frozen quality encoder.

    ``view_mean``/``view_std``: the normalization of the views the method trains on; views
    are brought to the quality encoder's own normalization first.
    """

    def __init__(
        self,
        encoder: Encoder,
        pca: ForegroundPCA,
        gamma: float,
        view_mean: tuple[float, ...],
        view_std: tuple[float, ...],
        resolution: int | None = None,
    ) -> None:
        self.encoder = encoder.eval()
        for p in self.encoder.parameters():
            p.requires_grad = False
        self.pca = pca
        self.gamma = gamma
        self.resolution = resolution
        q_mean, q_std = encoder.info.normalization()
        vm, vs, qm, qs = (torch.tensor(v).view(1, 3, 1, 1) for v in (view_mean, view_std, q_mean, q_std))
        self._scale, self._shift = vs / qs, (vm - qm) / qs  # x_q = x * scale + shift

    @torch.no_grad()
    def _pooled(self, view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = view.float() * self._scale.to(view.device) + self._shift.to(view.device)
        feats = spatial_features(self.encoder, resize_for_encoder(x, self.resolution)).float()
        return foreground_background_pool(feats, self.pca.masks(feats).float())

    @torch.no_grad()
    def __call__(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        (fg1, bg1), (fg2, bg2) = self._pooled(view1), self._pooled(view2)
        return quality_weights(fg1, fg2, bg1, bg2, gamma=self.gamma)
