"""Ctrl-C during training, as docs/multi-gpu.md promises: "SIGTERM or Ctrl-C ends a training run at
the end of the current step, with a checkpoint of that step (exit code 143 or 130).
`--resume` continues it exactly". (SIGTERM is test_faults.py's.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from _processes import ENV, cli_argv, wait_for_step
from _synthetic import write_npz
from safetensors.torch import load_file

from gensis.runtime.checkpoint import load_state

# 48 images, batch 16: 3 steps per epoch; 40 epochs is far more than a test waits for.
ARGS = [
    "-q",
    "preset=digits",
    "data.cache_dir=null",
    "train.device=cpu",
    "model.backbone=resnet10t",
    "dino.out_dim=32",
    "dino.hidden_dim=32",
    "dino.bottleneck_dim=16",
    "train.batch_size=16",
    "train.epochs=40",
    "train.log_every=1",
    "train.knn_every=0",
    "train.progress=false",
]
STEPS = 12  # the reference's length; the run is interrupted before


@pytest.fixture
def launch():
    """Starts ``gensis pretrain`` subprocesses; ends those still running after the test."""
    started: list[subprocess.Popen] = []

    def start(*args: str, processes: int = 1) -> subprocess.Popen:
        started.append(_pretrain(*args, processes=processes))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the launcher and its workers
            proc.wait()


def _pretrain(*args: str, processes: int = 1) -> subprocess.Popen:
    # A session of its own, as a terminal's foreground job: Ctrl-C goes to all its processes.
    return subprocess.Popen(
        cli_argv("pretrain", *ARGS, *args, processes=processes),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _stopped(proc: subprocess.Popen, timeout: float = 60) -> str:
    """stderr of a process that must end soon after a signal."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {timeout} s after SIGINT") from None


def _steps(out: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def _losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_ctrl_c_saves_the_step_exits_130_and_resume_continues_exactly(tmp_path, launch) -> None:
    data = write_npz(tmp_path / "train.npz", 48)
    reference = launch(f"data.path={data}", f"out={tmp_path / 'ref'}", f"train.max_steps={STEPS}")
    out = tmp_path / "run"
    proc = launch(f"data.path={data}", f"out={out}")
    wait_for_step(out, 2, proc)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    err = _stopped(proc)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gensis: stopped by SIGINT after step"), err
    assert "continue with --resume" in lines[0] and "Traceback" not in err
    step = int(lines[0].split("after step ")[1].split(";")[0])
    assert 2 <= step < STEPS, f"stopped after step {step}: too late for this test"
    assert load_state(out / "checkpoints" / "last.pt")["step"] == step  # that step, not the last epoch's
    assert _steps(out) == list(range(1, step + 1))

    resumed = launch(f"data.path={data}", f"out={out}", f"train.max_steps={STEPS}", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    assert reference.wait(timeout=300) == 0, reference.communicate()
    assert _steps(out) == list(range(1, STEPS + 1))
    a, b = (load_file(str(p / "exported" / "encoder.safetensors")) for p in (tmp_path / "ref", out))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_ctrl_c_under_torchrun_saves_the_step_on_every_rank_and_resumes(tmp_path, launch) -> None:
    """Ctrl-C in the terminal of a ``torchrun`` job: SIGINT to torchrun and both workers, and
    torchrun sends the workers another (which a worker may take for a second Ctrl-C). The
    workers stop after the same step; rank 0 saves it; 2 processes resume from it to the
    weights of an uninterrupted 2-process run. (torchrun itself then ends with its own
    traceback and exit code 1.)"""
    data = write_npz(tmp_path / "train.npz", 48)
    reference = launch(f"data.path={data}", f"out={tmp_path / 'ref'}", f"train.max_steps={STEPS}", processes=2)
    out = tmp_path / "run"
    proc = launch(f"data.path={data}", f"out={out}", processes=2)
    wait_for_step(out, 2, proc)
    os.killpg(proc.pid, signal.SIGINT)
    err = _stopped(proc)
    stops = [x for x in err.splitlines() if x.startswith("gensis: stopped by SIGINT after step")]
    assert len(stops) == 2 and stops[0] == stops[1], err[-3000:]  # both ranks, the same step
    step = int(stops[0].split("after step ")[1].split(";")[0])
    assert 2 <= step < STEPS, f"stopped after step {step}: too late for this test"
    assert load_state(out / "checkpoints" / "last.pt")["step"] == step
    resumed = launch(f"data.path={data}", f"out={out}", f"train.max_steps={STEPS}", "--resume", processes=2)
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    assert _steps(out) == list(range(1, STEPS + 1))
    assert reference.wait(timeout=300) == 0, reference.communicate()
    assert _losses(tmp_path / "ref") == _losses(out)
    a, b = (load_file(str(p / "exported" / "encoder.safetensors")) for p in (tmp_path / "ref", out))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
