"""Foreground maps from an encoder's own spatial features, by PCA (GenView, Li et al. 2024,
arXiv 2403.12003, Sec. 3.2; xiaojieli0903/genview ``tools/clip_pca``).

GenView projects the patch features of a pretrained encoder on the first principal component
of patch features pooled over many images: one side of that axis is object, the other
background. Here any ``Encoder`` (timm CNN or ViT) supplies the features, so no CLIP model
is needed. Three outputs:

* ``maps``: a soft foreground map per image, the projection min-max scaled to [0, 1] (the
  reference's ``make_foreground_softmask``, used to pool foreground/background features);
* ``masks`` / ``foreground_ratio``: binary foreground and its area share. As in the
  reference (``calculate_fgratio.py``), the threshold is ONE value for the whole data set,
  the ``quantile`` of the projections of the fitting sample. A per-image quantile would give
  every image the same ratio 1 - q and make the ratio useless for GenView's adaptive noise;
  it is available (``per_image_quantile``) for visualizing a fixed share per image.

The sign of a principal component is arbitrary. ``sign=None`` picks it by a center prior:
objects tend to be photographed in the middle, so the foreground is the side whose mean
projection is higher in the central box (middle half of rows and columns) than on the
border ring (outermost eighth, at least one cell) of the fitting images. The heuristic fails
for off-center or frame-filling objects and for maps smaller than 3x3; pass ``sign=+1/-1``
(relative to the component's canonical orientation: largest-magnitude entry positive) then.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gensis.errors import CheckpointError
from gensis.models.backbones import Encoder
from gensis.runtime.io import save_safetensors

_FORMAT = "gensis-foreground-pca-v1"


@torch.no_grad()
def spatial_features(encoder: Encoder, images: torch.Tensor) -> torch.Tensor:
    """Spatial feature map (B, C, h, w) of float images (B, 3, H, W).

    timm CNNs give (B, C, h, w) directly (or channels-last (B, h, w, C), e.g. Swin, which
    is permuted); timm ViTs give tokens (B, N, C): the prefix tokens (class, registers) are
    dropped and the patch tokens reshaped to the patch grid. The encoder runs in eval mode
    (its BatchNorm running statistics must not move) and is put back in its previous mode.
    """
    was_training = encoder.training
    encoder.eval()
    try:
        out = encoder.forward_features(images)
    finally:
        encoder.train(was_training)
    c = encoder.embed_dim
    if out.dim() == 4:
        if out.shape[1] != c and out.shape[-1] == c:
            out = out.permute(0, 3, 1, 2)
        return out.contiguous()
    if out.dim() != 3:
        raise ValueError(f"forward_features gave shape {tuple(out.shape)}; expected 3 or 4 dims")
    model = encoder.backbone
    tokens = out[:, int(getattr(model, "num_prefix_tokens", 0)) :]
    h, w = _token_grid(model, images.shape[-2:], tokens.shape[1])
    return tokens.transpose(1, 2).reshape(out.shape[0], out.shape[-1], h, w).contiguous()


def _token_grid(model: torch.nn.Module, size: torch.Size, n: int) -> tuple[int, int]:
    """Patch grid (h, w) of a ViT for an image of ``size``; a square grid as a fallback."""
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None and hasattr(patch_embed, "dynamic_feat_size"):
        h, w = patch_embed.dynamic_feat_size(tuple(size))
        if h * w == n:
            return int(h), int(w)
    side = round(n**0.5)
    if side * side != n:
        raise ValueError(f"cannot arrange {n} patch tokens in a grid")
    return side, side


def center_border_regions(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean (h, w) masks: central box (middle half of rows/cols) and border ring."""
    center = torch.zeros(h, w, dtype=torch.bool)
    r0, r1 = h // 4, max(h - h // 4, h // 4 + 1)
    c0, c1 = w // 4, max(w - w // 4, w // 4 + 1)
    center[r0:r1, c0:c1] = True
    ring = max(1, min(h, w) // 8)
    border = torch.ones(h, w, dtype=torch.bool)
    border[ring : h - ring, ring : w - ring] = False
    return center, border


def _flatten(features: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N * h * w, C) float32 spatial vectors."""
    if features.dim() != 4:
        raise ValueError(f"expected features (N, C, h, w), got {tuple(features.shape)}")
    return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1]).float()


def _first_component(x: torch.Tensor) -> torch.Tensor:
    """Top eigenvector of the covariance of centered rows x, largest |entry| positive.

    Covariance + eigh (as the reference) is exact and deterministic, and costs n C^2.
    """
    cov = (x.T.double() @ x.double()) / max(x.shape[0] - 1, 1)
    _, vecs = torch.linalg.eigh(cov)
    v = vecs[:, -1]
    v = v * torch.sign(v[v.abs().argmax()])
    return v.float()


class ForegroundPCA:
    def __init__(
        self, quantile: float = 0.65, sign: int | None = None, max_vectors: int = 100_000, seed: int = 0
    ) -> None:
        if not 0.0 <= quantile <= 1.0:
            raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
        if sign not in (None, 1, -1):
            raise ValueError(f"sign must be None, 1 or -1, got {sign}")
        self.quantile = quantile
        self.sign_override = sign
        self.max_vectors = max_vectors
        self.seed = seed
        self.mean: torch.Tensor | None = None
        self.component: torch.Tensor | None = None
        self.sign = 1
        self.threshold = 0.0

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> ForegroundPCA:
        """Fit mean, first component, sign and data-set threshold on (N, C, h, w) features."""
        x = _flatten(features)
        if x.shape[0] > self.max_vectors:
            g = torch.Generator().manual_seed(self.seed)
            x = x[torch.randperm(x.shape[0], generator=g)[: self.max_vectors].to(x.device)]
        self.mean = x.mean(dim=0)
        self.component = _first_component(x - self.mean)
        self.sign = 1
        raw = self.project(features)
        self.sign = self.sign_override if self.sign_override is not None else self._center_sign(raw)
        signed = raw * self.sign
        self.threshold = float(torch.quantile(_sample(signed.flatten(), self.max_vectors, self.seed), self.quantile))
        return self

    @staticmethod
    def _center_sign(proj: torch.Tensor) -> int:
        center, border = center_border_regions(*proj.shape[-2:])
        center, border = center.to(proj.device), border.to(proj.device)
        return 1 if proj[..., center].mean() >= proj[..., border].mean() else -1

    def _require_fit(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None or self.component is None:
            raise RuntimeError("ForegroundPCA is not fitted: call fit() or load() first")
        return self.mean, self.component

    @torch.no_grad()
    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Signed projection on the component, (B, 1, h, w); higher = more foreground."""
        mean, comp = self._require_fit()
        b, _, h, w = features.shape
        x = _flatten(features)
        proj = (x - mean.to(x.device)) @ comp.to(x.device)
        return (proj * self.sign).reshape(b, h, w).unsqueeze(1)

    @torch.no_grad()
    def maps(self, features: torch.Tensor) -> torch.Tensor:
        """Soft foreground map in [0, 1], (B, 1, h, w): projection min-max scaled per image."""
        p = self.project(features)
        lo = p.amin(dim=(2, 3), keepdim=True)
        hi = p.amax(dim=(2, 3), keepdim=True)
        return (p - lo) / (hi - lo + 1e-7)

    @torch.no_grad()
    def masks(self, features: torch.Tensor, per_image_quantile: float | None = None) -> torch.Tensor:
        """Binary foreground (B, 1, h, w): projection above the data-set threshold, or above
        the per-image ``per_image_quantile`` when given."""
        p = self.project(features)
        if per_image_quantile is None:
            return p > self.threshold
        thr = torch.quantile(p.flatten(1), per_image_quantile, dim=1)
        return p > thr.view(-1, 1, 1, 1)

    @torch.no_grad()
    def foreground_ratio(self, features: torch.Tensor, per_image_quantile: float | None = None) -> torch.Tensor:
        """Share of foreground cells per image, (B,) in [0, 1]."""
        return self.masks(features, per_image_quantile).float().mean(dim=(1, 2, 3))

    def state_dict(self) -> dict[str, torch.Tensor]:
        mean, comp = self._require_fit()
        return {
            "mean": mean.detach().cpu().contiguous(),
            "component": comp.detach().cpu().contiguous(),
            "sign": torch.tensor([float(self.sign)]),
            "quantile": torch.tensor([float(self.quantile)]),
            "threshold": torch.tensor([float(self.threshold)]),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> ForegroundPCA:
        self.mean = state["mean"].float()
        self.component = state["component"].float()
        self.sign = int(state["sign"].item())
        self.quantile = float(state["quantile"].item())
        self.threshold = float(state["threshold"].item())
        return self

    def save(self, path: str | Path) -> None:
        """Atomic safetensors file with mean, component, sign, quantile and threshold."""
        state = self.state_dict()
        save_safetensors(path, state, {"format": _FORMAT})

    @classmethod
    def load(cls, path: str | Path) -> ForegroundPCA:
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                fmt = (f.metadata() or {}).get("format")
            state = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise CheckpointError(f"{path}: cannot read foreground PCA file ({exc})") from None
        if fmt != _FORMAT:
            raise CheckpointError(f"{path}: not a foreground PCA file (format {fmt!r})")
        return cls().load_state_dict(state)


def _sample(values: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """At most ``k`` of ``values`` (torch.quantile refuses very large inputs)."""
    if values.numel() <= k:
        return values
    g = torch.Generator().manual_seed(seed)
    return values[torch.randperm(values.numel(), generator=g)[:k].to(values.device)]
