"""The CLI: bad input ends with one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from _synthetic import write_npz

from gensis.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("gensis: error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.fixture()
def unlabelled(tmp_path):
    p = tmp_path / "unlabelled.npz"
    np.savez(p, images=np.zeros((40, 16, 16, 3), np.uint8))
    return p


def test_bad_inputs(capsys, tmp_path, unlabelled) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "data.tar").write_bytes(b"x" * 10)
    (tmp_path / "bad_encoder.safetensors").write_bytes(b"garbage")
    cases = [
        (["pretrain", f"data.path={tmp_path / 'missing'}", f"out={tmp_path / 'r1'}"], "no such file or folder"),
        (["pretrain", f"data.path={tmp_path / 'empty'}", f"out={tmp_path / 'r2'}"], "no images found"),
        (["pretrain", f"data.path={tmp_path / 'data.tar'}", f"out={tmp_path / 'r3'}"], "data.tar"),
        (["pretrain", "optim.lrr=1"], "unknown key 'optim.lrr'"),
        (["pretrain", "train.epochs=-3"], "train.epochs"),
        (["pretrain", f"out={tmp_path / 'r4'}"], "data.path: no training images given"),
        (["pretrain", "--resume", f"out={tmp_path / 'r5'}", f"data.path={unlabelled}"], "nothing to resume"),
        (
            [
                "pretrain",
                "preset=digits",
                f"data.path={unlabelled}",
                f"data.eval_path={unlabelled}",
                f"out={tmp_path / 'r6'}",
            ],
            "has no labels",
        ),
        (
            [
                "eval",
                f"encoder={tmp_path / 'bad_encoder.safetensors'}",
                f"train_path={unlabelled}",
                f"test_path={unlabelled}",
            ],
            "bad_encoder.safetensors",
        ),
        (["eval", f"encoder={tmp_path}", "train_path=a", "test_path=b"], "encoder not found"),
        (["embed", "encoder=x"], "Field required"),
    ]
    for argv, fragment in cases:
        code, _, err = _run(capsys, *argv)
        _assert_one_line_error(code, err, fragment)
    # Runs that failed on their input created no run folder.
    assert not any((tmp_path / f"r{i}").exists() for i in range(1, 7))


def test_config_command_prints_resolved_yaml(capsys) -> None:
    code, out, _ = _run(capsys, "config", "pretrain", "preset=cifar10", "train.epochs=3")
    assert code == 0 and "backbone: resnet18" in out and "epochs: 3" in out


def test_real_process_exit_code_and_no_traceback(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gensis", "pretrain", f"data.path={tmp_path / 'nope.zip'}", f"out={tmp_path / 'r'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"gensis: error: no such file or folder: {tmp_path / 'nope.zip'}"]


def test_pretrain_cli_writes_run_and_prints_encoder(capsys, tmp_path) -> None:
    data = write_npz(tmp_path / "d.npz", 64)
    code, out, _ = _run(
        capsys,
        "pretrain",
        "-q",
        "preset=digits",
        f"data.path={data}",
        f"out={tmp_path / 'run'}",
        "train.epochs=1",
        "train.batch_size=32",
        "dino.out_dim=32",
        "dino.hidden_dim=32",
        "dino.bottleneck_dim=16",
        "data.cache_dir=null",
    )
    assert code == 0 and f"encoder: {tmp_path / 'run' / 'exported' / 'encoder.safetensors'}" in out


@pytest.mark.parametrize("which", ["train-generator", "eval", "embed"])
def test_config_command_lists_keys_of_every_command(capsys, which) -> None:
    code, out, _ = _run(capsys, "config", which)
    assert code == 0 and "<required>" in out


def test_run_and_tile_commands_are_wired(tmp_path, capsys) -> None:
    assert main(["config", "run"]) == 0
    keys = capsys.readouterr().out
    assert "gen_dino: {}" in keys and "stage3_init:" in keys
    assert main(["config", "tile"]) == 0
    assert "tile_size:" in capsys.readouterr().out
    code = main(["tile", f"slides={tmp_path / 'none'}", f"out={tmp_path / 'tiles'}", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(tmp_path / "none") in err
