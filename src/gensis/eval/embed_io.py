"""Embedding files that any tool opens, chosen by the out file's suffix.

    .safetensors   embeddings (N, D) and labels, ids and class names in the metadata (gensis's own)
    .npy           embeddings (N, D) float32, plus <stem>.csv: one row per image
    .csv           one row per image (file, label, class, e0..e{D-1}), plus <stem>.npy
    .parquet       one row per image (file, label, class, embedding as a list), plus <stem>.npy

Rows follow the order of the .npy rows; ``label`` and ``class`` are left out for unlabelled images.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gensis.config.schema import EMBED_SUFFIXES as SUFFIXES  # noqa: F401 (re-exported)
from gensis.config.schema import OWNERSHIP_FORMAT, embedding_paths, ownership_sidecar
from gensis.errors import ConfigError
from gensis.runtime.io import atomic_path, file_sha256, save_safetensors, write_result_json
from gensis.runtime.products import vouched_digests
from gensis.runtime.trust import display

if TYPE_CHECKING:
    from gensis.config.schema import EmbedConfig


def write_embeddings(
    out: str | Path,
    feats: torch.Tensor,
    ids: list[str],
    labels: torch.Tensor | None,
    class_names: list[str] | None,
    metadata: dict[str, str],
) -> list[Path]:
    """Write ``feats`` (N, D) in the format named by ``out``'s suffix; returns the files written."""
    paths = embedding_paths(out)
    if paths[0].suffix.lower() == ".safetensors":
        tensors = {"embeddings": feats.contiguous()}
        if labels is not None:
            tensors["labels"] = labels.contiguous()
        save_safetensors(paths[0], tensors, metadata)  # byte-deterministic, like every gensis file
        return paths
    if paths[1].suffix.lower() == ".parquet":
        _check_pyarrow(paths[1])  # before anything is written
    array = feats.float().numpy()
    names = None if labels is None or not class_names else [class_names[i] for i in labels.tolist()]
    lab = None if labels is None else labels.tolist()
    # The proof that gensis wrote these two files: their sha256 in a marked sidecar. It is written
    # before either file is replaced and vouches for the old and the new contents alike, so a stop
    # between the two renames leaves no file of ours unvouched (then it is narrowed to the new).
    sidecar = ownership_sidecar(paths[0])
    with atomic_path(paths[0]) as npy_tmp, atomic_path(paths[1]) as table_tmp:
        with open(npy_tmp, "wb") as f:
            np.save(f, array)
        if paths[1].suffix.lower() == ".csv":
            table_tmp.write_text(_csv(array, ids, lab, names), encoding="utf-8", errors="surrogateescape")
        else:
            _write_parquet(table_tmp, array, ids, lab, names, metadata)
        new = {paths[0].name: file_sha256(npy_tmp), paths[1].name: file_sha256(table_tmp)}
        before = vouched_digests(sidecar)
        write_result_json(
            sidecar,
            {
                "format": OWNERSHIP_FORMAT,
                "files": {name: sorted({digest, *before.get(name, [])}) for name, digest in new.items()},
            },
        )
    write_result_json(sidecar, {"format": OWNERSHIP_FORMAT, "files": new})
    return [*paths, sidecar]


def _csv(array: np.ndarray, ids: list[str], labels: list[int] | None, names: list[str] | None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["file"] + (["label"] if labels is not None else []) + (["class"] if names is not None else [])
    w.writerow(head + [f"e{j}" for j in range(array.shape[1])])
    for i, row in enumerate(array):
        cells: list = [ids[i]]
        if labels is not None:
            cells.append(labels[i])
        if names is not None:
            cells.append(names[i])
        w.writerow(cells + [repr(float(v)) for v in row])  # repr: float32 values read back exactly
    return buf.getvalue()


def _check_pyarrow(path: Path) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError(f"out: {path}: writing Parquet needs pyarrow (pip install pyarrow), or use .csv") from None


def _write_parquet(
    path: Path,
    array: np.ndarray,
    ids: list[str],
    labels: list[int] | None,
    names: list[str] | None,
    metadata: dict[str, str],
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Parquet strings must be UTF-8: a name that is not is written with its odd bytes as \xNN.
    cols: dict = {"file": pa.array([display(i) for i in ids], pa.string())}
    if labels is not None:
        cols["label"] = pa.array(labels, pa.int64())
    if names is not None:
        cols["class"] = pa.array([display(n) for n in names], pa.string())
    flat = pa.array(np.ascontiguousarray(array).reshape(-1), pa.float32())
    cols["embedding"] = pa.FixedSizeListArray.from_arrays(flat, array.shape[1])
    table = pa.table(cols).replace_schema_metadata(
        {k.encode(): v.encode() for k, v in metadata.items() if k != "ids"}
    )  # the ids are the file column
    pq.write_table(table, str(path))


def read_embeddings_table(path: str | Path) -> tuple[list[dict], np.ndarray]:
    """Rows (file, label, class) and the embeddings of a .csv written by :func:`write_embeddings` (tests, scripts)."""
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        rows = list(csv.DictReader(f))
    dims = [k for k in (rows[0] if rows else {}) if k.startswith("e") and k[1:].isdigit()]
    array = np.array([[float(r[k]) for k in dims] for r in rows], dtype=np.float32)
    return [{k: v for k, v in r.items() if k not in dims} for r in rows], array


def run_embed(cfg: EmbedConfig) -> Path:
    """``gensis embed``: embeddings (N, D) of ``cfg.data_path`` with their image ids (and labels
    when present) in the format ``cfg.out``'s suffix picks (see the module docstring)."""
    from gensis.data import load_images
    from gensis.eval.features import encoder_embeddings
    from gensis.runtime.checkpoint import load_encoder, resolve_encoder_path
    from gensis.runtime.device import resolve_device
    from gensis.runtime.io import file_sha256

    embedding_paths(cfg.out)  # a bad suffix fails before the encoder runs
    device = resolve_device(cfg.device)
    encoder = load_encoder(cfg.encoder, device)
    data = load_images(
        cfg.data_path,
        cfg.resolution or encoder.info.resolution,
        cache_dir=cfg.cache_dir,
        max_images=cfg.max_images,
        progress=cfg.progress,
        max_image_bytes=cfg.max_image_bytes,
    )
    feats = encoder_embeddings(
        encoder,
        data,
        device=device,
        batch_size=cfg.batch_size,
        normalize=cfg.normalize,
        progress=cfg.progress,
        desc="embed",
    )
    file_meta = {
        "format": "gensis.embeddings/1",
        "ids": json.dumps(data.ids),
        "source": data.source,
        "encoder": str(cfg.encoder),
        "normalized": json.dumps(cfg.normalize),
        "encoder_sha256": file_sha256(resolve_encoder_path(cfg.encoder)),
    }
    if data.class_names:
        file_meta["class_names"] = json.dumps(data.class_names)
    write_embeddings(cfg.out, feats, data.ids, data.labels, data.class_names, file_meta)
    return Path(cfg.out)
