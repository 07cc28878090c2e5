"""Spherical interpolation of SSL embeddings (Gen-SIS, Belagali et al., arXiv 2412.01672).

Gen-SIS mixes two images by conditioning the stage-2 generator on the SLERP of their
L2-normalized embeddings. Convention (as in the paper's notation): ``alpha`` is the share of
the FIRST image,

    SLERP(e1, e2, a) = sin(a W) / sin(W) * e1 + sin((1 - a) W) / sin(W) * e2,

with W the angle between the normalized inputs, so ``a = 1`` gives e1 and ``a = 0`` gives e2.

The formula is evaluated in the equivalent tangent form ``cos((1-a) W) e1 + sin((1-a) W) u``
(u: unit vector in the plane of e1 and e2, orthogonal to e1, pointing to e2), which has no
0/0 at W = 0 and no cancellation near W = pi. Edge cases:

* W ~ 0 (equal inputs): normalized linear interpolation, exact to O(W^3);
* W = pi (e1 = -e2): every great circle joins the two points, so there is no unique answer.
  A fixed perpendicular (the standard basis axis least aligned with e1, orthogonalized) picks
  one; the output stays unit-norm and finite, but is arbitrary. Near-antipodal pairs are
  ill-conditioned by nature: a tiny change of the inputs swings the path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gensis.errors import ConfigError

# Below this angle (radians) the normalized lerp differs from SLERP by < 1e-12.
_SMALL_ANGLE = 1e-4
# Below this norm the component of e2 orthogonal to e1 has no reliable direction.
_TINY_PERP = 1e-6


def _check_alpha(alpha: float | torch.Tensor) -> None:
    a = torch.as_tensor(alpha, dtype=torch.float64)
    # The negated comparison also rejects NaN.
    if not bool(((a >= 0) & (a <= 1)).all()):
        raise ConfigError("alpha must lie in [0, 1]")


def _fixed_perpendicular(a: torch.Tensor) -> torch.Tensor:
    """A unit vector orthogonal to each row of ``a``: the least-aligned axis, orthogonalized."""
    k = a.abs().argmin(dim=-1, keepdim=True)
    axis = torch.zeros_like(a).scatter_(-1, k, 1.0)
    return F.normalize(axis - (axis * a).sum(-1, keepdim=True) * a, dim=-1)


def slerp(e1: torch.Tensor, e2: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation; ``alpha`` is the share of ``e1``.

    e1, e2: (B, D) or (D,), normalized here first. alpha: a float, a 0-d tensor or a (B,)
    tensor. Returns unit-norm vectors with the broadcast shape of the inputs, in their dtype.
    """
    _check_alpha(alpha)
    dtype = torch.promote_types(e1.dtype, e2.dtype)
    # float32 at least: half precision loses the small angles.
    work = torch.promote_types(dtype, torch.float32)
    a = F.normalize(e1.to(work), dim=-1)
    b = F.normalize(e2.to(work), dim=-1)
    a, b = torch.broadcast_tensors(a, b)
    al = torch.as_tensor(alpha, dtype=work, device=a.device)
    if al.dim() > 0:
        al = al.unsqueeze(-1)

    # Kahan's formula: accurate angle at both ends, where acos(dot) is not.
    w = 2.0 * torch.atan2((a - b).norm(dim=-1, keepdim=True), (a + b).norm(dim=-1, keepdim=True))
    dot = (a * b).sum(-1, keepdim=True)
    perp = b - dot * a
    perp_norm = perp.norm(dim=-1, keepdim=True)
    u = torch.where(perp_norm > _TINY_PERP, perp / perp_norm.clamp_min(_TINY_PERP), _fixed_perpendicular(a))
    theta = (1.0 - al) * w  # angle travelled from e1 towards e2
    out = torch.cos(theta) * a + torch.sin(theta) * u
    nlerp = al * a + (1.0 - al) * b
    out = torch.where(w < _SMALL_ANGLE, nlerp, out)
    return F.normalize(out, dim=-1).to(dtype)
