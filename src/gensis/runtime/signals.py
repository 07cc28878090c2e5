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
from typing import Any

from gensis.errors import GensisError

HANDLED = (signal.SIGTERM, signal.SIGINT)


class Interrupted(GensisError):
    """Stopped by a signal at a safe point (its work saved); exit code 128 + signal number."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} {message}")
        self.exit_code = 128 + signum


class TrainingInterrupted(Interrupted):
    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        super().__init__(
            signum,
            f"after step {step}; checkpoint saved to {checkpoint}; "
            "continue with --resume (gensis run: rerun the same command)",
        )


# Every GracefulStop block now open, innermost last: a signal is recorded in all of them, so
# `gensis run` still knows of one that a stage caught (e.g. in its last step) and stops after it.
_active: list[GracefulStop] = []


class GracefulStop:
    """Context manager: ``stop.signal`` is set when SIGTERM/SIGINT arrives inside the block."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}  # the handlers signal.signal returned

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():  # signal handlers: main thread only
            self._previous = {s: signal.signal(s, self._handle) for s in HANDLED}
            _active.append(self)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        if self in _active:
            _active.remove(self)
        if exc_type is None and self.signal is not None and not _active and self._previous:
            # Caught after the block's last safe point, with no outer block (gensis run's) to act on
            # it: stop here, rather than let a script that called the API carry on as if none came.
            raise Interrupted(self.signal, "after its work was saved; the caller stops here")

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        for stop in _active or [self]:
            stop.signal = signum
