"""One writer per run folder (runtime/lock.py): a second process stops with one line naming
the holder, and a lock dies with its process however the process ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _synthetic import tiny_generator, write_npz

import gensis
from gensis.cli import main
from gensis.runtime import lock
from gensis.runtime.lock import FolderBusy

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
TINY = {
    "preset": "digits",
    "data.cache_dir": None,
    "model.backbone": "resnet10t",
    "dino.out_dim": 32,
    "dino.hidden_dim": 32,
    "dino.bottleneck_dim": 16,
    "train.batch_size": 16,
    "train.epochs": 1,
    "train.knn_every": 0,
    "train.progress": False,
}


def _holder(folder: Path):
    """Another process that takes the folder's lock and waits; returns it once it holds the lock."""
    code = textwrap.dedent(f"""
        import sys, time
        from gensis.runtime import lock
        lock.hold({str(folder)!r})
        print("held", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_stops_with_one_line_naming_the_holder(tmp_path, capsys) -> None:
    data = write_npz(tmp_path / "d.npz", 32)
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        code = main(["pretrain", "-q", *[f"{k}={v}" for k, v in TINY.items()], f"data.path={data}", f"out={out}"])
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert f"another gensis process is writing this folder (pid {holder.pid} on " in lines[0]
        assert sorted(p.name for p in out.iterdir()) == [lock.LOCK_NAME]  # nothing of a run was written
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL released it: the same command now runs
    assert main(["pretrain", "-q", *[f"{k}={v}" for k, v in TINY.items()], f"data.path={data}", f"out={out}"]) == 0


def test_the_lock_is_dropped_when_its_process_is_killed(tmp_path) -> None:
    holder = _holder(tmp_path / "f")
    with pytest.raises(FolderBusy, match=f"pid {holder.pid} "):
        lock.hold(tmp_path / "f")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock.hold(tmp_path / "f")  # the lock file is still there, its lock is not
    lock.release(tmp_path / "f")


def test_a_command_releases_its_locks_when_it_returns(tmp_path) -> None:
    data = write_npz(tmp_path / "d.npz", 32)
    gensis.pretrain({**TINY, "data.path": str(data), "out": str(tmp_path / "run")})
    assert (tmp_path / "run").resolve() not in lock._HELD
    check = subprocess.run(
        [sys.executable, "-c", f"from gensis.runtime import lock; lock.hold({str(tmp_path / 'run')!r})"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr


def test_generate_and_the_pipeline_take_the_lock_too(tmp_path) -> None:
    _, data, gen = tiny_generator(tmp_path)
    for folder, call in (
        (
            tmp_path / "bank",
            lambda: gensis.generate(
                {
                    "generator": str(gen),
                    "data_path": str(data),
                    "steps": 1,
                    "out": str(tmp_path / "bank"),
                    "progress": False,
                    "cache_dir": None,
                }
            ),
        ),
        (
            tmp_path / "pipe",
            lambda: gensis.run(
                {
                    "out": str(tmp_path / "pipe"),
                    "preset": "digits",
                    "progress": False,
                    "data.path": str(data),
                    "data.cache_dir": None,
                }
            ),
        ),
    ):
        holder = _holder(folder)
        try:
            with pytest.raises(FolderBusy, match=f"pid {holder.pid} "):
                call()
        finally:
            holder.kill()
            holder.wait()
        assert not [p for p in lock._HELD if tmp_path.resolve() in p.parents]
