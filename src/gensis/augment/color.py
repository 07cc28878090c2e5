"""Batched colour ops for DINO multi-crop: ColorJitter with per-sample order, grayscale.

Part of the batched re-implementation of the views of Caron et al. 2021, "Emerging
Properties in Self-Supervised Vision Transformers" (``DataAugmentationDINO``, which uses
torchvision's ``ColorJitter(0.4, 0.4, 0.2, 0.1)`` and ``RandomGrayscale``). The functional
``adjust_*`` ops follow ``torchvision.transforms.functional`` on float images; see
:mod:`gensis.augment.ops` for the conventions (CPU generator, per-sample masks).
"""

from __future__ import annotations

import torch

__all__ = [
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply_color_jitter",
    "color_jitter",
    "draw_mask",
    "random_grayscale",
    "rgb_to_grayscale",
    "to_device",
]

Factor = float | torch.Tensor
Prob = float | torch.Tensor
JitterRange = float | tuple[float, float]


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a small host tensor to ``device`` without stalling the CUDA stream.

    A plain pageable host->device copy synchronises with the stream; pinning first lets the
    copy be queued behind the image kernels instead.
    """
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def draw_mask(n: int, p: Prob, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(n,)`` CPU bool mask, True with probability ``p`` (float or per-sample tensor).

    Always consumes ``n`` draws, so the random stream does not depend on ``p``.
    """
    if generator is not None and generator.device.type != "cpu":
        raise ValueError("augmentation parameters are drawn on the CPU: pass a CPU generator")
    u = torch.rand(n, generator=generator)
    return u < (p.to(u.dtype) if isinstance(p, torch.Tensor) else float(p))


def _per_sample(f: Factor, x: torch.Tensor) -> torch.Tensor | float:
    """A factor as a broadcastable ``(B, 1, 1, 1)`` device tensor (floats stay floats)."""
    if not isinstance(f, torch.Tensor):
        return float(f)
    return to_device(f.to(x.dtype), x.device).view(-1, 1, 1, 1)


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` luma with the ITU-R 601-2 weights (0.299, 0.587, 0.114)."""
    gray = x[:, 0:1] * 0.299  # accumulate in place: one buffer, three passes
    gray.add_(x[:, 1:2], alpha=0.587)
    return gray.add_(x[:, 2:3], alpha=0.114)


def _blend(x: torch.Tensor, other: torch.Tensor, f: torch.Tensor | float) -> torch.Tensor:
    """``clamp(f * x + (1 - f) * other)`` as one fused pass over ``x``."""
    base = other * (1.0 - f)
    out = torch.addcmul(base, x, f) if isinstance(f, torch.Tensor) else base.add(x, alpha=f)
    return out.clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: Factor) -> torch.Tensor:
    """Scale intensities by ``factor`` (per sample), clamped to [0, 1]."""
    return (x * _per_sample(factor, x)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: Factor) -> torch.Tensor:
    """Blend with the per-image mean of the grayscale image."""
    # mean(gray) = luma weights . per-channel means: one reduction instead of a gray image.
    ch_mean = x.mean(dim=(-2, -1), keepdim=True)
    mean = ch_mean[:, 0:1] * 0.299 + ch_mean[:, 1:2] * 0.587 + ch_mean[:, 2:3] * 0.114
    return _blend(x, mean, _per_sample(factor, x))


def adjust_saturation(x: torch.Tensor, factor: Factor) -> torch.Tensor:
    """Blend with the grayscale image (0 = gray, 1 = unchanged)."""
    return _blend(x, rgb_to_grayscale(x), _per_sample(factor, x))


def adjust_hue(x: torch.Tensor, factor: Factor) -> torch.Tensor:
    """Rotate hue by ``factor`` (fraction of the colour wheel, in [-0.5, 0.5]).

    Same result as torchvision's RGB -> HSV -> shift -> RGB (up to float rounding), with
    fewer passes: value v = max and chroma c = max - min do not change under a hue
    rotation, and a channel is ``v - c * clamp(2 - d, 0, 1)`` where d is the circular
    distance (period 6) between 6 * hue and the channel's centre (R 3, G 5, B 1).
    """
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    v = x.amax(dim=1, keepdim=True)
    c = v - x.amin(dim=1, keepdim=True)
    # Hexcone sextant numerator; the max channel picks the formula, ties prefer red then
    # green like torchvision. lerp with 0/1 weights is an exact select and, unlike
    # torch.where, vectorized on CPU.
    num = (r - g).add_(c, alpha=4.0)
    num.lerp_((b - r).add_(c, alpha=2.0), (v == g).to(x.dtype))
    num.lerp_(g - b, (v == r).to(x.dtype))
    h6 = num.div_(c.clamp_min(1e-12))  # gray pixels: num = 0, hue 0
    h6.add_(_per_sample(factor, x) * 6.0)
    h6.sub_(torch.floor(h6 * (1.0 / 6.0)).mul_(6.0))  # mod 6, cheaper than remainder
    centre = to_device(torch.tensor((3.0, 5.0, 1.0), dtype=x.dtype), x.device).view(1, 3, 1, 1)
    d = (h6 - centre).abs_()
    ramp = torch.minimum(d, 6.0 - d).neg_().add_(2.0).clamp_(0.0, 1.0)
    return torch.addcmul(v, c, ramp, value=-1.0).clamp_(0.0, 1.0)


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def apply_color_jitter(
    x: torch.Tensor,
    factors: torch.Tensor,
    order: torch.Tensor,
    mask: torch.Tensor | None = None,
    active: tuple[bool, bool, bool, bool] = (True, True, True, True),
) -> torch.Tensor:
    """ColorJitter with explicit per-sample parameters (all CPU tensors).

    ``factors`` (B, 4) = (brightness, contrast, saturation, hue shift); ``order`` (B, 4) is a
    permutation of 0..3 per sample (0 brightness, 1 contrast, 2 saturation, 3 hue), applied
    left to right; ``mask`` (B,) selects the jittered samples; ``active`` switches ops off
    entirely, as torchvision does for a zero range. At each of the 4 positions every op runs
    only on the samples that have it there, so the total work is 4 ops over the batch.
    """
    n = x.shape[0]
    mask = torch.ones(n, dtype=torch.bool) if mask is None else mask
    out = x
    for pos in range(4):
        for op_id, op in enumerate(_JITTER_OPS):
            if not active[op_id]:
                continue
            idx = (mask & (order[:, pos] == op_id)).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            if idx.numel() == n:
                out = op(out, factors[:, op_id])
                continue
            if out is x:  # copy once, then update subsets in place
                out = x.clone()
            dev_idx = to_device(idx, x.device)
            out.index_copy_(0, dev_idx, op(out.index_select(0, dev_idx), factors[idx, op_id]))
    return out


def _range(value: JitterRange, center: float, lo: float | None) -> tuple[float, float]:
    if isinstance(value, tuple):
        return (float(value[0]), float(value[1]))
    a = center - value
    return (a if lo is None else max(lo, a), center + value)


def color_jitter(
    x: torch.Tensor,
    brightness: JitterRange,
    contrast: JitterRange,
    saturation: JitterRange,
    hue: JitterRange,
    p: Prob = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """torchvision ``RandomApply([ColorJitter(...)], p)`` with parameters drawn per sample.

    A float ``b`` means factors ~ U[max(0, 1 - b), 1 + b] (hue: shift ~ U[-h, h]); a tuple is
    the range itself. The order of the four ops is a random permutation per sample.
    """
    n = x.shape[0]
    mask = draw_mask(n, p, generator)
    order = torch.argsort(torch.rand(n, 4, generator=generator), dim=1)
    ranges = [
        _range(brightness, 1.0, 0.0),
        _range(contrast, 1.0, 0.0),
        _range(saturation, 1.0, 0.0),
        _range(hue, 0.0, None),
    ]
    lo = torch.tensor([r[0] for r in ranges])
    hi = torch.tensor([r[1] for r in ranges])
    factors = lo + (hi - lo) * torch.rand(n, 4, generator=generator)
    # A zero range is skipped entirely, like torchvision (hue 0 is not bit-exact otherwise).
    active = (ranges[0] != (1.0, 1.0), ranges[1] != (1.0, 1.0), ranges[2] != (1.0, 1.0), ranges[3] != (0.0, 0.0))
    return apply_color_jitter(x, factors, order, mask, active)


def random_grayscale(x: torch.Tensor, p: Prob, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace selected samples by their luma, replicated to every channel."""
    mask = draw_mask(x.shape[0], p, generator)
    if not mask.any():
        return x
    w = to_device(mask.to(x.dtype), x.device).view(-1, 1, 1, 1)
    return torch.lerp(x, rgb_to_grayscale(x).expand_as(x), w)  # 0/1 weights: exact select
