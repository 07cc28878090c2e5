"""One small interface over OpenSlide and tiffslide (imported lazily: both are optional).

OpenSlide is tried first when it is importable (it reads more vendor formats, e.g. .mrxs),
otherwise tiffslide (pure Python, pip-installable: SVS, generic pyramidal TIFF, NDPI, SCN).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image

from gensis.errors import DataError, GensisError

INSTALL_HINT = 'reading whole-slide images needs tiffslide or openslide: pip install "gensis[wsi]"'


def require_backend() -> Any:
    try:
        import openslide

        return openslide.OpenSlide
    except ImportError:  # also OSError-free: openslide-python raises ImportError without the C library
        pass
    try:
        import tiffslide
    except ImportError:
        raise GensisError(INSTALL_HINT) from None
    return tiffslide.TiffSlide


def _first_float(props: Any, *keys: str) -> float | None:
    """The first key of ``props`` that holds a positive number, as a float."""
    for key in keys:
        try:
            value = float(props.get(key))
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value > 0:
            return value
    return None


class Slide:
    """A whole-slide image: level geometry, resolution metadata and RGB region reads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        opener = require_backend()
        try:
            self._slide = opener(str(path))
            self.dimensions: tuple[int, int] = tuple(self._slide.dimensions)
            self.downsamples: list[float] = [float(d) for d in self._slide.level_downsamples]
        except GensisError:
            raise
        except Exception as exc:  # each backend has its own error types
            raise DataError(f"unreadable slide {self.path}: {_one_line(exc)}") from None

    def close(self) -> None:
        self._slide.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def mpp(self) -> float | None:
        """Level-0 microns per pixel recorded in the file (x axis), or None."""
        return _first_float(self._slide.properties, "openslide.mpp-x", "tiffslide.mpp-x")

    @property
    def objective_power(self) -> float | None:
        return _first_float(self._slide.properties, "openslide.objective-power", "tiffslide.objective-power")

    def best_level(self, downsample: float) -> int:
        """The most downsampled level that is still at least as sharp as ``downsample``."""
        fitting = [i for i, d in enumerate(self.downsamples) if d <= downsample * 1.001]
        return max(fitting, key=lambda i: self.downsamples[i]) if fitting else 0

    def thumbnail(self, max_side: int) -> Image.Image:
        """RGB overview whose longest side is at most ``max_side``, read from a coarse level."""
        width, height = self.dimensions
        scale = max(width, height) / max_side
        if scale <= 1:
            return self.region((0, 0), (width, height), (width, height))
        size = (max(1, round(width / scale)), max(1, round(height / scale)))
        return self.region((0, 0), (width, height), size)

    def region(self, xy: tuple[int, int], size0: tuple[int, int], out: tuple[int, int]) -> Image.Image:
        """The level-0 box ``xy + size0`` as an RGB image of size ``out``, read at the best level."""
        level = self.best_level(min(size0[0] / out[0], size0[1] / out[1]))
        ds = self.downsamples[level]
        read = (max(1, math.ceil(size0[0] / ds - 1e-6)), max(1, math.ceil(size0[1] / ds - 1e-6)))
        try:
            image = _to_rgb(self._slide.read_region(xy, level, read))
        except Exception as exc:
            raise DataError(f"unreadable slide {self.path}: {_one_line(exc)}") from None
        if image.size != out:
            image = image.resize(out, Image.Resampling.LANCZOS)
        return image


def _to_rgb(image: Any) -> Image.Image:
    """OpenSlide returns RGBA with transparent background: composite it on white."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    if image.mode == "RGBA":
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image, mask=image.getchannel("A"))
        return white
    return image.convert("RGB")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
