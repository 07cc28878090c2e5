"""gensis in other processes, for tests: the CLI alone or under torchrun, and waiting for a step."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

# Subprocesses import this checkout's gensis, one thread each (2 cores are shared by 2 ranks).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}


def free_port() -> int:
    """A free port for torchrun's rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_argv(*args: str, processes: int = 1) -> list[str]:
    """``python -m gensis.cli <args>``, or the same under ``torchrun --nproc_per_node=<processes>``."""
    if processes == 1:
        return [sys.executable, "-m", "gensis.cli", *args]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={processes}",
        f"--master_port={free_port()}",
        "-m",
        "gensis.cli",
        *args,
    ]


def run_cli(*args: str, processes: int = 1, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the command to its end; it must succeed."""
    proc = subprocess.run(
        cli_argv(*args, processes=processes), env=ENV, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def wait_for_step(out: Path, step: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Until ``out/metrics.jsonl`` has ``step`` rows; the process must still be running."""
    metrics = out / "metrics.jsonl"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= step:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no step {step} within {timeout} s")


def losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
