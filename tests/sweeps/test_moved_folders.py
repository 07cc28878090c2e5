"""Folders that move (issue 38): a whole project folder (data, stage-1 run, autoencoder, generator,
bank, tiles) is built, then renamed, so that no file is left at any path recorded inside it. Every
command must then work from the moved folder: outputs record what they depend on relative to
themselves (or by content), never only by the absolute path they had.

``gensis run`` has its own case: tests/pipeline/test_pipeline.py::test_a_moved_pipeline_folder_reruns_as_a_no_op.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _slides import make_canvas, stained_tiles, write_slide
from _synthetic import write_npz

import gensis
from gensis.cli import command_configs, main
from gensis.runtime.run_folder import RunFolder

PRE = {
    "preset": "digits",
    "data.cache_dir": None,
    "model.backbone": "resnet10t",
    "dino.out_dim": 64,
    "dino.hidden_dim": 64,
    "dino.bottleneck_dim": 32,
    "train.batch_size": 6,
    "train.epochs": 1,
    "train.knn_every": 0,
    "train.progress": False,
}
GEN = {"model.spec": "tiny", "train.batch_size": 6, "train.epochs": 1, "train.progress": False, "data.cache_dir": None}
AE = {
    "model.block_out_channels": [8, 16],
    "model.latent_channels": 4,
    "train.crop_size": 8,
    "train.batch_size": 8,
    "train.warmup_steps": 1,
    "train.log_every": 1,
    "train.eval_every": 0,
    "train.epochs": 2,
    "train.progress": False,
    "data.cache_dir": None,
    "data.resolution": 16,
}
STOPPED = {"train.epochs": 2, "train.max_steps": 1}  # the training runs stop early: the moved ones resume


@pytest.fixture(scope="module")
def moved(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    a = root / "a"
    a.mkdir()
    data = write_npz(a / "data.npz", 12, size=16)
    gensis.pretrain({**PRE, **STOPPED, "data.path": str(data), "out": str(a / "pre")})
    gensis.train_autoencoder({**AE, **STOPPED, "data.path": str(data), "out": str(a / "ae")})
    gensis.train_generator({**GEN, "data.path": str(data), "encoder": str(a / "pre"), "out": str(a / "gen")})
    gensis.generate(
        {
            "generator": str(a / "gen"),
            "data_path": str(data),
            "out": str(a / "bank"),
            "views_per_image": 1,
            "interpolations_per_image": 1,
            "steps": 1,
            "progress": False,
            "cache_dir": None,
        }
    )
    write_slide(a / "slide.tif", make_canvas(stained_tiles()))
    from gensis.tiling import tile

    tile(slides=str(a / "slide.tif"), out=str(a / "tiles"), tile_size=64)
    b = root / "b"
    a.rename(b)  # nothing is left where the outputs were written
    return b


def _kv(settings: dict, *leave_out: str) -> list[str]:
    """``key=value`` words as a user types them (null, false, [8, 16])."""
    import json

    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in settings.items() if k not in leave_out]


def _gensis(*argv: str) -> None:
    assert main([*argv, "-q"]) == 0


def _pretrain_continues(b: Path, out: Path) -> None:
    before = RunFolder(b / "pre").read_metrics()[-1]["step"]
    moved_run = out / "pre"
    shutil.copytree(b / "pre", moved_run)
    _gensis(
        "pretrain",
        "--resume",
        *_kv(PRE, "train.epochs"),
        "train.epochs=2",
        f"data.path={b / 'data.npz'}",
        f"out={moved_run}",
    )  # data moved too: checked by content
    assert RunFolder(moved_run).read_metrics()[-1]["step"] > before


def _autoencoder_continues(b: Path, out: Path) -> None:
    run = out / "ae"
    shutil.copytree(b / "ae", run)
    _gensis(
        "train-autoencoder",
        "--resume",
        *_kv(AE, "train.epochs"),
        "train.epochs=2",
        f"data.path={b / 'data.npz'}",
        f"out={run}",
    )


MOVED = {  # command -> what it does with the moved project folder
    "pretrain": _pretrain_continues,
    "train-autoencoder": _autoencoder_continues,
    "train-generator": lambda b, out: _gensis(
        "train-generator",
        *_kv(GEN),
        "model.space=latent",
        f"model.vae={b / 'ae'}",
        f"encoder={b / 'pre'}",
        f"data.path={b / 'data.npz'}",
        f"out={out / 'g'}",
    ),
    "generate": lambda b, out: _gensis(
        "generate",
        f"generator={b / 'gen'}",
        f"data_path={b / 'data.npz'}",
        "views_per_image=1",
        "interpolations_per_image=0",
        "steps=1",
        "cache_dir=null",
        f"out={out / 'bank'}",
    ),
    "show": lambda b, out: _gensis(
        "show",
        f"generator={b / 'gen'}",
        f"data_path={b / 'data.npz'}",
        "steps=1",
        "cache_dir=null",
        f"out={out / 'show'}",
    ),
    "eval-generator": lambda b, out: _gensis(
        "eval-generator",
        f"bank={b / 'bank'}",
        f"encoder={b / 'pre'}",
        f"data_path={b / 'data.npz'}",
        "cache_dir=null",
        f"out={out / 'q.json'}",
    ),
    "foreground": lambda b, out: _gensis(
        "foreground", f"encoder={b / 'pre'}", f"data_path={b / 'data.npz'}", "cache_dir=null", f"out={out / 'fg'}"
    ),
    "eval": lambda b, out: _gensis(
        "eval",
        f"encoder={b / 'pre'}",
        f"train_path={b / 'data.npz'}",
        f"test_path={b / 'data.npz'}",
        "linear=false",
        "knn_k=[1]",
        "cache_dir=null",
        f"out={out / 'r.json'}",
    ),
    "embed": lambda b, out: _gensis(
        "embed", f"encoder={b / 'pre'}", f"data_path={b / 'data.npz'}", "cache_dir=null", f"out={out / 'e.npy'}"
    ),
    "export": lambda b, out: _gensis("export", f"encoder={b / 'pre'}", f"out={out / 'e.pt2'}"),
    "tile": lambda b, out: _gensis("tile", f"slides={b / 'slide.tif'}", f"out={b / 'tiles'}", "tile_size=64"),
}


def test_every_command_has_a_moved_case() -> None:
    assert set(MOVED) | {"run"} == set(command_configs())


@pytest.mark.parametrize("command", sorted(MOVED))
def test_a_moved_project_folder_works_for(moved, tmp_path, command) -> None:
    MOVED[command](moved, tmp_path)


def test_a_gen_dino_run_reads_a_moved_bank(moved, tmp_path) -> None:
    _gensis(
        "pretrain", *_kv(PRE), f"data.path={moved / 'data.npz'}", f"gen.bank={moved / 'bank'}", f"out={tmp_path / 'gd'}"
    )
    assert np.isfinite(RunFolder(tmp_path / "gd").read_metrics()[-1]["loss"])


def test_interrupted_runs_whose_inputs_moved_with_them_resume(tmp_path) -> None:
    """A stopped generator run (its encoder beside it) and a stopped Gen-DINO run (its bank and
    init beside it), moved with their neighbours: their checkpoints record those inputs relative
    to the run, so the resume with the new paths is the same run, not "other settings"."""
    a = tmp_path / "a"
    a.mkdir()
    data = write_npz(a / "data.npz", 12, size=16)
    gensis.pretrain({**PRE, "data.path": str(data), "out": str(a / "pre")})
    gensis.train_generator({**GEN, **STOPPED, "data.path": str(data), "encoder": str(a / "pre"), "out": str(a / "gen")})
    gensis.generate(
        {
            "generator": str(a / "gen"),
            "data_path": str(data),
            "out": str(a / "bank"),
            "views_per_image": 1,
            "interpolations_per_image": 1,
            "steps": 1,
            "progress": False,
            "cache_dir": None,
        }
    )
    gensis.pretrain(
        {
            **PRE,
            **STOPPED,
            "data.path": str(data),
            "gen.bank": str(a / "bank"),
            "init_from": str(a / "pre"),
            "out": str(a / "gd"),
        }
    )
    steps = {name: RunFolder(a / name).read_metrics()[-1]["step"] for name in ("gen", "gd")}
    b = tmp_path / "b"
    a.rename(b)
    _gensis(
        "train-generator",
        "--resume",
        *_kv(GEN, "train.epochs"),
        "train.epochs=2",
        f"encoder={b / 'pre'}",
        f"data.path={b / 'data.npz'}",
        f"out={b / 'gen'}",
    )
    _gensis(
        "pretrain",
        "--resume",
        *_kv(PRE, "train.epochs"),
        "train.epochs=2",
        f"data.path={b / 'data.npz'}",
        f"gen.bank={b / 'bank'}",
        f"init_from={b / 'pre'}",
        f"out={b / 'gd'}",
    )
    for name, before in steps.items():
        assert RunFolder(b / name).read_metrics()[-1]["step"] > before, name
