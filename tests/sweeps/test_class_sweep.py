"""The guard sweep by class (issue 38): every command, from its typed config, meets each class of
bad file or path the probes found, and must answer exit 2 with one line that names it, no
traceback, and no file of the world changed:

- ``out=`` a FIFO, a link to a user's file, an empty path, a read-only place;
- every input path a FIFO (and one a link to ``/dev/zero``);
- a ``--config`` whose section or value has the wrong type;
- a zip holding an image name twice, as every data input.

The commands and their inputs come from test_guard_sweep.BASES, which fails when a command is
missing there; so a new command is in this sweep too. Moved folders are in test_moved_folders.py.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from _refusal import digest
from test_guard_sweep import BASES, OUT_NAME, _config, _inputs

from gensis.cli import command_configs, main
from gensis.config.overrides import flatten
from gensis.runtime import guards

COMMANDS = sorted(BASES)
# The data inputs (images read through the loader) by command; a zip twice is refused for each.
DATA_KEYS = {"data.path", "data.eval_path", "data_path", "train_path", "test_path"}


def _argv(command: str, world: dict, base: str | None = None, **replace: str) -> list[str]:
    """The command's base line with some ``key=value`` replaced (``out`` set to a fresh path)."""
    tokens = [t.format(**world) for t in (base or BASES[command][-1]).split()]
    settings = dict(t.split("=", 1) for t in tokens if "=" in t)
    settings.update(replace)
    return [command, *(f"{k}={v}" for k, v in settings.items())]


def _one_line(capsys, argv: list[str], *fragments: str) -> str:
    code = main([*argv, "-q"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (argv, err)
    assert lines[0].startswith("gensis: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (argv, lines[0])
    return lines[0]


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A user's files beside the world: nothing here may change."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes\n")
    (mine / "full").mkdir()
    (mine / "full" / "a.txt").write_text("a\n")
    return mine


@pytest.mark.parametrize("command", COMMANDS)
def test_out_of_every_kind_is_refused_in_one_line(bad_world, capsys, tmp_path, victim, monkeypatch, command) -> None:
    before, mine = digest(bad_world["root"]), digest(victim)
    name = OUT_NAME.get(command, "x")
    fifo = tmp_path / name
    os.mkfifo(fifo)
    _one_line(capsys, _argv(command, bad_world, out=str(fifo)), "a FIFO", "foreign-file")
    link = tmp_path / f"link-{name}"
    os.symlink(victim / "notes.txt", link)
    _one_line(capsys, _argv(command, bad_world, out=str(link)), "foreign-file")
    if "." not in name:  # a command that writes a folder: a link to a user's folder of files
        folder_link = tmp_path / "folder-link"
        os.symlink(victim / "full", folder_link)
        _one_line(capsys, _argv(command, bad_world, out=str(folder_link)), "foreign-folder")
    _one_line(capsys, _argv(command, bad_world, out=""), "out", "an empty path")
    locked = tmp_path / "read-only"
    locked.mkdir()
    real = os.access  # tests run as root, whom chmod does not stop: the check is made to say no
    monkeypatch.setattr(guards.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    _one_line(capsys, _argv(command, bad_world, out=str(locked / name)), "not-writable")
    assert list(locked.iterdir()) == []
    assert digest(bad_world["root"]) == before and digest(victim) == mine


@pytest.mark.parametrize("command", COMMANDS)
def test_every_input_that_is_no_file_is_named(bad_world, capsys, tmp_path, command) -> None:
    """A FIFO as any input would hang its reader; a link to /dev/zero would be read without end."""
    before = digest(bad_world["root"])
    n = 0
    for i, base in enumerate(BASES[command]):
        for key, path in _inputs(command, base, bad_world).items():
            fifo = tmp_path / f"{i}-{key.replace('.', '_')}-fifo{path.suffix}"
            os.mkfifo(fifo)
            _one_line(
                capsys,
                _argv(
                    command,
                    bad_world,
                    base,
                    **{key: str(fifo), "out": str(tmp_path / "o" / OUT_NAME.get(command, "x"))},
                ),
                f"{key}={fifo} is a FIFO",
                "not-a-file",
            )
            n += 1
        key, path = next(iter(_inputs(command, base, bad_world).items()))
        zero = tmp_path / f"{i}-zero{path.suffix}"
        os.symlink("/dev/zero", zero)
        _one_line(
            capsys,
            _argv(
                command, bad_world, base, **{key: str(zero), "out": str(tmp_path / "o" / OUT_NAME.get(command, "x"))}
            ),
            "is a device",
            "not-a-file",
        )
    assert n >= 1 and not (tmp_path / "o").exists()
    assert digest(bad_world["root"]) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_empty_paths_and_names_that_are_not_utf8_are_one_line(bad_world, capsys, tmp_path, command) -> None:
    """Every input key given an empty path is named; an out= whose name is not UTF-8, placed where
    a rule refuses it (inside an input), is refused in one line that shows the odd byte escaped."""
    before = digest(bad_world["root"])
    for _i, base in enumerate(BASES[command]):
        inputs = _inputs(command, base, bad_world)
        for key in inputs:
            _one_line(
                capsys,
                _argv(command, bad_world, base, **{key: "", "out": str(tmp_path / "o" / "x")}),
                key,
                "an empty path",
            )
        key, path = next(iter(inputs.items()))
        odd = os.fsdecode(os.fsencode(path) + b"/r\xff" + OUT_NAME.get(command, "x").encode()[1:])
        _one_line(capsys, _argv(command, bad_world, base, out=odd), "\\xff")
    assert not (tmp_path / "o").exists() and digest(bad_world["root"]) == before


def _wrong_types(command: str) -> list[dict]:
    """Every section given a number (with -q, which sets a key inside some of them), else a number
    given text, else a switch given ``maybe``, else the first key given a mapping."""
    from pydantic import BaseModel

    model = command_configs()[command]
    sections = [
        {name: 5}
        for name, field in model.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    ]
    if sections:
        return sections
    for name, field in model.model_fields.items():
        if field.annotation in (int, float, int | None, float | None):
            return [{name: "ten"}]
        if field.annotation is bool:
            return [{name: "maybe"}]
    return [{next(iter(model.model_fields)): {"a": 1}}]  # a path given a mapping


@pytest.mark.parametrize("command", COMMANDS)
def test_config_file_of_the_wrong_type_is_one_line(bad_world, capsys, tmp_path, command) -> None:
    before = digest(bad_world["root"])
    settings = {
        k: yaml.safe_load(v) for k, v in (t.format(**bad_world).split("=", 1) for t in BASES[command][-1].split())
    }
    settings["out"] = str(tmp_path / "o" / OUT_NAME.get(command, "x"))
    for wrong in (*_wrong_types(command), {"out": [1, 2]}):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({**settings, **wrong}))
        key = next(iter(wrong))
        _one_line(capsys, [command, "--config", str(path)], key)
    assert not (tmp_path / "o").exists() and digest(bad_world["root"]) == before


def _png_bytes(value: int, size: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _zip_twice(path: Path, size: int = 8) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(8):
            zf.writestr(f"{'ab'[i % 2]}/{i}.png", _png_bytes(20 * i, size))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns of the duplicate: that is the case
            zf.writestr("a/0.png", _png_bytes(250, size))
    return path


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if any(k in DATA_KEYS for b in BASES[c] for k in b.replace("=", " ").split())]
)
def test_a_zip_with_an_image_twice_is_refused_for_every_data_input(bad_world, capsys, tmp_path, command) -> None:
    before = digest(bad_world["root"])
    twice = _zip_twice(tmp_path / "twice.zip")
    base = next(b for b in BASES[command] if any(k in DATA_KEYS for k in b.replace("=", " ").split()))
    key = next(k for k in b_keys(base) if k in DATA_KEYS)
    out = tmp_path / "o" / OUT_NAME.get(command, "x")
    fit = {k: v.format(**bad_world) for k, v in FITTING.get(command, {}).items()}
    _one_line(
        capsys,
        _argv(command, bad_world, base, **fit, **{key: str(twice), "out": str(out)}),
        "'a/0.png'",
        "more than once",
    )
    assert not out.exists() and digest(bad_world["root"]) == before


# Settings that let the command reach its data (the base's other values are refused first there).
FITTING = {"eval-generator": {"encoder": "{enc}"}, "train-autoencoder": {"train.crop_size": "8"}}


def b_keys(base: str) -> list[str]:
    return [t.split("=", 1)[0] for t in base.split() if "=" in t]


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if any(k in DATA_KEYS for b in BASES[c] for k in b.replace("=", " ").split())]
)
def test_every_command_that_reads_images_takes_the_size_cap(bad_world, capsys, tmp_path, command) -> None:
    """``max_image_bytes`` (``data.max_image_bytes`` where a data section holds it) reaches the
    loader of every command: at 1 byte every image is over it, so the command refuses in one
    line that names the cap, and writes nothing."""
    before = digest(bad_world["root"])
    base = next(b for b in BASES[command] if any(k in DATA_KEYS for k in b.replace("=", " ").split()))
    cap = "data.max_image_bytes" if "data.path" in b_keys(base) else "max_image_bytes"
    assert cap in flatten(_config(command, base, bad_world).model_dump())
    folder = tmp_path / "images"  # a folder: the cap is per image file (an .npz is one array)
    for i, (name, value) in enumerate(zip("abab", (10, 90, 170, 250), strict=True)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / f"{i}.png").write_bytes(_png_bytes(value))
    data = {k: str(folder) for k in b_keys(base) if k in DATA_KEYS}
    out = tmp_path / "o" / OUT_NAME.get(command, "x")
    fit = {k: v.format(**bad_world) for k, v in FITTING.get(command, {}).items()}
    _one_line(
        capsys,
        _argv(command, bad_world, base, **fit, **data, **{cap: "1", "out": str(out)}),
        "no images found",
        "over the size cap max_image_bytes=1",
    )
    assert not out.exists() and digest(bad_world["root"]) == before
