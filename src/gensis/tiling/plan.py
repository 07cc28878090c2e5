"""Which level-0 boxes of a slide become tiles: target downsample, grid, tissue filter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gensis.config.tiling import TileConfig
from gensis.errors import DataError
from gensis.tiling.slide import Slide
from gensis.tiling.tissue import TissueFraction, tissue_mask

# Microscopy convention: a 10x objective images about 1 micron per pixel (20x ~ 0.5, 40x ~ 0.25).
MICRONS_AT_1X = 10.0
# Scanners rarely hit round numbers (a "0.25 mpp" scan is often 0.2527): allow a slight upsample.
MAX_UPSAMPLE = 0.9


@dataclass(frozen=True)
class TileBox:
    x: int  # level-0 left
    y: int  # level-0 top
    size: int  # level-0 side of the square region
    tissue: float  # fraction of tissue pixels in the region


@dataclass(frozen=True)
class SlidePlan:
    downsample: float  # level-0 pixels per output pixel
    mpp: float | None  # microns per output pixel, when known
    boxes: list[TileBox]


def target_downsample(cfg: TileConfig, slide: Slide) -> tuple[float, float | None]:
    """(level-0 px per output px, output mpp) for the requested mpp or magnification."""
    slide_mpp = cfg.slide_mpp or slide.mpp
    if cfg.mpp is None and cfg.magnification is None:
        return 1.0, slide_mpp
    if cfg.mpp is not None or slide_mpp is not None:
        target = cfg.mpp if cfg.mpp is not None else MICRONS_AT_1X / cfg.magnification  # type: ignore[operator]
        if slide_mpp is None:
            raise DataError(
                f"slide {slide.path} records no resolution (microns per pixel); "
                "pass slide_mpp=<level-0 mpp> to tile it at a given mpp"
            )
        return target / slide_mpp, target
    power = slide.objective_power
    if power is None:
        raise DataError(
            f"slide {slide.path} records no resolution (no mpp, no objective power); "
            "pass slide_mpp=<level-0 mpp> to tile it at a given magnification"
        )
    return power / cfg.magnification, None  # type: ignore[operator]


def plan_slide(cfg: TileConfig, slide: Slide) -> SlidePlan:
    """Grid the slide at the target scale and keep the boxes with enough tissue."""
    downsample, mpp = target_downsample(cfg, slide)
    if downsample < MAX_UPSAMPLE:
        raise DataError(
            f"slide {slide.path}: requested resolution is finer than the scan "
            f"(would upsample {1 / downsample:.2f}x); ask for a larger mpp or smaller magnification"
        )
    size0 = max(1, round(cfg.tile_size * downsample))
    stride0 = max(1, round((cfg.tile_size - cfg.overlap) * downsample))
    width, height = slide.dimensions
    mask = tissue_mask(slide.thumbnail(cfg.tissue_level_px))
    if not mask.any():
        return SlidePlan(downsample, mpp, [])
    fraction = TissueFraction(mask, (width, height))
    boxes = []
    for y in range(0, height - size0 + 1, stride0):
        for x in range(0, width - size0 + 1, stride0):
            tissue = fraction(x, y, size0)
            if tissue >= cfg.min_tissue:
                boxes.append(TileBox(x, y, size0, tissue))
    return SlidePlan(downsample, mpp, spread_subset(boxes, cfg.max_tiles_per_slide))


def spread_subset(boxes: list[TileBox], limit: int | None) -> list[TileBox]:
    """At most ``limit`` boxes, evenly spread over the slide's reading order (deterministic)."""
    if limit is None or len(boxes) <= limit:
        return boxes
    keep = np.unique(np.linspace(0, len(boxes) - 1, limit).round().astype(int))
    return [boxes[i] for i in keep]
