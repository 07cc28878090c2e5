"""Batched image ops with per-sample random parameters, for DINO multi-crop.

Re-implements the hand-crafted views of Caron et al. 2021, "Emerging Properties in
Self-Supervised Vision Transformers" (``DataAugmentationDINO`` of facebookresearch/dino)
as tensor ops over a whole batch, so they run on the compute device instead of in
DataLoader workers.

Conventions shared by every op:

* images are float ``(B, C, H, W)`` in ``[0, 1]`` on any device;
* random parameters come from a CPU ``torch.Generator`` and are moved to the image device
  afterwards: they are tiny, a seed then gives the same views on CPU and GPU, and masks and
  indices are known on the host, so no op needs a device -> host synchronisation;
* ``p`` is a probability, either one float or a ``(B,)`` CPU tensor of per-sample values;
* samples that are not selected come back bit-identical (an op may return its input).

Colour ops live in :mod:`gensis.augment.color` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from gensis.augment.color import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_color_jitter,
    color_jitter,
    draw_mask,
    random_grayscale,
    rgb_to_grayscale,
    to_device,
)

__all__ = [
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply_color_jitter",
    "color_jitter",
    "draw_mask",
    "gaussian_blur",
    "gaussian_blur_sigma",
    "normalize",
    "random_grayscale",
    "random_hflip",
    "random_resized_crop",
    "random_rot90",
    "random_solarize",
    "random_vflip",
    "resized_crop",
    "rgb_to_grayscale",
    "sample_crop_boxes",
    "to_device",
]

Prob = float | torch.Tensor
Range = tuple[float, float]
Generator = torch.Generator | None


def _select(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample select: ``a`` where the CPU mask is set, else ``b``.

    ``lerp`` with 0/1 weights is an exact select (``b + 0 * d`` and ``a - d * 0``) and,
    unlike ``torch.where``, vectorized on CPU.
    """
    if not mask.any():
        return b
    if mask.all():
        return a
    w = to_device(mask.to(a.dtype), a.device).view(-1, 1, 1, 1)
    return torch.lerp(b, a, w)


def _apply_subset(
    x: torch.Tensor, mask: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Run ``fn(x[idx], idx)`` on the selected samples only and scatter the result back.

    Used where the work should shrink with ``p`` (blur, solarize); ``idx`` is on the CPU.
    """
    idx = mask.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    if idx.numel() == x.shape[0]:
        return fn(x, idx)
    dev_idx = to_device(idx, x.device)
    return x.clone().index_copy_(0, dev_idx, fn(x.index_select(0, dev_idx), idx))


# ----------------------------------------------------------------------------- crops
def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: Range,
    ratio: Range = (3 / 4, 4 / 3),
    generator: Generator = None,
    attempts: int = 10,
) -> torch.Tensor:
    """``(n, 4)`` CPU boxes ``(x0, y0, x1, y1)`` in pixels, torchvision's RandomResizedCrop rule.

    Each sample gets ``attempts`` candidates (area fraction ~ U(scale), log-uniform aspect
    ratio) at once; the first that fits is kept, else the same center crop as torchvision.
    """
    f64 = torch.float64
    area = float(height * width)
    frac = torch.empty(n, attempts, dtype=f64).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(n, attempts, dtype=f64).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = log_r.exp()
    w = torch.round(torch.sqrt(area * frac * aspect))
    h = torch.round(torch.sqrt(area * frac / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # first True (or 0 if none)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    # Center-crop fallback, clipping the aspect ratio into `ratio` like torchvision.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    ok = fits.any(dim=1)
    w = torch.where(ok, w, float(fw))
    h = torch.where(ok, h, float(fh))
    u = torch.rand(n, 2, dtype=f64, generator=generator)
    top = torch.where(ok, torch.floor(u[:, 0] * (height - h + 1)), float((height - fh) // 2))
    left = torch.where(ok, torch.floor(u[:, 1] * (width - w + 1)), float((width - fw) // 2))
    return torch.stack([left, top, left + w, top + h], dim=1).float()


def resized_crop(
    x: torch.Tensor, boxes: torch.Tensor, size: int, batch_index: torch.Tensor | None = None
) -> torch.Tensor:
    """Crop ``boxes`` (K, 4) from images ``batch_index`` (K,) of ``x`` and resize to ``size``.

    One ``roi_align`` call for all crops. Chosen over ``affine_grid + grid_sample`` because it
    averages several bilinear samples per output pixel when shrinking (anti-aliasing), and with
    the adaptive ``sampling_ratio=-1`` (ceil(crop / size) samples per bin and axis) it is plain
    bilinear interpolation when enlarging and bit-exact for a full-image crop at the same size;
    a fixed ``sampling_ratio=2`` would blur even that identity crop. DINO uses bicubic PIL
    resizing; bilinear + box averaging is the batched stand-in.
    """
    if batch_index is None:
        batch_index = torch.arange(boxes.shape[0])
    if boxes.shape[0] == 0:
        return x.new_zeros(0, x.shape[1], size, size)
    rois = torch.cat([batch_index.to(boxes.dtype).unsqueeze(1), boxes], dim=1)
    rois = to_device(rois.to(x.dtype), x.device)
    return roi_align(x, rois, (size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def random_resized_crop(
    x: torch.Tensor, size: int, scale: Range, ratio: Range = (3 / 4, 4 / 3), generator: Generator = None
) -> torch.Tensor:
    """``(B, C, size, size)``: one RandomResizedCrop per sample, all resized in one call."""
    boxes = sample_crop_boxes(x.shape[0], x.shape[-2], x.shape[-1], scale, ratio, generator)
    return resized_crop(x, boxes, size)


# ----------------------------------------------------------------------------- geometry
def random_hflip(x: torch.Tensor, p: Prob, generator: Generator = None) -> torch.Tensor:
    """Mirror left-right the samples drawn with probability ``p``."""
    return _select(draw_mask(x.shape[0], p, generator), x.flip(-1), x)


def random_vflip(x: torch.Tensor, p: Prob, generator: Generator = None) -> torch.Tensor:
    """Mirror top-bottom the samples drawn with probability ``p``."""
    return _select(draw_mask(x.shape[0], p, generator), x.flip(-2), x)


def random_rot90(x: torch.Tensor, p: Prob, generator: Generator = None) -> torch.Tensor:
    """Rotate selected samples by k * 90 degrees, k uniform in {1, 2, 3}; square images only."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"random_rot90 needs square images, got {tuple(x.shape[-2:])}")
    mask = draw_mask(x.shape[0], p, generator)
    k = torch.randint(1, 4, (x.shape[0],), generator=generator)
    out = x
    for turns in (1, 2, 3):  # three cheap full-batch selects beat per-sample indexing
        sel = mask & (k == turns)
        if sel.any():
            out = _select(sel, x.rot90(turns, dims=(-2, -1)), out)
    return out


# ----------------------------------------------------------------------------- blur, solarize
def gaussian_blur_sigma(x: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Blur sample i with a Gaussian of std ``sigma[i]`` (CPU tensor), truncated at ``radius``.

    Separable: one grouped conv per axis over ``(1, B*C, H, W)`` with one kernel per sample
    and channel; reflect padding like PIL / torchvision. The radius is capped so that the
    kernel fits inside the image (reflect padding needs it).
    """
    n, c, h, w = x.shape
    radius = min(radius, (min(h, w) - 1) // 2)
    if n == 0 or radius <= 0:
        return x
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    s = sigma.detach().to("cpu", torch.float64).clamp_min(1e-6).unsqueeze(1)
    kern = torch.exp(-0.5 * (t / s) ** 2)
    kern = kern.masked_fill(kern < 1e-12, 0.0)  # float32 denormals make CPU convs crawl
    kern = (kern / kern.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)
    kern = to_device(kern.to(x.dtype), x.device)
    size = 2 * radius + 1
    # Pad both axes once: reflecting rows commutes with the horizontal pass.
    y = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4, mode="reflect")
    y = F.conv2d(y, kern.view(n * c, 1, 1, size), groups=n * c)
    y = F.conv2d(y, kern.view(n * c, 1, size, 1), groups=n * c)
    return y.view(n, c, h, w).clamp_(0.0, 1.0)  # weights sum to 1 only up to rounding


def gaussian_blur(x: torch.Tensor, p: Prob, sigma_range: Range, generator: Generator = None) -> torch.Tensor:
    """Blur selected samples with sigma ~ U(sigma_range); radius = ceil(3 * max sigma).

    The radius comes from the range, not from the draws, so shapes do not depend on them.
    Only the selected samples are convolved, so a small ``p`` costs little.
    """
    mask = draw_mask(x.shape[0], p, generator)
    sigma = torch.empty(x.shape[0], dtype=torch.float64)
    sigma.uniform_(sigma_range[0], sigma_range[1], generator=generator)
    radius = math.ceil(3 * sigma_range[1])
    return _apply_subset(x, mask, lambda sub, idx: gaussian_blur_sigma(sub, sigma[idx], radius))


def random_solarize(x: torch.Tensor, p: Prob, threshold: float = 0.5, generator: Generator = None) -> torch.Tensor:
    """Selected samples: pixels ``>= threshold`` become ``1 - pixel`` (PIL ImageOps.solarize)."""
    mask = draw_mask(x.shape[0], p, generator)

    def solarize(s: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return torch.lerp(s, 1.0 - s, (s >= threshold).to(s.dtype))  # 0/1 weights: exact

    return _apply_subset(x, mask, solarize)


def normalize(
    x: torch.Tensor, mean: tuple[float, ...] | torch.Tensor, std: tuple[float, ...] | torch.Tensor
) -> torch.Tensor:
    """``(x - mean) / std`` per channel."""
    m = to_device(torch.as_tensor(mean, dtype=x.dtype), x.device).view(1, -1, 1, 1)
    s = to_device(torch.as_tensor(std, dtype=x.dtype), x.device).view(1, -1, 1, 1)
    return (x - m) / s
