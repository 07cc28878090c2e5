"""Gray and wide images scaled to 0-255, an unreadable file's reason on one line, a JPEG's DCT draft,
the orientation a file records and the centre square a non-square image is scaled on.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, JpegImagePlugin, PngImagePlugin

from gensis.data.decode import UnreadableImage, _scale_to_uint8, decode_image, one_line


def _u8(values, mode: str) -> list[int]:
    return _scale_to_uint8(np.array(values), mode).tolist()


def test_wide_and_float_gray_images_map_to_0_255_by_their_range() -> None:
    assert _u8([0, 32768, 65535], "I;16") == [0, 128, 255]  # 32768 * 255 / 65535 = 127.502
    assert _u8([0, 1000, 65535], "I;16B") == [0, 4, 255]  # 3.89 -> 4
    assert _u8([0.0, 0.5, 1.0], "F") == [0, 128, 255]  # 0..1 floats: times 255 (127.5 rounds to even 128)
    assert _u8([0.0, 0.2, 1.0], "F") == [0, 51, 255]
    assert _u8([0.0, 100.0, 255.0], "F") == [0, 100, 255]  # already 0..255: kept
    assert _u8([0, 100, 255], "I") == [0, 100, 255]  # 8-bit data stored wide: kept
    assert _u8([0, 1000, 65535], "I") == [0, 4, 255]  # 16-bit data in a 32-bit image
    assert _u8([-10, 0, 10], "I") == [0, 128, 255]  # out of every range: min-max
    assert _u8([0, 70000], "I") == [0, 255]
    assert _u8([2.0, 3.0], "F") == [2, 3]  # over 1 and at most 255: kept as it is
    assert _u8([300.0, 300.0], "F") == [0, 0]  # constant out of range: black, no division by zero
    assert _u8([float("nan"), 1.0], "F") == [0, 255]  # NaN read as 0
    assert _u8([float("inf"), 0.5], "F") == [0, 128]
    assert _scale_to_uint8(np.zeros((0,)), "F").dtype == np.uint8


def test_wide_gray_images_take_the_fixed_16_bit_scale_and_saturate() -> None:
    # 16-bit scale: x * 255 / 65535 = x / 257; 51529 = 257 * 200 + 129 -> 200.502 -> 201, 65000 / 257 = 252.92 -> 253
    # (a min-max stretch would give 51529 * 255 / 65000 = 202.2 -> 202; 256 / 65535 or 255 / 65536 give 254 or 200)
    assert _u8([0, 51529, 65000], "I;16") == [0, 201, 253]
    assert _u8([0, 51529, 65000], "I") == [0, 201, 253]  # 16-bit data in a 32-bit image: the same fixed scale
    assert _u8([0, 100, 255], "I;16") == [0, 0, 1]  # a dark 16-bit image stays dark: 100 / 257 = 0.39, 255 / 257 = 0.99
    assert _u8([1000, 65535], "I") == [4, 255]  # max exactly 65535 is still 16-bit data: 1000 / 257 = 3.89 -> 4
    assert _u8([1000, 65536], "I") == [0, 255]  # one over 16 bits: min-max
    assert _u8([0, 100, 256], "I") == [0, 0, 1]  # one over 8 bits: 16-bit scale, 256 / 257 = 0.996 -> 1
    assert _u8([-1000, 70000], "I;16") == [0, 255]  # -3.89 and 272.4: saturate at 0 and 255, never wrap around
    assert _u8([0.0, 0.75], "F") == [0, 191]  # 0..1 floats: 0.75 * 255 = 191.25
    assert _u8([0.0, 1.5], "F") == [0, 2]  # over 1 and at most 255: kept (1.5 rounds to even 2), not times 255
    assert _u8([-100.0, 50.0, 100.0], "F") == [0, 191, 255]  # min-max: 150 * 255 / 200 = 191.25
    assert _u8([float("-inf"), 0.5], "F") == [0, 128]  # -inf read as 0, then 0..1 floats: 127.5 rounds to even 128


def test_an_unreadable_files_reason_prints_on_one_line() -> None:
    assert one_line("OSError: broken\n  data\tat byte 8 ") == "OSError: broken data at byte 8"
    assert one_line(ValueError("bad  header")) == "bad header"


def test_a_jpeg_is_read_at_the_smallest_dct_scale_that_keeps_the_resolution(monkeypatch) -> None:
    """JPEG decoding asks PIL for a draft no smaller than R x R (the DCT scales by 1/2, 1/4, 1/8 for
    free); a PNG has no draft. The decoded image is R x R either way."""
    asked = []
    for cls in (JpegImagePlugin.JpegImageFile, PngImagePlugin.PngImageFile):
        original = cls.draft

        def spy(self, mode, size, _original=original):
            asked.append((self.format, mode, size))
            return _original(self, mode, size)

        monkeypatch.setattr(cls, "draft", spy)
    for fmt in ("JPEG", "PNG"):
        buf = io.BytesIO()
        Image.new("RGB", (256, 256), (10, 200, 30)).save(buf, format=fmt)
        assert decode_image(buf.getvalue(), 32).shape == (3, 32, 32)
    assert asked == [("JPEG", None, (32, 32))]


def _left_red_right_blue() -> Image.Image:
    im = Image.new("RGB", (16, 16), (255, 0, 0))
    im.paste((0, 0, 255), (8, 0, 16, 16))
    return im


def test_the_orientation_a_camera_or_scanner_recorded_is_applied() -> None:
    """Orientation 3 (rotated 180 degrees) turns left-red/right-blue into left-blue/right-red: in a JPEG's
    EXIF, and in a TIFF's own orientation tag (Pillow applies that one as it loads the TIFF); without it
    the image stays as stored."""
    exif = Image.Exif()
    exif[274] = 3  # Orientation
    stored = {}
    for fmt, kw in (("JPEG", {"exif": exif.tobytes(), "quality": 95}), ("TIFF", {"tiffinfo": {274: 3}})):
        buf = io.BytesIO()
        _left_red_right_blue().save(buf, format=fmt, **kw)
        stored[fmt] = buf.getvalue()
    plain = io.BytesIO()
    _left_red_right_blue().save(plain, format="JPEG", quality=95)
    stored["plain JPEG"] = plain.getvalue()
    for name, data in stored.items():
        rgb = decode_image(data, 16)
        left, right = rgb[:, 8, 2].tolist(), rgb[:, 8, 13].tolist()
        blue_left = left[2] > 200 and left[0] < 50 and right[0] > 200 and right[2] < 50
        assert blue_left == (name != "plain JPEG"), (name, left, right)


def test_every_pil_mode_becomes_8_bit_rgb_with_alpha_on_black() -> None:
    """to_rgb by hand: gray and bilevel repeat their value, a palette gives its colour (a transparent
    index black), alpha is composited on black (128 of 255 over 200 -> 100), 16-bit gray is scaled by
    255/65535, CMYK (0, 0, 0, 0) is white, and an RGB image is returned as it is."""
    from gensis.data.decode import to_rgb

    def px(im: Image.Image) -> tuple:
        out = to_rgb(im)
        assert out.mode == "RGB"
        return out.getpixel((0, 0))

    rgb = Image.new("RGB", (1, 1), (1, 2, 3))
    assert to_rgb(rgb) is rgb
    assert px(Image.new("L", (1, 1), 100)) == (100, 100, 100)
    assert px(Image.new("1", (1, 1), 1)) == (255, 255, 255)

    def palette(transparent: int | None) -> Image.Image:
        im = Image.new("P", (1, 1), 1)
        im.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
        if transparent is not None:
            im.info["transparency"] = transparent
        return im

    assert px(palette(None)) == (10, 20, 30)
    assert px(palette(1)) == (0, 0, 0)
    assert px(palette(0)) == (10, 20, 30)  # another index is transparent: this one keeps its colour
    assert px(Image.new("RGBA", (1, 1), (200, 100, 50, 0))) == (0, 0, 0)
    assert px(Image.new("RGBA", (1, 1), (200, 100, 50, 255))) == (200, 100, 50)
    assert px(Image.new("RGBA", (1, 1), (200, 100, 50, 128))) == (100, 50, 25)
    assert px(Image.new("LA", (1, 1), (200, 128))) == (100, 100, 100)
    assert px(Image.new("I;16", (1, 1), 65535)) == (255, 255, 255)
    assert px(Image.new("I;16", (1, 1), 32768)) == (128, 128, 128)
    assert px(Image.new("F", (1, 1), 0.5)) == (128, 128, 128)
    assert px(Image.new("CMYK", (1, 1), (0, 0, 0, 0))) == (255, 255, 255)


def _ramp(width: int, height: int) -> np.ndarray:
    """Red = 2x (x the column), green 100, blue 2x + 60: a linear ramp that bicubic resampling keeps linear."""
    x = np.arange(width)
    hwc = np.zeros((height, width, 3), np.uint8)
    hwc[..., 0], hwc[..., 1], hwc[..., 2] = 2 * x, 100, 2 * x + 60
    return hwc


def _png(hwc: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(hwc).save(buf, format="PNG")
    return buf.getvalue()


def test_a_wide_or_tall_image_is_scaled_on_its_centre_square() -> None:
    """64 x 16 to R = 8: the centre square is columns 24..40, scaled by 1/2, so output column j samples
    x = 24 + 2 (j + 0.5) - 0.5 = 24.5 + 2j of the ramp 2x: red 49 + 4j, blue 109 + 4j, green 100 (a cubic
    kernel reproduces a line; every tap lies inside the image). The tall image is the same, transposed."""
    j = np.arange(8)
    wide = decode_image(_png(_ramp(64, 16)), 8)
    assert wide.shape == (3, 8, 8) and wide.dtype == np.uint8
    for row in range(8):
        assert wide[0, row].tolist() == (49 + 4 * j).tolist()
        assert wide[2, row].tolist() == (109 + 4 * j).tolist()
    assert (wide[1] == 100).all()
    tall = decode_image(_png(np.ascontiguousarray(_ramp(64, 16).transpose(1, 0, 2))), 8)
    np.testing.assert_array_equal(tall, wide.transpose(0, 2, 1))


def test_an_image_whose_shorter_side_is_r_is_cropped_at_the_rounded_down_centre() -> None:
    """23 x 16 at R = 16: (23 - 16) // 2 = 3, so columns 3..18 as stored (3.5 would round to 4)."""
    hwc = _ramp(23, 16)
    np.testing.assert_array_equal(decode_image(_png(hwc), 16), hwc[:, 3:19].transpose(2, 0, 1))
    tall = np.ascontiguousarray(hwc.transpose(1, 0, 2))
    np.testing.assert_array_equal(decode_image(_png(tall), 16), tall[3:19].transpose(2, 0, 1))


def test_an_unreadable_files_reason_is_exact() -> None:
    """The reason a user reads: unknown bytes, a truncated PNG (the exception's class named), no bytes."""
    whole = _png(_ramp(64, 16))
    for data, reason in (
        (b"hello", "not an image (unknown format)"),
        (whole[: len(whole) // 2], "OSError: image file is truncated"),
        (b"", "empty file"),
    ):
        try:
            decode_image(data, 8)
        except UnreadableImage as err:
            assert str(err) == reason
        else:
            raise AssertionError(f"{data[:8]!r} decoded")
