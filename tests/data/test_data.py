"""Tests for gensis.data: sources, decoding, errors and the demo set (cache and lazy mode:
test_data_cache.py)."""

from __future__ import annotations

import logging
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _data_files import encode, put, px, solid, warnings_of, with_bad_files
from PIL import Image

from gensis.data import demo_digits, load_images
from gensis.data.loader import subset_indices
from gensis.errors import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


# ---------------------------------------------------------------- decoding


def test_pil_modes_become_rgb(tmp_path: Path) -> None:
    root = tmp_path / "modes"
    palette = Image.new("P", (6, 6))
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.paste(1, (0, 0, 6, 6))
    files = {
        "rgba_red.png": solid((255, 0, 0, 255), mode="RGBA"),
        "rgba_clear.png": solid((255, 0, 0, 0), mode="RGBA"),
        "la.png": solid((128, 255), mode="LA"),
        "l.png": solid(77, size=(1, 1), mode="L"),
        "p.gif": encode(palette, "GIF"),
        "i16.png": encode(Image.fromarray(np.full((5, 40), 65535, np.uint16))),
        "i16_mid.png": encode(Image.fromarray(np.full((4, 4), 257 * 100, np.uint16))),
        "i32.tif": solid(65535, mode="I", fmt="TIFF"),
        "cmyk.tif": solid((0, 255, 255, 0), mode="CMYK", fmt="TIFF"),
        "one.png": solid(1, mode="1"),
        "big.jpg": solid((9, 99, 199), size=(300, 200), fmt="JPEG"),
        "gray.pgm": solid(50, mode="L", fmt="PPM"),
        "w.webp": encode(Image.new("RGB", (20, 10), (50, 60, 70)), "WEBP", lossless=True),
    }
    for name, data in files.items():
        put(root, name, data)
    data = load_images(root, 16, cache_dir=None, progress=False)
    assert data.images is not None and data.images.shape == (len(files), 3, 16, 16)
    assert data.images.dtype == torch.uint8 and data.labels is None and data.class_names is None
    assert data.ids == sorted(files)
    assert px(data, "rgba_red.png") == (255, 0, 0)
    assert px(data, "rgba_clear.png") == (0, 0, 0)  # alpha composited on black
    assert px(data, "la.png") == (128, 128, 128)
    assert px(data, "l.png", 7, 9) == (77, 77, 77)  # 1x1 upsampled
    assert px(data, "p.gif") == (0, 255, 0)
    assert px(data, "i16.png", 3, 3) == (255, 255, 255)  # scaled, 65535 -> 255
    assert px(data, "i16_mid.png") == (100, 100, 100)  # scaled, not clipped
    assert px(data, "i32.tif") == (255, 255, 255)
    assert px(data, "cmyk.tif") == (255, 0, 0)
    assert px(data, "one.png") == (255, 255, 255)
    assert max(abs(a - b) for a, b in zip(px(data, "big.jpg", 8, 8), (9, 99, 199), strict=True)) <= 3
    assert px(data, "gray.pgm") == (50, 50, 50)
    assert px(data, "w.webp") == (50, 60, 70)


def test_resize_and_centre_crop(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    exact = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    tall = rng.integers(0, 256, (24, 16, 3), dtype=np.uint8)
    wide = np.zeros((5, 40, 3), np.uint8)
    wide[:, :] = (255, 0, 0)
    wide[:, 10:30] = (0, 255, 0)  # the centre crop keeps only this band
    root = tmp_path / "geom"
    put(root, "exact.png", encode(Image.fromarray(exact)))
    put(root, "tall.png", encode(Image.fromarray(tall)))
    put(root, "wide.png", encode(Image.fromarray(wide)))
    data = load_images(root, 16, cache_dir=None, progress=False)
    get = lambda name: data.batch([data.ids.index(name)])[0].permute(1, 2, 0).numpy()  # noqa: E731
    np.testing.assert_array_equal(get("exact.png"), exact)  # same size: not resampled
    np.testing.assert_array_equal(get("tall.png"), tall[4:20])  # shorter side = R: crop only
    out = get("wide.png")
    assert out.shape == (16, 16, 3)
    assert (out[..., 1] >= 250).all() and (out[..., 0] <= 5).all()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = (255, 0, 0)
    arr[:, 10:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display = rotate 90 degrees clockwise
    put(tmp_path / "exif", "r.jpg", encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif))
    data = load_images(tmp_path / "exif", 10, cache_dir=None, progress=False)
    img = data.images[0]
    # upright it is 10 wide x 20 tall with red on top; the centre crop keeps rows 5..15
    assert img[0, 1, 5] > 200 and img[2, 1, 5] < 60
    assert img[2, 8, 5] > 200 and img[0, 8, 5] < 60


# ---------------------------------------------------------------- sources and layout


def test_labelled_folder(labelled: Path, caplog) -> None:
    data = load_images(labelled, 8, cache_dir=None, progress=False, require_labels=True)
    assert data.ids == ["cat/sub/deep.jpg", "cat/x.bmp", "dog/a.PNG", "dog/b.png"]
    assert data.class_names == ["cat", "dog"] and data.num_classes == 2
    assert data.labels.tolist() == [0, 0, 1, 1] and data.labels.dtype == torch.int64
    assert data.source == str(labelled) and data.resolution == 8 and data.in_memory
    assert px(data, "dog/a.PNG") == (0, 255, 0)
    assert warnings_of(caplog) == []  # hidden and non-image files are ignored silently


def test_unlabelled_and_mixed_folders(tmp_path: Path, caplog) -> None:
    put(tmp_path / "flat", "b.png", solid((1, 1, 1)))
    put(tmp_path / "flat", "a.png", solid((2, 2, 2)))
    flat = load_images(tmp_path / "flat", 8, cache_dir=None, progress=False)
    assert flat.ids == ["a.png", "b.png"] and flat.labels is None and flat.num_classes is None
    assert warnings_of(caplog) == []
    put(tmp_path / "mixed", "root.png", solid((1, 1, 1)))
    put(tmp_path / "mixed", "cls/x.png", solid((2, 2, 2)))
    mixed = load_images(tmp_path / "mixed", 8, cache_dir=None, progress=False)
    assert mixed.labels is None and mixed.ids == ["cls/x.png", "root.png"]
    (msg,) = warnings_of(caplog)
    assert "unlabelled" in msg and "ignored" in msg
    with pytest.raises(DataError, match="has no labels: put images in one subfolder per class"):
        load_images(tmp_path / "mixed", 8, cache_dir=None, require_labels=True)


def test_labelled_zip(tmp_path: Path) -> None:
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("1/z.png", solid((0, 0, 255)))
        zf.writestr("0/a.jpg", solid((255, 0, 0), fmt="JPEG"))
        zf.writestr("0/deep/b.png", solid((0, 255, 0)))
        zf.writestr("0/", b"")  # a directory entry
        zf.writestr("__MACOSX/0/._a.jpg", b"resource fork")
        zf.writestr("0/readme.txt", b"ignored")
    data = load_images(path, 8, cache_dir=None, progress=False, require_labels=True)
    assert data.ids == ["0/a.jpg", "0/deep/b.png", "1/z.png"]
    assert data.class_names == ["0", "1"] and data.labels.tolist() == [0, 0, 1]
    assert px(data, "1/z.png") == (0, 0, 255) and px(data, "0/deep/b.png") == (0, 255, 0)


def test_npz_sources(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "l.npz", images=rgb, labels=np.array([2, 0, 1, 2, 0]), class_names=np.array(["a", "b", "c"]))
    data = load_images(tmp_path / "l.npz", 8, cache_dir=None, require_labels=True)
    assert data.ids == [f"npz:{i}" for i in range(5)] and data.class_names == ["a", "b", "c"]
    assert data.labels.tolist() == [2, 0, 1, 2, 0]
    np.testing.assert_array_equal(data.images.numpy(), rgb.transpose(0, 3, 1, 2))

    gray = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)  # NHW grayscale, no labels
    np.savez(tmp_path / "g.npz", images=gray)
    g = load_images(tmp_path / "g.npz", 8, cache_dir=None)
    assert g.labels is None and g.class_names is None and g.images.shape == (3, 3, 8, 8)
    assert all(torch.equal(g.images[:, c], torch.from_numpy(gray)) for c in range(3))
    g16 = load_images(tmp_path / "g.npz", 16, cache_dir=None, max_images=2)
    keep = subset_indices(3, 2)
    assert g16.images.shape == (2, 3, 16, 16) and g16.ids == [f"npz:{i}" for i in keep]
    g8 = load_images(tmp_path / "g.npz", 8, cache_dir=None, max_images=2)
    assert torch.equal(g8.images[:, 0], torch.from_numpy(gray[keep]))

    rgba = np.zeros((2, 4, 4, 4), np.uint8)
    rgba[0] = (255, 0, 0, 255)
    rgba[1] = (255, 0, 0, 0)
    np.savez(tmp_path / "a.npz", images=rgba, labels=np.array([1, 0]))
    a = load_images(tmp_path / "a.npz", 4, cache_dir=None)
    assert a.images[0, :, 0, 0].tolist() == [255, 0, 0] and a.images[1].max() == 0
    assert a.class_names == ["0", "1"]  # names default to the label values


def test_deterministic_order_and_max_images(tmp_path: Path) -> None:
    root = tmp_path / "order"
    for name in ["k/9.png", "a/3.png", "k/10.png", "a/1.png", "b/2.png"]:
        put(root, name, solid((5, 5, 5)))
    first = load_images(root, 8, cache_dir=None, progress=False)
    second = load_images(root, 8, cache_dir=None, progress=False)
    assert first.ids == second.ids == sorted(first.ids)
    few = load_images(root, 8, cache_dir=None, progress=False, max_images=3)
    # A fixed pseudo-random subset, kept in id order (not the first N, which would be one class).
    assert few.ids == [first.ids[i] for i in subset_indices(5, 3)]
    assert few.ids == load_images(root, 8, cache_dir=None, progress=False, max_images=3).ids
    assert few.class_names == ["a", "b", "k"]  # classes of the whole source keep their index
    assert few.labels.tolist() == [first.labels[i].item() for i in subset_indices(5, 3)]


# ---------------------------------------------------------------- bad input


def test_unreadable_files_are_skipped_with_one_warning(tmp_path: Path, caplog) -> None:
    with_bad_files(tmp_path / "bad")
    data = load_images(tmp_path / "bad", 8, cache_dir=None, progress=False)
    assert data.ids == ["a/good.png", "b/good.jpg"] and data.labels.tolist() == [0, 1]
    (msg,) = warnings_of(caplog)
    assert msg == (f"skipped 4 unreadable images in {tmp_path / 'bad'}: a/empty.png, a/text.jpg, b/trunc.jpg, ...")


def test_strict_raises_on_first_unreadable(tmp_path: Path) -> None:
    with_bad_files(tmp_path / "bad")
    with pytest.raises(DataError, match=r"a/empty\.png: empty file") as err:
        load_images(tmp_path / "bad", 8, cache_dir=None, strict=True, progress=False)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=r"b/trunc\.jpg: .*runcated"):
        load_images(tmp_path / "bad" / "b", 8, cache_dir=None, strict=True, progress=False)


def test_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder: .*nope"):
        load_images(tmp_path / "nope", 8)
    for name in ["x.tar", "x.rar", "x.txt", "x.png"]:
        (tmp_path / name).write_bytes(b"data")
        with pytest.raises(DataError, match=f"{name}.*a folder of images, a .zip"):
            load_images(tmp_path / name, 8)
    (tmp_path / "bad.zip").write_bytes(b"PK not really a zip")
    with pytest.raises(DataError, match="cannot read zip archive .*bad.zip"):
        load_images(tmp_path / "bad.zip", 8)
    (tmp_path / "empty").mkdir()
    put(tmp_path / "empty", "notes.txt", b"no images here")
    with pytest.raises(DataError, match="no images found in .*empty$"):
        load_images(tmp_path / "empty", 8)
    put(tmp_path / "allbad", "x.jpg", b"text")
    with pytest.raises(DataError, match=r"no images found in .*allbad \(1 unreadable"):
        load_images(tmp_path / "allbad", 8, cache_dir=None, progress=False)
    put(tmp_path / "flat", "a.png", solid((1, 1, 1)))
    with pytest.raises(DataError, match=r"flat has no labels: .*add 'labels' to the \.npz\)"):
        load_images(tmp_path / "flat", 8, require_labels=True)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"pixels": np.zeros((2, 4, 4, 3), np.uint8)}, r"no 'images' array \(found: pixels\)"),
        ({"images": np.zeros((2, 4, 4, 3), np.float32)}, "'images' .* must be uint8"),
        ({"images": np.zeros((2, 4, 4, 2), np.uint8)}, r"'images' .* got \(2, 4, 4, 2\)"),
        ({"images": np.zeros((4, 4), np.uint8)}, r"'images' .* got \(4, 4\)"),
        ({"images": np.zeros((0, 4, 4), np.uint8)}, "no images found in"),
        (
            {"images": np.zeros((3, 4, 4), np.uint8), "labels": np.array([0, 1])},
            "'labels' .* has 2 entries for 3 images",
        ),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0.5, 1])}, "'labels' .* integer"),
        (
            {"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0, 2]), "class_names": np.array(["a", "b"])},
            "'class_names' .* 2 names",
        ),
    ],
)
def test_npz_errors(tmp_path: Path, arrays: dict, match: str) -> None:
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=match):
        load_images(tmp_path / "d.npz", 4, cache_dir=None)


def test_npz_unlabelled_with_require_labels_and_corrupt_npz(tmp_path: Path) -> None:
    np.savez(tmp_path / "u.npz", images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"u\.npz has no labels"):
        load_images(tmp_path / "u.npz", 4, require_labels=True, cache_dir=None)
    (tmp_path / "c.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot read \.npz file .*c\.npz"):
        load_images(tmp_path / "c.npz", 4, cache_dir=None)


# ---------------------------------------------------------------- demo


def test_demo_digits() -> None:
    train, test = demo_digits()
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape == (1437, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.class_names == [str(c) for c in range(10)] and test.num_classes == 10
    assert not set(train.ids) & set(test.ids)
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # gray repeated to RGB
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    assert test.labels.bincount().min() >= 34  # stratified: every digit has ~36 test images
    train2, test2 = demo_digits(resolution=8)
    assert train2.ids == train.ids and train2.images.shape == (1437, 3, 8, 8)


def test_demo_digits_without_sklearn(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match=r"pip install 'gensis\[demo\]'"):
        demo_digits()


# ---------------------------------------------------------------- real data (slow)


@pytest.mark.slow
def test_cifar10_test_zip(tmp_path: Path) -> None:
    path = SHARED / "cifar10" / "test.zip"
    assert path.exists(), f"{path} not present: pytest -m slow needs ../shared/data"
    data = load_images(path, 32, cache_dir=tmp_path, progress=False, require_labels=True)
    assert len(data) == 10_000 and data.images.shape == (10_000, 3, 32, 32)
    assert data.num_classes == 10 and data.class_names[0] == "airplane"
    assert data.labels.bincount().tolist() == [1000] * 10


@pytest.mark.slow
def test_cifar10_train_load_time(tmp_path: Path) -> None:
    """Prints (does not assert) the first and the cached load time of CIFAR-10 train."""
    path = SHARED / "cifar10" / "train.zip"
    assert path.exists(), f"{path} not present: pytest -m slow needs ../shared/data"
    t0 = time.perf_counter()
    first = load_images(path, 32, cache_dir=tmp_path, progress=False)
    t1 = time.perf_counter()
    cached = load_images(path, 32, cache_dir=tmp_path, progress=False)
    t2 = time.perf_counter()
    assert len(first) == len(cached) == 50_000
    print(f"\ncifar10 train.zip at 32 px: first {t1 - t0:.2f} s, cached {t2 - t1:.2f} s")


def test_zip_members_outside_the_archive_tree_are_skipped_and_named(tmp_path, caplog) -> None:
    import io
    import zipfile

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, "PNG")
    path = tmp_path / "mixed.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name in ["cat/a.png", "dog/b.png", "/abs/c.png", "../up/d.png", "x//e.png", "C:/f.png"]:
            z.writestr(name, buf.getvalue())
    with caplog.at_level(logging.WARNING):
        data = load_images(path, 8, cache_dir=None, progress=False)
    assert data.ids == ["cat/a.png", "dog/b.png"] and data.class_names == ["cat", "dog"]  # no class named ""
    assert any(
        "skipped 4 member(s) whose path leaves the archive's tree" in r.getMessage() and "/abs/c.png" in r.getMessage()
        for r in caplog.records
    )


def test_strict_above_96_px_names_an_unreadable_file_at_load_not_mid_training(tmp_path, capsys) -> None:
    from gensis.cli import main
    from gensis.errors import DataError

    folder = tmp_path / "tiles"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (130, 130), (40 * i, 0, 0)).save(folder / f"{i}.png")
    (folder / "9.png").write_text("garbage")
    with pytest.raises(DataError, match=f"unreadable image {folder / '9.png'}: not an image"):
        load_images(folder, 128, strict=True, cache_dir=None, progress=False)
    assert len(load_images(folder, 128, cache_dir=None, progress=False)) == 5  # lazy: found per batch
    code = main(
        [
            "pretrain",
            "-q",
            "preset=digits",
            f"data.path={folder}",
            "data.resolution=128",
            "data.strict=true",
            "train.batch_size=2",
            f"out={tmp_path / 'run'}",
        ]
    )
    err = capsys.readouterr().err
    assert (
        code == 2
        and err.strip().splitlines()[-1].startswith("gensis: error: unreadable image")
        and "Traceback" not in err
    )
    assert not (tmp_path / "run").exists()
