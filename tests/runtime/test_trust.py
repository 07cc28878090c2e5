"""Files are trusted by what they are, not by their name (issue 38): no link is followed where
gensis writes, only regular files under a cap are read, names that are not UTF-8 are named, a zip
with a name twice is refused, and gensis replaces only files it can prove it wrote."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from gensis.cli import main
from gensis.config.schema import PipelineConfig
from gensis.data import load_images
from gensis.errors import DataError, GensisError
from gensis.runtime import guards, lock, products
from gensis.runtime.run_folder import RunFolder


def _png(path: Path, value: int = 100) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def test_a_planted_lock_link_never_writes_through_to_its_target(tmp_path: Path) -> None:
    user = tmp_path / "thesis.txt"
    user.write_text("my thesis\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / lock.LOCK_NAME).symlink_to(user)
    with pytest.raises(GensisError, match="symbolic link.*never followed"):
        lock.hold(out)
    assert user.read_text() == "my thesis\n"
    assert not products.folder_is_gensis(out)  # a link named like the lock proves nothing


def test_a_lock_name_alone_or_with_other_text_proves_nothing(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    (mine / lock.LOCK_NAME).write_text("my own text, not a lock line\n")
    assert not products.folder_is_gensis(mine)
    with pytest.raises(GensisError, match="not a lock gensis wrote"):
        lock.hold(mine)
    assert (mine / lock.LOCK_NAME).read_text() == "my own text, not a lock line\n"
    hard = tmp_path / "hard"
    hard.mkdir()
    os.link(mine / "notes.txt", hard / lock.LOCK_NAME)  # a hard link: writing it would write notes.txt
    with pytest.raises(GensisError, match="2 hard links"):
        lock.hold(hard)
    assert (mine / "notes.txt").read_text() == "x"
    ours = tmp_path / "ours"
    lock.hold(ours)
    try:
        assert products.folder_is_gensis(ours) and lock.is_gensis_lock(ours)
    finally:
        lock.release(ours)


def test_metrics_never_append_through_a_link(tmp_path: Path) -> None:
    user = tmp_path / "log.txt"
    user.write_text("keep\n")
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    run.metrics_path.symlink_to(user)
    with pytest.raises(GensisError, match="symbolic link"):
        run.log_metrics({"step": 1, "loss": 1.0})
    assert user.read_text() == "keep\n"


def test_fifos_devices_and_oversize_files_are_skipped_unopened(tmp_path: Path, caplog) -> None:
    root = tmp_path / "data"
    for i in range(3):
        _png(root / "a" / f"{i}.png", 50 + i)
    os.mkfifo(root / "a" / "pipe.png")  # opening it for reading would block forever
    (root / "a" / "zero.png").symlink_to("/dev/zero")  # reading it would never end
    _png(root / "a" / "big.png", 200)
    big = (root / "a" / "big.png").stat().st_size
    data = load_images(root, 8, cache_dir=None, progress=False, max_image_bytes=big - 1, num_workers=0)
    assert sorted(data.ids) == ["a/0.png", "a/1.png", "a/2.png"]
    said = caplog.text
    assert "pipe.png" in said and "zero.png" in said and "big.png" in said
    with pytest.raises(DataError, match="a FIFO"):
        load_images(root, 8, cache_dir=None, progress=False, strict=True, num_workers=0)


def test_a_cached_zip_is_listed_again_under_another_size_cap(tmp_path: Path) -> None:
    """The cache's shortcut for an unchanged zip (its stat, not its listing) must not hand back
    the members of a run with a larger cap."""
    import io

    from PIL import Image

    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, side in enumerate((8, 8, 64)):  # the last member is the large one
            buf = io.BytesIO()
            Image.fromarray(np.random.default_rng(i).integers(0, 255, (side, side, 3), np.uint8)).save(buf, "PNG")
            zf.writestr(f"a/{i}.png", buf.getvalue())
        sizes = [info.file_size for info in zf.infolist()]
    kw = dict(cache_dir=tmp_path / "cache", progress=False, num_workers=0)
    assert len(load_images(archive, 8, **kw)) == 3
    assert sorted(load_images(archive, 8, max_image_bytes=max(sizes[:2]), **kw).ids) == ["a/0.png", "a/1.png"]
    assert len(load_images(archive, 8, **kw)) == 3  # and back


def test_a_name_that_is_not_utf8_is_loaded_and_named(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(2):
        _png(root / "a" / f"{i}.png")
    raw = os.fsencode(root / "a") + b"/caf\xe9.png"
    with open(raw, "wb") as f:
        f.write((root / "a" / "0.png").read_bytes())
    data = load_images(root, 8, cache_dir=tmp_path / "cache", progress=False, num_workers=0)
    assert len(data) == 3
    again = load_images(root, 8, cache_dir=tmp_path / "cache", progress=False, num_workers=0)  # from the cache
    assert again.ids == data.ids
    with open(raw, "wb") as f:
        f.write(b"not an image")
    with pytest.raises(DataError, match=r"caf\\xe9\.png"):
        load_images(root, 8, cache_dir=None, progress=False, strict=True, num_workers=0)


def _zip_with_twice(path: Path, twice: str) -> Path:
    """A zip holding one PNG (``a/1.png``) and the member ``twice`` written two times."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    with zipfile.ZipFile(path, "w") as zf:
        if twice != "a/1.png":
            zf.writestr("a/1.png", buf.getvalue())
        zf.writestr(twice, buf.getvalue())
        with pytest.warns(UserWarning):
            zf.writestr(twice, buf.getvalue())
    return path


def test_a_zip_with_a_member_name_twice_is_refused(tmp_path: Path) -> None:
    path = _zip_with_twice(tmp_path / "d.zip", "a/1.png")
    with pytest.raises(DataError, match="a/1.png.*more than once"):
        load_images(path, 8, cache_dir=None, progress=False)


def test_a_users_label_table_is_never_taken_for_an_embedding_table(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nx.png,1\n")  # the field's most common label format
    assert not products.file_is_gensis(labels)
    np.save(tmp_path / "labels.npy", np.zeros((1, 2), np.float32))
    assert not products.file_is_gensis(tmp_path / "labels.npy")


def test_embed_proves_its_tables_by_a_sidecar_and_may_replace_them(tmp_path: Path) -> None:
    from gensis.eval.embed_io import write_embeddings

    out = tmp_path / "e.csv"
    written = write_embeddings(out, torch.ones(2, 3), ["a.png", "b.png"], torch.tensor([0, 1]), ["x", "y"], {})
    assert [p.name for p in written] == ["e.npy", "e.csv", "e.gensis.json"]
    assert products.file_is_gensis(out) and products.file_is_gensis(tmp_path / "e.npy")
    out.write_text(out.read_text() + "my,own,row\n")  # edited by hand: no longer the file gensis wrote
    assert not products.file_is_gensis(out)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_embed_stopped_at_any_rename_leaves_its_files_replaceable(tmp_path: Path, monkeypatch, suffix) -> None:
    """A rerun of embed killed at each of its file renames in turn (the table, the array, the
    sidecar): whatever mix of old and new files it leaves, all are still vouched for, so the
    next rerun may replace them."""
    from gensis.eval import embed_io
    from gensis.runtime import io as rio

    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    meta = {"format": "gensis.embeddings/1"}  # as embed writes it (a Parquet table's own mark)
    real_replace = os.replace
    stop_at, finished = 1, False
    while not finished:
        folder = tmp_path / str(stop_at)
        out = folder / f"e{suffix}"
        embed_io.write_embeddings(out, torch.ones(2, 3), ["a.png", "b.png"], None, None, meta)
        calls = []

        def replace(src, dst, *, calls=calls, stop_at=stop_at):
            calls.append(dst)
            if len(calls) == stop_at:
                raise KeyboardInterrupt
            return real_replace(src, dst)

        monkeypatch.setattr(rio.os, "replace", replace)
        try:
            embed_io.write_embeddings(out, torch.zeros(2, 3), ["a.png", "b.png"], None, None, meta)
            finished = True
        except KeyboardInterrupt:
            pass
        monkeypatch.undo()
        assert products.file_is_gensis(out) and products.file_is_gensis(folder / "e.npy"), (stop_at, calls)
        embed_io.write_embeddings(out, torch.zeros(2, 3), ["a.png", "b.png"], None, None, meta)
        assert np.load(folder / "e.npy").sum() == 0
        stop_at += 1
    assert stop_at > 3  # every rename was a stopping point
    sidecar = json.loads((folder / "e.gensis.json").read_text())
    assert all(isinstance(v, str) for v in sidecar["files"].values())  # narrowed to the new contents


def test_a_file_named_pipeline_json_is_not_a_pipeline(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "pipeline.json").write_text("[1, 2]")
    (folder / "config.yaml").write_text("my: config\n")
    assert products.marker_state(folder, PipelineConfig.product) is None and not products.folder_is_gensis(folder)
    (folder / "pipeline.json").write_text(json.dumps({"stages": {"pretrain": {"seconds": 1.0, "last": "trained"}}}))
    # a folder from before the mark still resumes
    assert products.marker_state(folder, PipelineConfig.product) is not None


def test_an_out_that_is_a_fifo_is_refused_in_one_line(bad_world, capsys, tmp_path: Path) -> None:
    fifo = tmp_path / "e.npy"
    os.mkfifo(fifo)
    code = main(["embed", f"encoder={bad_world['enc']}", f"data_path={bad_world['data']}", f"out={fifo}", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "a FIFO" in err[0] and "foreign-file" in err[0], err
    assert Path(fifo).exists() and not Path(fifo).is_file()


def test_an_empty_out_and_a_folder_as_config_are_one_line(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.log").write_text("mine\n")
    code = main(["pretrain", "preset=digits", "out=", "data.path=x", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "empty path" in err[0] and "out" in err[0], err
    assert (tmp_path / "train.log").read_text() == "mine\n" and sorted(os.listdir(tmp_path)) == ["train.log"]
    code = main(["pretrain", "--config", str(tmp_path), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "a folder, not a config file" in err[0], err


def test_an_unknown_backbone_leaves_no_folder(bad_world, capsys, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "pretrain",
            "preset=digits",
            f"out={out}",
            f"data.path={bad_world['data']}",
            "model.backbone=resnet_nope",
            "train.batch_size=4",
            "data.cache_dir=null",
            "-q",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "resnet_nope" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(
    "command, argv",
    [
        ("generate", "generator={gen} encoder={enc} data_path={data}"),
        ("show", "generator={gen} encoder={enc} data_path={data}"),
        ("foreground", "encoder={enc} data_path={data}"),
        ("pretrain", "preset=digits data.path={data}"),
    ],
)
def test_a_read_only_out_is_refused_before_any_work(
    bad_world, capsys, tmp_path: Path, monkeypatch, command, argv
) -> None:
    """Tests run as root, whom chmod does not stop: the guard's permission check is made to say no."""
    locked = tmp_path / "ro"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(guards.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    code = main([command, *argv.format(**bad_world).split(), f"out={locked / 'o'}", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not-writable" in err[0] and "read-only" in err[0], err
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("command", ["embed", "eval-generator", "show", "eval"])
def test_quiet_means_no_bar_in_every_command(command) -> None:
    """-q sets every progress key of the command's config; a command whose decoding bar had no key
    printed it anyway (issue 38)."""
    from gensis.cli import _progress_keys

    assert "progress" in _progress_keys(command)


def test_quiet_embed_of_a_zip_prints_nothing_but_its_result(bad_world, capsys, tmp_path: Path) -> None:
    code = main(
        [
            "embed",
            f"encoder={bad_world['enc']}",
            f"data_path={bad_world['zip']}",
            f"out={tmp_path / 'e.npy'}",
            "cache_dir=null",
            "-q",
        ]
    )
    assert code == 0 and capsys.readouterr().err == ""


def test_a_fifo_named_config_yaml_does_not_hang_the_guard(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    os.mkfifo(folder / "config.yaml")
    os.mkfifo(folder / "index.json")
    assert not products.folder_is_gensis(folder) and not RunFolder(folder).config_is_gensis()


def test_a_zip_may_hold_a_non_image_twice(tmp_path: Path) -> None:
    path = _zip_with_twice(tmp_path / "d.zip", "readme.txt")
    assert load_images(path, 8, cache_dir=None, progress=False).ids == ["a/1.png"]


def test_a_fifo_under_a_name_gensis_reads_in_a_folder_is_one_line(bad_world, capsys, tmp_path: Path) -> None:
    """A bank's index.json, a run's metrics.jsonl: files read by a fixed name inside an input folder
    are read as regular files under a cap, so a FIFO there is named instead of hanging the command."""
    import shutil

    bank = tmp_path / "bank"
    shutil.copytree(bad_world["bank"], bank)
    (bank / "index.json").unlink()
    os.mkfifo(bank / "index.json")
    code = main(
        [
            "eval-generator",
            f"bank={bank}",
            f"encoder={bad_world['enc']}",
            f"data_path={bad_world['data']}",
            f"out={tmp_path / 'q.json'}",
            "-q",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "a FIFO" in err[0] and "index.json" in err[0], err
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    os.mkfifo(run.metrics_path)
    with pytest.raises(GensisError, match="a FIFO"):
        run.read_metrics()
    os.unlink(run.metrics_path)
    (tmp_path / "notes.txt").write_text("my notes\n")
    os.symlink(tmp_path / "notes.txt", run.metrics_path)  # a user's file fed in as records: refused by name
    with pytest.raises(GensisError, match="no-links"):
        run.read_metrics()
    os.unlink(run.metrics_path)
    run.metrics_path.write_text('{"step": 1, "loss": 2.0}\nmy notes\n{"step": 2, "loss": 1.0}\n')
    with pytest.raises(GensisError, match="line 2 is not a record"):
        run.read_metrics()
    run.metrics_path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')  # cut short by a crash
    assert run.read_metrics() == [{"step": 1, "loss": 2.0}]
