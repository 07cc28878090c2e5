"""Small pyramidal TIFF slides: H&E-coloured stand-in tiles (pink stroma, purple nuclei) pasted on a
white canvas, written with their pyramid levels as scanners do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

WIDTH, HEIGHT = 2048, 1536
TISSUE = (288, 288, 1248, 960)  # x0, y0, x1, y1 of the pasted H&E block (10 x 7 tiles of 96 px)


def stained_tiles(n: int = 80) -> list[np.ndarray]:
    """H&E-coloured stand-ins (pink stroma, purple nuclei) of PCam's 96-px tiles."""
    rng = np.random.default_rng(0)
    tiles = []
    for _ in range(n):
        t = np.array([225, 150, 200], np.float32) * rng.uniform(0.8, 1.0, (96, 96, 1))
        for y, x in rng.integers(4, 92, (25, 2)):
            t[y - 3 : y + 3, x - 3 : x + 3] = (110, 60, 150)
        tiles.append(t.clip(0, 255).astype(np.uint8))
    return tiles


def make_canvas(tiles: list[np.ndarray], box: tuple[int, int, int, int] = TISSUE) -> np.ndarray:
    """White slide with a block of 96-px H&E tiles pasted at ``box``."""
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    x0, y0, x1, y1 = box
    k = 0
    for y in range(y0, y1, 96):
        for x in range(x0, x1, 96):
            canvas[y : y + 96, x : x + 96] = tiles[k % len(tiles)]
            k += 1
    return canvas


def reduced(canvas: np.ndarray, factor: int) -> np.ndarray:
    """A pyramid level as scanners make it: box-averaged by ``factor``."""
    return np.asarray(Image.fromarray(canvas).reduce(factor)) if factor > 1 else canvas


def write_slide(path: Path, canvas: np.ndarray, mpp: float | None = 0.25, levels: int = 3) -> Path:
    """Pyramidal tiled TIFF (levels as SubIFDs, lossless) that tiffslide reads with its mpp."""
    options = dict(tile=(256, 256), photometric="rgb", compression="zlib", metadata=None)
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        for level in range(levels):
            factor = 2**level
            res = {} if mpp is None else dict(resolution=(1e4 / (mpp * factor),) * 2, resolutionunit="CENTIMETER")
            extra = dict(subifds=levels - 1) if level == 0 else dict(subfiletype=1)
            tw.write(reduced(canvas, factor), **options, **res, **extra)
    return path
