"""One writer per run folder: an exclusive lock, held while a command writes the folder.

:func:`hold` creates ``<folder>/.gensis.lock`` and takes an exclusive ``flock`` on it. The
operating system drops the lock when the process ends, however it ends (an exception, Ctrl-C,
SIGKILL), so a lock file left behind never blocks anyone. A second process that wants the same
folder stops at once with one line naming the holder. :func:`released_after` lets go of the
locks a public function took, so a notebook can run one command after another.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gensis.errors import GensisError, by_rule

try:
    import fcntl
except ImportError:  # Windows: no flock; the folder is not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".gensis.lock"
_HELD: dict[Path, int] = {}  # folder -> open file descriptor holding its lock

F = TypeVar("F", bound=Callable)


class FolderBusy(GensisError):
    """Another process is writing the folder."""


def hold(folder: str | Path) -> None:
    """Take the folder's lock for this process (a no-op when this process holds it already)."""
    root = Path(folder).resolve()
    if root in _HELD or fcntl is None:
        return
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "a process that has not said who it is"
        os.close(fd)
        raise FolderBusy(by_rule("one-writer", f"{root}: another gensis process is writing this folder ({holder}); "
                                 "wait for it to end or choose another out=")) from None
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}: {command}\n".encode(), 0)
    _HELD[root] = fd


def release(folder: str | Path) -> None:
    fd = _HELD.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock


def released_after(fn: F) -> F:
    """Locks taken while ``fn`` runs are released when it returns or raises."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        before = set(_HELD)
        try:
            return fn(*args, **kwargs)
        finally:
            for folder in set(_HELD) - before:
                release(folder)

    return wrapper  # type: ignore[return-value]
