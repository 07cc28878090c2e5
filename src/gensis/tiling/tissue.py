"""Tissue detection: Otsu threshold on HSV saturation of a slide thumbnail.

Stained tissue is coloured (high saturation) while glass, background and most scanner
artefacts are white or grey (low saturation), so one global threshold on saturation
separates them on H&E slides (the usual CLAM / HistoQC first pass).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Below this saturation (0-255) a pixel is never tissue: keeps Otsu from splitting the
# JPEG noise of an all-white slide into "tissue" and "background".
MIN_SATURATION = 20


def otsu_threshold(values: np.ndarray) -> int:
    """The 0-255 threshold that maximises the between-class variance of ``values`` (uint8)."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0
    levels = np.arange(256, dtype=np.float64)
    weight_low = np.cumsum(hist)
    weight_high = total - weight_low
    mass_low = np.cumsum(hist * levels)
    mean_low = mass_low / np.maximum(weight_low, 1)
    mean_high = (mass_low[-1] - mass_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return int(np.argmax(between))  # pixels <= threshold are the low class


def tissue_mask(thumbnail: Image.Image) -> np.ndarray:
    """Boolean (H, W) mask of tissue pixels in an RGB thumbnail."""
    saturation = np.asarray(thumbnail.convert("HSV"))[..., 1]
    threshold = max(otsu_threshold(saturation), MIN_SATURATION)
    mask = saturation > threshold
    # Closing fills pale nuclei holes, opening drops isolated specks (dust, noise).
    mask = _erode(_dilate(mask))
    return _dilate(_erode(mask))


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation: nine shifted ORs (PIL's rank filter is ~10x slower)."""
    height, width = mask.shape
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + height, dx : dx + width]
    return out


def _erode(mask: np.ndarray) -> np.ndarray:
    return ~_dilate(~mask)


class TissueFraction:
    """Fraction of tissue inside any level-0 box, in O(1) per box (summed-area table)."""

    def __init__(self, mask: np.ndarray, level0_size: tuple[int, int]) -> None:
        self.height, self.width = mask.shape
        self.scale_x = self.width / level0_size[0]
        self.scale_y = self.height / level0_size[1]
        padded = np.zeros((self.height + 1, self.width + 1), dtype=np.int64)
        padded[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
        self.table = padded

    def __call__(self, x: int, y: int, size: int) -> float:
        x0, x1 = self._span(x, size, self.scale_x, self.width)
        y0, y1 = self._span(y, size, self.scale_y, self.height)
        t = self.table
        inside = t[y1, x1] - t[y0, x1] - t[y1, x0] + t[y0, x0]
        return float(inside) / ((x1 - x0) * (y1 - y0))

    @staticmethod
    def _span(start: int, size: int, scale: float, limit: int) -> tuple[int, int]:
        """Mask cells covered by ``[start, start + size)``, at least one cell."""
        lo = min(int(start * scale), limit - 1)
        hi = min(max(lo + 1, round((start + size) * scale)), limit)
        return lo, hi
