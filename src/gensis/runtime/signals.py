"""SIGTERM / SIGINT during training: finish the step, save a checkpoint, exit cleanly.

Cluster schedulers send SIGTERM before they kill a job (SLURM: ``--signal``, preemption);
a user presses Ctrl-C. Either way the run stops at the end of the current step with a
checkpoint of exactly that step, so ``--resume`` continues as if it had not stopped. A second
Ctrl-C stops at once (the last checkpoint on disk stays valid: writes are atomic).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

from gensis.errors import GensisError

HANDLED = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(GensisError):
    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} after step {step}; checkpoint saved to {checkpoint}; "
                         "continue with --resume (gensis run: rerun the same command)")
        self.exit_code = 128 + signum


class GracefulStop:
    """Context manager: ``stop.signal`` is set when SIGTERM/SIGINT arrives inside the block."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():  # signal handlers: main thread only
            self._previous = {s: signal.signal(s, self._handle) for s in HANDLED}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
