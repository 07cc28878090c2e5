"""Whole-slide tiling throughput of ``gensis tile`` (tiles/s, one slide, one process).

By default the slide is synthetic but made of real tissue: a 20,000 x 20,000 px pyramidal
JPEG TIFF at 0.25 mpp whose central ellipse (60% of the area) is a mosaic of real PCam H&E
tiles, the rest white glass, like a 40x scan. ``--slide PATH`` measures a real slide instead.
Tiles are 224 px at 0.5 mpp (448 level-0 px each, read from the 2x level).

    python benchmarks/tile_throughput.py --pcam ../shared/data/pcam/train.zip
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from _common import emit, header
from PIL import Image

from gensis.tiling import Slide, tile

TILE = 256  # TIFF tile side


def pcam_mosaic(zip_path: str, side_tiles: int = 32) -> np.ndarray:
    """A (side*96)^2 mosaic of real PCam tiles, spread over the archive."""
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))
        step = max(1, len(names) // side_tiles**2)
        tiles = [np.asarray(Image.open(io.BytesIO(zf.read(n))).convert("RGB")) for n in names[::step]]
    rows = [np.concatenate(tiles[r * side_tiles : (r + 1) * side_tiles], axis=1) for r in range(side_tiles)]
    return np.concatenate(rows, axis=0)


def level_tiles(mosaic: np.ndarray, size: int, factor: int, tissue_area: float) -> Iterator[np.ndarray]:
    """The 256-px TIFF tiles of one pyramid level, generated on the fly (no full image in RAM)."""
    side = mosaic.shape[0]
    radius = math.sqrt(tissue_area * 4 / math.pi) * size / 2  # ellipse area = tissue_area * size^2
    n = math.ceil(size / factor / TILE)
    for ty in range(n):
        ys = (np.arange(ty * TILE, (ty + 1) * TILE) * factor)[:, None]
        for tx in range(n):
            xs = (np.arange(tx * TILE, (tx + 1) * TILE) * factor)[None, :]
            inside = (ys - size / 2) ** 2 + (xs - size / 2) ** 2 <= radius**2
            block = mosaic[ys % side, xs % side]
            block[~inside] = 255
            yield block


def write_slide(path: Path, mosaic: np.ndarray, size: int, mpp: float, tissue_area: float) -> None:
    import tifffile

    factors = [2**k for k in range(8) if size / 2**k >= 1024]
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for i, f in enumerate(factors):
            level = math.ceil(size / f)
            extra = dict(subifds=len(factors) - 1) if i == 0 else dict(subfiletype=1)
            tw.write(
                level_tiles(mosaic, size, f, tissue_area),
                shape=(level, level, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": 90},
                resolution=(1e4 / (mpp * f),) * 2,
                resolutionunit="CENTIMETER",
                metadata=None,
                **extra,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--slide", default=None, help="a real slide instead of the synthetic one")
    p.add_argument("--pcam", default="../shared/data/pcam/train.zip")
    p.add_argument("--size", type=int, default=20000, help="synthetic slide side (px)")
    p.add_argument("--format", default="png", choices=["png", "jpeg"])
    p.add_argument("--zip", action="store_true", help="write one .zip instead of a folder")
    p.add_argument("--out", default=None, help="append the JSON result to this file")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="gensis-tile-bench-") as tmp:
        slide = Path(args.slide) if args.slide else Path(tmp) / "synthetic.tif"
        t0 = time.perf_counter()
        if not args.slide:
            write_slide(slide, pcam_mosaic(args.pcam), args.size, mpp=0.25, tissue_area=0.6)
        write_s = time.perf_counter() - t0
        with Slide(slide) as s:
            dims, downsamples, slide_mpp = s.dimensions, s.downsamples, s.mpp
        out = Path(tmp) / ("tiles.zip" if args.zip else "tiles")
        result = tile(slides=str(slide), out=str(out), tile_size=224, mpp=0.5, format=args.format)
        out_bytes = out.stat().st_size if args.zip else sum(f.stat().st_size for f in out.rglob("*") if f.is_file())

    emit(
        {
            **header("tile_throughput", torch.device("cpu")),
            "slide": args.slide or f"synthetic {args.size}x{args.size} px, real PCam tissue on 60%, JPEG q90",
            "slide_px": list(dims),
            "slide_mpp": slide_mpp,
            "level_downsamples": downsamples,
            "slide_write_s": round(write_s, 1),
            "request": f"224 px tiles at 0.5 mpp, min_tissue 0.5, {args.format}, {'zip' if args.zip else 'folder'}",
            "tiles": result.n_tiles,
            "seconds": result.seconds,
            "tiles_per_s": result.tiles_per_s,
            "output_mb": round(out_bytes / 1e6, 1),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
