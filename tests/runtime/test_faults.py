"""Faults during training: SIGTERM saves and exits cleanly, SIGKILL resumes to the same
weights, a full disk keeps the last good checkpoint."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _processes import ENV, wait_for_step
from _synthetic import write_npz
from safetensors.torch import load_file

import gensis
from gensis.errors import GensisError
from gensis.runtime.checkpoint import load_state

# 96 images, batch 32: 3 steps per epoch; 40 epochs is far more than a test waits for.
ARGS = [
    "preset=digits",
    "data.cache_dir=null",
    "model.backbone=resnet10t",
    "dino.out_dim=64",
    "dino.hidden_dim=64",
    "dino.bottleneck_dim=32",
    "train.batch_size=32",
    "train.epochs=40",
    "train.log_every=1",
    "train.knn_every=0",
    "train.progress=false",
]


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gensis.cli", "pretrain", "-q", *ARGS, *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "exported" / "encoder.safetensors"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_npz(tmp_path_factory.mktemp("faults") / "train.npz", 96)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """An uninterrupted run of 9 steps (3 epochs) in a subprocess like the others."""
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = _cli(f"data.path={data}", f"out={out}", "train.max_steps=9")
    assert proc.wait(timeout=300) == 0, proc.communicate()
    return out


def test_sigterm_saves_the_step_and_exits_cleanly(data, reference, tmp_path) -> None:
    out = tmp_path / "run"
    proc = _cli(f"data.path={data}", f"out={out}")
    wait_for_step(out, 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gensis: stopped by SIGTERM after step") and "Traceback" not in err
    step = int(lines[0].split("after step ")[1].split(";")[0])
    assert load_state(out / "checkpoints" / "last.pt")["step"] == step
    resumed = _cli(f"data.path={data}", f"out={out}", "train.max_steps=9", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    a, b = _weights(reference), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigkill_mid_epoch_resumes_to_the_same_weights(data, reference, tmp_path) -> None:
    out = tmp_path / "run"
    proc = _cli(f"data.path={data}", f"out={out}")
    wait_for_step(out, 5, proc)  # past the first epoch's checkpoint, inside the second epoch
    proc.kill()
    proc.wait(timeout=60)
    saved = load_state(out / "checkpoints" / "last.pt")["step"]
    assert saved >= 3 and saved % 3 == 0
    resumed = _cli(f"data.path={data}", f"out={out}", "train.max_steps=9", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 10))  # redone steps are not logged twice
    a, b = _weights(reference), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_full_disk_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    settings = {k: v for k, v in (a.split("=", 1) for a in ARGS)}
    settings.update({"train.epochs": "2", "train.progress": False, "data.cache_dir": None})
    gensis.pretrain({**settings, "data.path": str(data), "out": str(out), "train.max_steps": 3})
    good = (out / "checkpoints" / "last.pt").read_bytes()
    real_save = torch.save
    written = []

    def disk_full_halfway(obj, f, *args, **kwargs) -> None:
        """torch.save that gets half of the checkpoint onto the disk, then finds it full."""
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        with open(f, "wb") as fh:  # whatever file the writer handed over: the checkpoint or a temp file
            fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        written.append(Path(f))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", disk_full_halfway)
    with pytest.raises(GensisError, match="No space left on device"):
        gensis.pretrain({**settings, "data.path": str(data), "out": str(out)}, resume=True)
    monkeypatch.undo()
    assert written  # the failure did happen inside the checkpoint write, after half of it was written
    assert (out / "checkpoints" / "last.pt").read_bytes() == good
    assert load_state(out / "checkpoints" / "last.pt")["step"] == 3
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt"]  # no half file left behind


def test_sigterm_in_generator_training_saves_that_step(tmp_path, monkeypatch) -> None:
    from gensis.config.schema import ModelConfig
    from gensis.models.backbones import build_encoder
    from gensis.runtime.checkpoint import export_encoder
    from gensis.runtime.signals import TrainingInterrupted
    from gensis.train import generator as gen_train

    enc = tmp_path / "encoder.safetensors"
    export_encoder(
        enc,
        build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8),
        {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"},
    )
    calls = {"n": 0}
    real_loss = gen_train.training_loss

    def loss_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-step; the step still finishes
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(gen_train, "training_loss", loss_then_signal)
    out = tmp_path / "gen"
    with pytest.raises(TrainingInterrupted, match="SIGTERM after step 2") as exc:
        gensis.train_generator(
            {
                "model.spec": "tiny",
                "encoder": str(enc),
                "out": str(out),
                "train.batch_size": 8,
                "train.epochs": 5,
                "train.progress": False,
                "data.cache_dir": None,
                "data.path": str(write_npz(tmp_path / "d.npz", 24, size=8)),
            }
        )
    assert exc.value.exit_code == 128 + signal.SIGTERM
    assert load_state(out / "checkpoints" / "last.pt")["step"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again
