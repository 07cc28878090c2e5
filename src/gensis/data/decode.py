"""Turn the bytes of one image file into an RGB uint8 array of shape (3, R, R).

Every PIL mode ends up as 8-bit RGB:

* alpha (LA, RGBA, PA, P with a transparent colour) is **composited on black**: a pixel with
  alpha ``a`` becomes ``colour * a / 255``, so fully transparent pixels are black;
* 16-bit images (``I;16*``) are scaled by 255/65535, never clipped; 32-bit ``I`` and ``F``
  images are scaled by their value range (see :func:`_scale_to_uint8`);
* L, 1, P, CMYK, YCbCr are converted with PIL's own conversions.

Geometry: EXIF orientation is applied, then the image is resized so its shorter side equals
``R`` (bicubic, antialiased) and centre-cropped to ``R x R``. Both steps happen in one PIL
``resize`` call on the centred square box, which equals resize-then-crop without rounding the
crop offset. An image that is already ``R x R`` is never resampled, and one whose shorter side
is already ``R`` is only cropped. Large JPEGs are decoded at a reduced DCT scale (``draft``)
when that still leaves at least ``R`` pixels on each side.

Any failure (empty file, unknown format, truncated data, unsupported mode) raises
:class:`UnreadableImage` with a short one-line reason.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


class UnreadableImage(Exception):
    """The file is not a decodable image; ``str(err)`` is the one-line reason."""


def decode_image(data: bytes, resolution: int) -> np.ndarray:
    """Decode encoded image bytes to a C-contiguous uint8 array of shape (3, R, R)."""
    if len(data) == 0:
        raise UnreadableImage("empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG":
                im.draft(None, (resolution, resolution))  # cheap DCT downscale, never below R
            im.load()  # raises OSError on truncated data (LOAD_TRUNCATED_IMAGES stays off)
            if im.format != "JPEG" or "exif" in im.info:  # most JPEGs carry no EXIF: skip
                ImageOps.exif_transpose(im, in_place=True)
            rgb = fit_square(to_rgb(im), resolution)
            arr = np.asarray(rgb, dtype=np.uint8)
    except UnidentifiedImageError:
        raise UnreadableImage("not an image (unknown format)") from None
    except UnreadableImage:
        raise
    except Exception as err:  # noqa: BLE001 - malformed files raise many exception types
        raise UnreadableImage(one_line(f"{type(err).__name__}: {err}")) from None
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited on black)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in _HIGH_DEPTH_MODES:
        gray = _scale_to_uint8(np.asarray(im), mode)
        return Image.fromarray(gray).convert("RGB")
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        black = Image.new("RGB", rgba.size, (0, 0, 0))
        black.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return black
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, ...; raises for modes PIL cannot convert


def _scale_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """Map a 16/32-bit or float gray image to 0..255 without clipping.

    ``I;16*``: fixed scale 255/65535. ``I``: kept as is when the values fit 0..255 (8-bit data
    stored wide), scaled by 255/65535 when they fit 0..65535 (16-bit data), else min-max.
    ``F``: values in 0..1 are multiplied by 255, values in 0..255 kept, else min-max.
    """
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode.startswith("I;16"):
        scaled = a * (255.0 / 65535.0)
    elif mode == "F" and lo >= 0 and hi <= 1:
        scaled = a * 255.0
    elif lo >= 0 and hi <= 255:
        scaled = a
    elif mode == "I" and lo >= 0 and hi <= 65535:
        scaled = a * (255.0 / 65535.0)
    else:
        scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def fit_square(im: Image.Image, resolution: int) -> Image.Image:
    """Resize so the shorter side is ``resolution`` and centre-crop to a square."""
    w, h = im.size
    r = resolution
    if (w, h) == (r, r):
        return im
    s = min(w, h)
    if s == r:  # already the right scale: an integer crop, no resampling
        left, top = (w - s) // 2, (h - s) // 2
        return im.crop((left, top, left + s, top + s))
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
    return im.resize((r, r), Image.Resampling.BICUBIC, box=box, reducing_gap=None)


def array_to_chw(hwc: np.ndarray, resolution: int) -> np.ndarray:
    """Make one uint8 HWC RGB array ``resolution``-square, as :func:`decode_image` would."""
    h, w = hwc.shape[:2]
    if (h, w) != (resolution, resolution):
        hwc = np.asarray(fit_square(Image.fromarray(hwc), resolution), dtype=np.uint8)
    return np.ascontiguousarray(hwc.transpose(2, 0, 1))


def one_line(text: object) -> str:
    """Collapse whitespace so a message prints on one line (an exception: its str)."""
    return " ".join(str(text).split())
