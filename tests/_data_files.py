"""Image-file helpers shared by the data tests (test_data.py, test_data_cache.py)."""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

from PIL import Image

from gensis.data import ImageData


def encode(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def put(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def solid(color, size=(8, 8), mode="RGB", fmt="PNG") -> bytes:
    return encode(Image.new(mode, size, color), fmt)


def px(data: ImageData, item_id: str, y: int = 0, x: int = 0) -> tuple[int, ...]:
    """RGB at (y, x) of the image with ``item_id``."""
    i = data.ids.index(item_id)
    return tuple(int(v) for v in data.batch([i])[0, :, y, x])


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gensis.data" and r.levelno == logging.WARNING]


def labelled_tree(tmp_path: Path) -> Path:
    """Two classes, a nested file, hidden and non-image files, an uppercase extension."""
    root = tmp_path / "labelled"
    put(root, "dog/b.png", solid((0, 0, 255)))
    put(root, "dog/a.PNG", solid((0, 255, 0)))
    put(root, "cat/sub/deep.jpg", solid((200, 10, 10), fmt="JPEG"))
    put(root, "cat/x.bmp", solid((1, 2, 3), fmt="BMP"))
    put(root, "cat/.hidden.png", solid((9, 9, 9)))
    put(root, ".git/objects/z.png", solid((9, 9, 9)))
    put(root, "cat/notes.txt", b"not an image, ignored silently")
    put(root, "README.md", b"# ignored")
    return root


def with_bad_files(root: Path) -> None:
    jpg = solid((10, 200, 30), size=(64, 64), fmt="JPEG")
    put(root, "a/good.png", solid((1, 2, 3)))
    put(root, "a/empty.png", b"")
    put(root, "a/text.jpg", b"this is not a jpeg at all")
    put(root, "b/good.jpg", jpg)
    put(root, "b/trunc.jpg", jpg[: len(jpg) // 2])
    put(root, "b/trunc2.png", encode(Image.new("RGB", (64, 64), (3, 3, 3)))[:60])
