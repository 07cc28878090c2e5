"""Bad autoencoder input: one line naming the file, exit 2, nothing written or lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _synthetic import random_encoder, write_npz

import gensis
from gensis.cli import main

SMALL = {
    "model.block_out_channels": [8, 16],
    "train.crop_size": 8,
    "train.batch_size": 8,
    "train.epochs": 1,
    "train.eval_every": 0,
    "train.progress": False,
    "data.cache_dir": None,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("refuse")
    data16 = write_npz(root / "a16.npz", 40, size=16)
    other16 = write_npz(root / "b16.npz", 40, size=16, seed=3)
    enc = random_encoder(root / "encoder.safetensors", 16)
    ae16 = gensis.train_autoencoder(
        {**SMALL, "data.path": str(data16), "data.resolution": 16, "out": str(root / "ae16")}
    )
    ae32 = gensis.train_autoencoder(
        {**SMALL, "data.path": str(data16), "data.resolution": 32, "out": str(root / "ae32")}
    )
    stage1 = root / "stage1" / "exported"
    stage1.mkdir(parents=True)
    shutil.copy(enc, stage1 / "encoder.safetensors")
    return {
        "root": root,
        "data": data16,
        "other": other16,
        "enc": enc,
        "ae16": ae16.out,
        "ae32": ae32.out,
        "stage1": root / "stage1",
    }


def _generator(files, out: Path, vae: str, data: str | None = None) -> list[str]:
    return [
        "train-generator",
        "model.spec=tiny",
        "model.space=latent",
        f"model.vae={vae}",
        f"encoder={files['enc']}",
        f"data.path={data or files['data']}",
        f"out={out}",
        "train.batch_size=8",
        "train.epochs=1",
        "train.progress=false",
        "data.cache_dir=null",
    ]


def _refused(argv: list[str], capsys, *fragments: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def test_an_autoencoder_of_another_resolution_is_refused(files, tmp_path, capsys) -> None:
    _refused(
        _generator(files, tmp_path / "g", str(files["ae32"])),
        capsys,
        "model.vae",
        str(files["ae32"]),
        "32-px images, this run uses 16 px",
    )
    assert not (tmp_path / "g").exists()


def test_an_autoencoder_of_other_images_is_refused(files, tmp_path, capsys) -> None:
    _refused(
        _generator(files, tmp_path / "g", str(files["ae16"]), str(files["other"])),
        capsys,
        "model.vae",
        "trained on other images",
        str(files["other"]),
    )
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("damage", ["config.json", "diffusion_pytorch_model.safetensors", "gensis.json"])
def test_a_damaged_autoencoder_file_is_named(files, tmp_path, capsys, damage) -> None:
    broken = tmp_path / "vae"
    shutil.copytree(Path(files["ae16"]) / "exported" / "autoencoder", broken)
    original = (broken / damage).read_bytes()
    (broken / damage).write_bytes(original[: len(original) // 2])
    _refused(_generator(files, tmp_path / "g", str(broken)), capsys, "model.vae", str(broken / damage))
    assert not (tmp_path / "g").exists() and (broken / damage).read_bytes() == original[: len(original) // 2]


def test_an_encoder_given_as_the_autoencoder_is_named(files, tmp_path, capsys) -> None:
    _refused(
        _generator(files, tmp_path / "g", str(files["stage1"])),
        capsys,
        "model.vae",
        str(files["stage1"]),
        "stage-1 run folder (an encoder)",
    )
    _refused(_generator(files, tmp_path / "g", str(files["enc"])), capsys, "model.vae", "is a file")
    assert not (tmp_path / "g").exists()


def test_an_autoencoder_given_as_the_encoder_is_named(files, tmp_path, capsys) -> None:
    for argv in (
        ["train-autoencoder", f"encoder={files['ae16']}", f"data.path={files['data']}", f"out={tmp_path / 'a'}"],
        ["embed", f"encoder={files['ae16']}", f"data_path={files['data']}", f"out={tmp_path / 'e.npy'}"],
        ["train-generator", f"encoder={files['ae16']}", f"data.path={files['data']}", f"out={tmp_path / 'g'}"],
    ):
        _refused(argv, capsys, str(files["ae16"]), "is an autoencoder (train-autoencoder), not a gensis encoder")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_finished_autoencoder_run_is_not_overwritten(files, capsys) -> None:
    ae = Path(files["ae16"])
    before = (ae / "exported" / "autoencoder" / "diffusion_pytorch_model.safetensors").read_bytes()
    _refused(
        ["train-autoencoder", f"data.path={files['data']}", "data.resolution=16", f"out={ae}", "train.progress=false"],
        capsys,
        "already holds a run",
    )
    assert (ae / "exported" / "autoencoder" / "diffusion_pytorch_model.safetensors").read_bytes() == before
    _refused(["train-autoencoder", f"data.path={ae}", f"out={ae / 'x'}"], capsys, "lies inside the input data.path")
