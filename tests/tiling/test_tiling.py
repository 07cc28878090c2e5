"""`gensis tile` on small pyramidal TIFFs, and the histology preset.

The default tests build their slides from H&E-coloured stand-in tiles (pink stroma, purple
nuclei), the same on every machine. The tests named for PCam use the real PCam tiles of
``../shared/data/pcam`` and are marked ``slow`` (``pytest -m slow``); there a missing zip is a
failure, not a quiet fallback to the stand-ins."""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tiffslide  # noqa: F401  (the test extra installs it, with tifffile for tests/_slides.py; Slide reads with it)
from _slides import TISSUE, make_canvas, reduced, stained_tiles, write_slide
from PIL import Image

from gensis.errors import ConfigError, DataError
from gensis.tiling import Slide, tile
from gensis.tiling.tissue import otsu_threshold, tissue_mask

PCAM = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pcam" / "train.zip"


@pytest.fixture(scope="module")
def he_tiles() -> list[np.ndarray]:
    return stained_tiles()


@pytest.fixture(scope="module")
def pcam_tiles() -> list[np.ndarray]:
    """80 real PCam H&E tiles (for the slow tests only)."""
    assert PCAM.is_file(), f"{PCAM} not present: the PCam tests need ../shared/data"
    with zipfile.ZipFile(PCAM) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[::250][:80]
        return [np.asarray(Image.open(io.BytesIO(zf.read(n))).convert("RGB")) for n in names]


@pytest.fixture(scope="module")
def canvas(he_tiles) -> np.ndarray:
    return make_canvas(he_tiles)


@pytest.fixture(scope="module")
def slide_dir(tmp_path_factory, he_tiles, canvas) -> Path:
    """Two slides with tissue at different places (for resume and parallel runs)."""
    root = tmp_path_factory.mktemp("slides")
    write_slide(root / "alpha.tif", canvas)
    write_slide(root / "beta.tif", make_canvas(he_tiles, (1056, 672, 1920, 1440)))
    return root


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_pyramid_is_read_with_levels_and_mpp(slide_dir):
    with Slide(slide_dir / "alpha.tif") as slide:
        assert slide.downsamples == [1.0, 2.0, 4.0]
        assert slide.mpp == pytest.approx(0.25)


def test_otsu_splits_two_modes():
    values = np.concatenate([np.full(500, 10), np.full(300, 200)]).astype(np.uint8)
    assert 10 <= otsu_threshold(values) < 200


def _check_tissue_mask(slide_path: Path, min_cover: float) -> None:
    with Slide(slide_path) as slide:
        mask = tissue_mask(slide.thumbnail(512))  # 4x smaller than level 0
    x0, y0, x1, y1 = (v // 4 for v in TISSUE)
    assert mask[y0:y1, x0:x1].mean() > min_cover
    outside = mask.copy()
    outside[y0 - 2 : y1 + 2, x0 - 2 : x1 + 2] = False  # resampling blurs the edge by a pixel
    assert not outside.any()


def test_tissue_mask_covers_tissue_not_background(slide_dir):
    _check_tissue_mask(slide_dir / "alpha.tif", 0.95)  # the stand-ins are stained all over


@pytest.mark.slow
def test_tissue_mask_on_real_pcam_tiles(tmp_path, pcam_tiles):
    _check_tissue_mask(write_slide(tmp_path / "pcam.tif", make_canvas(pcam_tiles)), 0.7)  # not 1: fat, glass


def test_tiles_have_requested_size_mpp_and_content(tmp_path, slide_dir, canvas):
    result = tile(slides=str(slide_dir / "alpha.tif"), out=str(tmp_path / "out"), tile_size=64, mpp=0.5)
    rows = read_manifest(result.manifest)
    level1 = reduced(canvas, 2)
    assert result.n_tiles == len(rows) > 20
    x0, y0, x1, y1 = TISSUE
    for row in rows:
        x, y, size0 = int(row["x"]), int(row["y"]), int(row["size0"])
        assert size0 == 128 and float(row["mpp"]) == 0.5  # 0.25 -> 0.5 mpp: 2x tile_size level-0 px
        assert x0 - size0 < x < x1 and y0 - size0 < y < y1 and float(row["tissue"]) >= 0.5
        image = np.asarray(Image.open(tmp_path / "out" / row["tile"]))
        assert image.shape == (64, 64, 3)
        # Read straight from the 2x level, no resize: exactly that level's pixels.
        np.testing.assert_array_equal(image, level1[y // 2 : (y + size0) // 2, x // 2 : (x + size0) // 2])


def test_resized_tiles_match_the_resized_region(tmp_path, slide_dir, canvas):
    result = tile(
        slides=str(slide_dir / "alpha.tif"),
        out=str(tmp_path / "t.zip"),
        tile_size=64,
        mpp=0.75,
        format="jpeg",
        max_tiles_per_slide=5,
    )
    rows = read_manifest(result.manifest)
    assert len(rows) == 5 and all(r["size0"] == "192" for r in rows)

    def error(image: np.ndarray, x: int, y: int) -> float:
        region = Image.fromarray(canvas[y : y + 192, x : x + 192]).resize((64, 64), Image.Resampling.LANCZOS)
        return float(np.abs(image - np.asarray(region, dtype=np.float32)).mean())

    with zipfile.ZipFile(tmp_path / "t.zip") as zf:
        for row in rows:
            image = np.asarray(Image.open(io.BytesIO(zf.read(row["tile"]))), dtype=np.float32)
            x, y = int(row["x"]), int(row["y"])
            # JPEG q90 leaves 3-6 grey levels on this busy tissue; 12 px off gives 20-45.
            assert error(image, x, y) < 8 and error(image, x, y) < 0.3 * error(image, x + 12, y + 12)


def test_magnification_uses_slide_mpp(tmp_path, slide_dir):
    result = tile(slides=str(slide_dir / "alpha.tif"), out=str(tmp_path / "o"), tile_size=64, magnification=20)
    assert {r["size0"] for r in read_manifest(result.manifest)} == {"128"}  # 20x ~ 0.5 mpp


def test_folder_and_zip_output_load_as_images(tmp_path, slide_dir):
    from gensis.data import load_images

    for out in (tmp_path / "folder", tmp_path / "tiles.zip"):
        result = tile(slides=str(slide_dir), out=str(out), tile_size=64)
        data = load_images(out, 64, cache_dir=None, progress=False, num_workers=0)
        assert len(data) == result.n_tiles_total == result.n_tiles
        assert data.class_names == ["alpha", "beta"]  # one folder per slide
    with zipfile.ZipFile(tmp_path / "tiles.zip") as zf:
        assert "manifest.csv" in zf.namelist()


@pytest.mark.parametrize("name", ["out", "out.zip"])
def test_rerun_skips_finished_slides(tmp_path, slide_dir, name):
    out = tmp_path / name
    first = tile(slides=str(slide_dir), out=str(out), tile_size=64)
    files = (
        [out]
        if out.is_file()
        else [p for p in out.rglob("*") if p.is_file() and p.name not in ("manifest.csv", ".gensis.lock")]
    )
    stamps = {p: p.stat().st_mtime_ns for p in files}
    second = tile(slides=str(slide_dir), out=str(out), tile_size=64)
    assert (second.n_skipped, second.n_tiles, second.n_tiles_total) == (2, 0, first.n_tiles)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert second.manifest.read_text() == first.manifest.read_text()
    with pytest.raises(ConfigError, match="other settings"):
        tile(slides=str(slide_dir), out=str(out), tile_size=32)


def test_slide_without_marker_is_redone_cleanly(tmp_path, slide_dir):
    """A crash after the tiles but before the done-marker: the slide is tiled again, nothing stale."""
    out = tmp_path / "out"
    first = tile(slides=str(slide_dir), out=str(out), tile_size=64)
    (out / ".state" / "alpha.done.csv").unlink()
    (out / "alpha" / "stale.png").write_bytes(b"x")
    second = tile(slides=str(slide_dir), out=str(out), tile_size=64)
    assert (second.n_skipped, second.n_tiled) == (1, 1)
    assert not (out / "alpha" / "stale.png").exists()
    assert second.manifest.read_text() == first.manifest.read_text()


def test_zip_grows_with_new_slides(tmp_path, slide_dir):
    out = tmp_path / "tiles.zip"
    tile(slides=str(slide_dir / "alpha.tif"), out=str(out), tile_size=64)
    result = tile(slides=str(slide_dir), out=str(out), tile_size=64)
    assert result.n_skipped == 1
    with zipfile.ZipFile(out) as zf:
        names = [n for n in zf.namelist() if n != "manifest.csv"]
        manifest = zf.read("manifest.csv").decode()
    assert len(names) == len(set(names)) == result.n_tiles_total
    assert {n.split("/")[0] for n in names} == {"alpha", "beta"}
    assert manifest == result.manifest.read_text()


def test_two_workers_give_the_same_manifest(tmp_path, slide_dir):
    one = tile(slides=str(slide_dir), out=str(tmp_path / "w1"), tile_size=64)
    two = tile(slides=str(slide_dir), out=str(tmp_path / "w2"), tile_size=64, workers=2)
    assert one.manifest.read_text() == two.manifest.read_text()


def _one_line_error(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_slide_without_resolution_names_the_override(tmp_path, canvas):
    path = write_slide(tmp_path / "nompp.tif", canvas, mpp=None)
    with pytest.raises(DataError) as exc_info:
        tile(slides=str(path), out=str(tmp_path / "o"), tile_size=64)
    assert "nompp.tif" in _one_line_error(exc_info) and "slide_mpp=" in str(exc_info.value)
    result = tile(slides=str(path), out=str(tmp_path / "o"), tile_size=64, slide_mpp=0.25)
    assert result.n_tiles > 0


def test_unreadable_slide_is_skipped_unless_strict(tmp_path, canvas, caplog):
    outs = tmp_path.parent / f"{tmp_path.name}-out"  # outside the slides folder, which is an input
    good = write_slide(tmp_path / "good.tif", canvas)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"garbage" * 50)
    with pytest.raises(DataError) as exc_info:
        tile(slides=str(bad), out=str(outs / "o1"))
    assert "unreadable slide" in _one_line_error(exc_info) and "bad.tif" in str(exc_info.value)
    with caplog.at_level(logging.WARNING, logger="gensis.tile"):
        result = tile(slides=str(tmp_path), out=str(outs / "o2"), tile_size=64)
    assert (result.n_failed, result.n_tiled) == (1, 1) and result.n_tiles > 0 and good.exists()
    assert any("bad.tif" in r.getMessage() for r in caplog.records)
    with pytest.raises(DataError, match="bad.tif"):
        tile(slides=str(tmp_path), out=str(outs / "o3"), tile_size=64, strict=True)


def test_slide_without_tissue_warns_and_gives_no_tiles(tmp_path, canvas, caplog):
    outs = tmp_path.parent / f"{tmp_path.name}-out"  # outside the slides folder, which is an input
    white = write_slide(tmp_path / "white.tif", np.full_like(canvas, 255))
    with pytest.raises(DataError) as exc_info:
        tile(slides=str(white), out=str(outs / "o1"), tile_size=64)
    assert "no tissue" in _one_line_error(exc_info)
    write_slide(tmp_path / "tissue.tif", canvas)
    with caplog.at_level(logging.WARNING, logger="gensis.tile"):
        result = tile(slides=str(tmp_path), out=str(outs / "o2"), tile_size=64)
    assert result.n_empty == 1 and result.n_tiles > 0
    assert any("white.tif" in r.getMessage() and "no tissue" in r.getMessage() for r in caplog.records)


def test_input_and_config_errors(tmp_path):
    with pytest.raises(DataError, match="no such slide"):
        tile(slides=str(tmp_path / "missing.svs"), out=str(tmp_path / "o"))
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no slides"):
        tile(slides=str(tmp_path / "none"), out=str(tmp_path / "o"))
    with pytest.raises(DataError, match="no slide files match"):
        tile(slides=str(tmp_path / "*.svs"), out=str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="not both"):
        tile(slides="x", out="y", mpp=0.5, magnification=20)
    with pytest.raises(ConfigError, match="unknown key"):
        tile(slides="x", out="y", tilesize=64)


def test_histology_preset_augments_stained_tiles(he_tiles):
    _check_histology_preset(he_tiles)


@pytest.mark.slow
def test_histology_preset_augments_real_pcam_tiles(pcam_tiles):
    _check_histology_preset(pcam_tiles)


def _check_histology_preset(tiles: list[np.ndarray]) -> None:
    import torch

    from gensis.api import pretrain_config
    from gensis.augment import MultiCropAugment

    cfg = pretrain_config(preset="histology")
    assert cfg.augment.solarize_p == 0.0 and cfg.augment.vflip_p == 0.5 and not cfg.model.cifar_stem
    batch = torch.from_numpy(np.stack(tiles[:8])).permute(0, 3, 1, 2).contiguous()
    views = MultiCropAugment(cfg.augment)(batch, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(8, 3, 96, 96)] * 2 + [(8, 3, 48, 48)] * 6
    assert all(torch.isfinite(v).all() for v in views)
