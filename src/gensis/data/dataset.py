"""``ImageData``: a set of square RGB uint8 images with ids and optional labels.

Small images (resolution <= 96) live in memory as one (N, 3, R, R) tensor. Larger ones are
*lazy*: ``images`` is ``None`` and an :class:`~gensis.data.sources.ItemReader` decodes the
requested files on each :meth:`ImageData.batch` call. Use :meth:`ImageData.as_dataset` with a
torch ``DataLoader`` to decode lazy images in worker processes (everything here pickles).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from gensis.errors import DataError

from . import decode
from .sources import ItemReader

log = logging.getLogger("gensis.data")

Indices = torch.Tensor | Sequence[int] | np.ndarray

# ids already reported as unreadable in this process (lazy mode warns once per file)
_warned_lazy: set[tuple[str, str]] = set()


@dataclass(eq=False)
class ImageData:
    """Images, labels and ids of one dataset.

    Attributes:
        images: uint8 (N, 3, R, R) when in memory, else ``None`` (lazy).
        labels: int64 (N,) class indices, or ``None`` when unlabelled.
        class_names: name of each class index, or ``None`` when unlabelled.
        ids: stable id per image: the relative path in the folder/zip (``"cat/0001.jpg"``)
            or ``"npz:<index>"``.
        source: the path the images were read from.
        resolution: R, the side of every image.
        reader: lazy mode only: reads an item's bytes by id.
        strict: lazy mode only: an unreadable file raises :class:`DataError` in
            :meth:`batch`; otherwise it is logged once and returned as a black image.
        content_key: hash of the source items (id, size, and a zip's CRC or a file's sha256; the bytes of an npz).
    """

    images: torch.Tensor | None
    labels: torch.Tensor | None
    class_names: list[str] | None
    ids: list[str]
    source: str
    resolution: int
    reader: ItemReader | None = dataclasses.field(default=None, repr=False)
    strict: bool = False
    # Resolution-independent hash of the source files' content (set by load_images), see fingerprint().
    content_key: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        n, r = len(self.ids), self.resolution
        if self.images is None and self.reader is None:
            raise ValueError("ImageData needs images in memory or a reader for lazy decoding")
        if self.images is not None:
            if self.images.dtype != torch.uint8 or tuple(self.images.shape) != (n, 3, r, r):
                raise ValueError(
                    f"images must be uint8 ({n}, 3, {r}, {r}), got {self.images.dtype} {tuple(self.images.shape)}"
                )
        if self.labels is not None and tuple(self.labels.shape) != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        mode = "in memory" if self.in_memory else "lazy"
        classes = f"{self.num_classes} classes" if self.labels is not None else "unlabelled"
        return f"ImageData({len(self)} images, {self.resolution}px, {classes}, {mode}, source={self.source!r})"

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    @property
    def num_classes(self) -> int | None:
        return None if self.class_names is None else len(self.class_names)

    def fingerprint(self) -> str:
        """sha256 of the ids, labels and source content: what ties a checkpoint or a bank to
        these images, whatever the resolution. A zip's CRCs; a folder's file bytes, hashed as
        the decoder reads them (in memory) or once at load (lazy); an npz's bytes; data built
        in memory without a source hashes its pixels."""
        h = hashlib.sha256(b"gensis-data v1\n")
        h.update(json.dumps(self.ids).encode())
        if self.labels is not None:
            h.update(json.dumps(self.labels.tolist()).encode())
        if self.content_key is not None:
            h.update(self.content_key.encode())
        elif self.images is not None:
            # buffer, no copy (numpy types an array as a Buffer only for Python >= 3.12)
            h.update(self.images.contiguous().numpy())  # type: ignore[arg-type]
        return h.hexdigest()

    def batch(self, indices: Indices) -> torch.Tensor:
        """uint8 (B, 3, R, R) images at ``indices`` (decoded from disk in lazy mode)."""
        idx = _as_index(indices)
        if self.images is not None:
            return self.images[idx]
        r = self.resolution
        out = np.empty((len(idx), 3, r, r), dtype=np.uint8)
        for k, i in enumerate(idx.tolist()):
            out[k] = self._decode(self.ids[i])
        return torch.from_numpy(out)

    def subset(self, indices: Indices) -> ImageData:
        """A new ImageData with only the items at ``indices`` (in that order)."""
        idx = _as_index(indices)
        return dataclasses.replace(
            self,
            images=None if self.images is None else self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            ids=[self.ids[i] for i in idx.tolist()],
        )

    def as_dataset(self) -> ImageDataset:
        """A torch Dataset yielding ``(uint8 (3, R, R) tensor, index)``."""
        return ImageDataset(self)

    def _decode(self, item_id: str) -> np.ndarray:
        assert self.reader is not None
        try:
            try:
                data = self.reader.read(item_id)
            except Exception as err:  # noqa: BLE001 - missing file, bad CRC...
                raise decode.UnreadableImage(decode.one_line(f"cannot read: {err}")) from None
            return decode.decode_image(data, self.resolution)
        except decode.UnreadableImage as err:
            where = self.reader.display(item_id)
            if self.strict:
                raise DataError(f"unreadable image {where}: {err}") from None
            if (self.source, item_id) not in _warned_lazy:
                _warned_lazy.add((self.source, item_id))
                log.warning("unreadable image %s (%s); using a black image instead", where, err)
            r = self.resolution
            return np.zeros((3, r, r), dtype=np.uint8)


class ImageDataset(Dataset):
    """Map-style Dataset over an :class:`ImageData`; items are ``(image, index)``.

    Picklable, so ``DataLoader(num_workers=k)`` decodes lazy images in k processes.
    """

    def __init__(self, data: ImageData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.data.batch([index])[0], index


def _as_index(indices: Indices) -> torch.Tensor:
    idx = torch.as_tensor(indices)
    if idx.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    if idx.dtype == torch.bool:
        return idx.nonzero().flatten()
    if idx.dtype.is_floating_point or idx.dtype.is_complex:
        raise TypeError(f"indices must be integers, got {idx.dtype}")
    return idx.reshape(-1).long()
