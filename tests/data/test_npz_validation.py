"""An ``.npz`` is checked before use: array headers against the bytes held (nothing allocated
for a crafted header), a missing batch dimension, labels that would wrap, repeated class names."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gensis.cli import main
from gensis.data.npz import read_npz
from gensis.errors import DataError


def _crafted(path: Path, shape: tuple[int, ...], payload: int) -> Path:
    """An npz whose 'images' header claims ``shape`` but whose data is ``payload`` bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", buf.getvalue() + b"\0" * payload)
    return path


def test_a_header_that_claims_more_than_the_file_holds_is_refused_before_allocating(tmp_path, capsys) -> None:
    bad = _crafted(tmp_path / "huge.npz", (1 << 20, 1024, 1024, 3), 1000)  # claims 3 PiB, holds 1 KB
    code = main(["pretrain", "-q", "preset=digits", f"data.path={bad}", f"out={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert (
        f"'images' in {bad} claims shape (1048576, 1024, 1024, 3) of uint8 (3,298,534,883,328 bytes) "
        "but holds 1,000 bytes" in lines[0]
    )
    assert not (tmp_path / "run").exists()
    short = _crafted(tmp_path / "short.npz", (4, 8, 8, 3), 4 * 8 * 8 * 3 - 1)  # one byte missing
    with pytest.raises(DataError, match="holds 767 bytes"):
        read_npz(short)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"images": np.zeros((32, 32, 3), np.uint8)}, "one (H, W, C) image without the batch dimension"),
        (
            {"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([1, 2**63 + 5], np.uint64)},
            "must be below 2**63, got 9223372036854775813",
        ),
        (
            {
                "images": np.zeros((3, 8, 8, 3), np.uint8),
                "labels": np.array([0, 1, 2]),
                "class_names": np.array(["cat", "dog", "cat"]),
            },
            "names labels 0 and 2 both 'cat'",
        ),
        ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0.0, 1.0])}, "must be a 1-D integer array"),
    ],
)
def test_malformed_arrays_are_refused_with_one_line(tmp_path, arrays, message) -> None:
    np.savez(tmp_path / "x.npz", **arrays)
    with pytest.raises(DataError) as err:
        read_npz(tmp_path / "x.npz")
    assert message in str(err.value) and str(tmp_path / "x.npz") in str(err.value)


def test_valid_files_still_load(tmp_path) -> None:
    np.savez_compressed(
        tmp_path / "ok.npz",
        images=np.zeros((4, 8, 8), np.uint8),
        labels=np.array([3, 3, 7, 7], np.uint64),
        class_names=np.array([str(i) for i in range(8)]),
    )
    got = read_npz(tmp_path / "ok.npz")
    assert got.images.shape == (4, 8, 8, 1) and got.labels.tolist() == [0, 0, 1, 1] and got.class_names == ["3", "7"]
