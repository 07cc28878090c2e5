"""Read and validate a ``.npz`` dataset: ``images`` plus optional ``labels`` and ``class_names``.

``images`` must be uint8, shaped NHWC with C in {1, 3, 4} or NHW (grayscale). Gray is
repeated to RGB; a 4th channel is alpha and is composited on black, as for image files.
Items keep their array order (ids ``npz:<index>``), which is already deterministic; sorting
the id strings would put ``npz:10`` before ``npz:2``. Labels are renumbered 0..K-1 over the
values present; each class is named by its ``class_names`` entry, else its original value.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gensis.errors import DataError

from .decode import array_to_chw, one_line


@dataclass
class NpzContents:
    images: np.ndarray  # uint8 (N, H, W, C) with C in {1, 3, 4}
    labels: np.ndarray | None  # int64 (N,)
    class_names: list[str] | None


# long: every header check before any allocation, in the order the file is read
def read_npz(path: Path) -> NpzContents:
    """Load and check the arrays; every problem is a one-line :class:`DataError`."""
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        raise DataError(f"cannot read .npz file {path}: {one_line(err)}") from None
    if not is_zip:  # np.load would call a text file "pickled data", and return a bare .npy's array
        raise DataError(f"cannot read .npz file {path}: not an .npz archive (numpy.savez writes a zip of .npy arrays)")
    _check_headers(path)  # before np.load allocates what a header claims
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            if "images" not in keys:
                found = ", ".join(keys) or "none"
                raise DataError(f"{path} has no 'images' array (found: {found})")
            images = npz["images"]
            labels = npz["labels"] if "labels" in keys else None
            names = npz["class_names"] if "class_names" in keys else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read .npz file {path}: {one_line(err)}") from None

    if images.dtype != np.uint8:
        raise DataError(f"'images' in {path} must be uint8, got {images.dtype}")
    stored_shape = tuple(images.shape)
    # (H, H, 3): a square colour image, not H images of H x 3 pixels
    if images.ndim == 3 and images.shape[-1] in (3, 4) and images.shape[0] == images.shape[1] > images.shape[2]:
        raise DataError(
            f"'images' in {path} is shaped {stored_shape}: one (H, W, C) image without the batch "
            "dimension? save images[None], shaped (N, H, W, C)"
        )
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or 0 in images.shape[1:3]:
        raise DataError(
            f"'images' in {path} must be shaped (N, H, W, C) with C in 1, 3, 4 or (N, H, W), got {stored_shape}"
        )
    n = images.shape[0]
    if n == 0:
        raise DataError(f"no images found in {path}")

    label_tensor: np.ndarray | None = None
    class_names: list[str] | None = None
    if labels is not None:
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"'labels' in {path} must be a 1-D integer array, got {labels.dtype} {tuple(labels.shape)}")
        if len(labels) != n:
            raise DataError(f"'labels' in {path} has {len(labels)} entries for {n} images")
        if labels.min() < 0:
            raise DataError(f"'labels' in {path} must be >= 0, got {int(labels.min())}")
        if int(labels.max()) > np.iinfo(np.int64).max:  # uint64 above 2**63 would wrap to negatives
            raise DataError(f"'labels' in {path} must be below 2**63, got {int(labels.max())}")
        # Labels become 0..K-1 over the values present (any values: 7, 9e12...); each class
        # keeps its name (its 'class_names' entry, else the original value), which
        # evaluation matches train and test classes by.
        values, label_tensor = np.unique(labels.astype(np.int64), return_inverse=True)
        label_tensor = label_tensor.reshape(-1).astype(np.int64)
        if names is not None:
            all_names = [str(c) for c in np.asarray(names).reshape(-1)]
            if len(all_names) <= int(values[-1]):
                raise DataError(
                    f"'class_names' in {path} has {len(all_names)} names but 'labels' goes up to {int(values[-1])}"
                )
            class_names = [all_names[int(v)] for v in values]
            seen: dict[str, int] = {}
            for v, name in zip(values, class_names, strict=True):
                if name in seen:  # evaluation matches classes by name: they would merge
                    raise DataError(f"'class_names' in {path} names labels {seen[name]} and {int(v)} both {name!r}")
                seen[name] = int(v)
        else:
            class_names = [str(int(v)) for v in values]
    return NpzContents(images, label_tensor, class_names)


def _check_headers(path: Path) -> None:
    """Each ``.npy`` member's header against the bytes it holds: a 1 KB file that claims a
    1 TiB array is refused before anything is allocated."""
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(f)
                    header = f.tell()
                if dtype.hasobject:
                    raise DataError(f"'{info.filename[:-4]}' in {path} holds Python objects; gensis reads only numbers")
                claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                held = info.file_size - header
                if claimed != held:
                    raise DataError(
                        f"'{info.filename[:-4]}' in {path} claims shape {tuple(shape)} of {dtype} "
                        f"({claimed:,} bytes) but holds {held:,} bytes: a damaged or crafted file"
                    )
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read .npz file {path}: {one_line(err)}") from None


def npz_to_chw(images: np.ndarray, resolution: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, 3, R, R) uint8 RGB (alpha on black, gray repeated)."""
    c = images.shape[-1]
    if c == 4:
        alpha = images[..., 3:4].astype(np.uint16)
        images = ((images[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    elif c == 1:
        images = np.repeat(images, 3, axis=-1)
    n, h, w = images.shape[:3]
    if (h, w) == (resolution, resolution):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    out = np.empty((n, 3, resolution, resolution), dtype=np.uint8)
    for i in range(n):
        out[i] = array_to_chw(images[i], resolution)
    return out
