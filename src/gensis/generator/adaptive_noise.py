"""GenView's adaptive noise level (Li et al. 2024, arXiv 2403.12003, Sec. 3.2;
xiaojieli0903/genview ``tools/clip_pca/generate_ada_noise_level.py``).

GenView conditions unCLIP on a noised image embedding and picks the noise level per image
from its foreground proportion: an image whose object is small gets little noise (a strongly
perturbed condition easily yields a view without the object, a false positive pair), an image
dominated by its object can take more noise, hence more diverse views. The reference bins the
ratio at 0.2, 0.4, 0.6, 0.8 and maps the bins to unCLIP noise-augmentation timesteps 0, 100,
..., 400.

Our generator has no unCLIP noise augmentation, so a level here is the size of an isotropic
Gaussian perturbation of the L2-normalized conditioning embedding:

    perturb(e, l) = normalize(normalize(e) + l * n / sqrt(D)) * ||e||,   n ~ N(0, I_D).

The 1/sqrt(D) makes ``||n|| / sqrt(D) ~ 1`` for any dimension D, so ``l`` is the noise norm
relative to the unit embedding whatever the encoder: for large D the noise is nearly
orthogonal to e and rotates it by about atan(l) (0.4 -> ~22 degrees); the norm of e is kept
so the conditioning scale the generator was trained on does not change.

Binning: edges are inclusive on the right (ratio <= 0.2 -> bin 0, 0.2 < ratio <= 0.4 ->
bin 1, ..., <= 1.0 -> last bin); ratios outside [0, 1] are clipped. (The reference's
``np.digitize`` is inclusive on the left; the two differ only for ratios exactly on an edge.)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

DEFAULT_EDGES: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
DEFAULT_LEVELS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4)


def _check_bins(edges: Sequence[float], levels: Sequence[float]) -> None:
    if len(edges) != len(levels) or not edges:
        raise ValueError(f"need one level per bin: {len(edges)} edges, {len(levels)} levels")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"edges must increase strictly, got {list(edges)}")
    if edges[-1] < 1.0:
        raise ValueError(f"the last edge must be >= 1 so that every ratio has a bin, got {edges[-1]}")
    if any(v < 0 for v in levels):
        raise ValueError(f"noise levels must be >= 0, got {list(levels)}")


def noise_bin(ratio: torch.Tensor, edges: Sequence[float] = DEFAULT_EDGES) -> torch.Tensor:
    """Bin index (long, shape of ``ratio``) of each foreground ratio; right-inclusive edges."""
    r = torch.as_tensor(ratio)
    r = (r if r.is_floating_point() else r.float()).clamp(0.0, 1.0)
    # Edges in the ratio's own dtype: float32(0.2) must fall in the bin that ends at 0.2.
    bounds = torch.tensor(list(edges), dtype=r.dtype, device=r.device)
    # bucketize(right=False): index i with bounds[i-1] < r <= bounds[i].
    return torch.bucketize(r, bounds, right=False).clamp_max(len(edges) - 1)


def noise_level_for_ratio(
    ratio: torch.Tensor, edges: Sequence[float] = DEFAULT_EDGES, levels: Sequence[float] = DEFAULT_LEVELS
) -> torch.Tensor:
    """Noise level (float32, shape of ``ratio``) for each foreground ratio; more foreground,
    more noise with the default levels."""
    _check_bins(edges, levels)
    idx = noise_bin(ratio, edges)
    return torch.tensor(list(levels), dtype=torch.float32, device=idx.device)[idx]


def perturb_embedding(
    e: torch.Tensor, level: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Noise ``e`` (B, D) or (D,) on its sphere; ``level``: a float or one per row (B,).

    Keeps ``||e||``; level 0 returns ``e`` unchanged. ``generator`` must live on e's device.
    """
    work = torch.promote_types(e.dtype, torch.float32)
    x = e.to(work)
    lv = torch.as_tensor(level, dtype=work, device=e.device)
    if bool((lv < 0).any()):
        raise ValueError("noise level must be >= 0")
    if lv.dim() > 0:
        lv = lv.unsqueeze(-1)
    d = x.shape[-1]
    noise = torch.randn(x.shape, generator=generator, dtype=work, device=e.device)
    norm = x.norm(dim=-1, keepdim=True)
    out = F.normalize(F.normalize(x, dim=-1) + lv * noise / d**0.5, dim=-1) * norm
    return torch.where(lv == 0, x, out).to(e.dtype)
