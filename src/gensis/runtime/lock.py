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
import re
import socket
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gensis.errors import GensisError, by_rule
from gensis.runtime.trust import display, open_owned, read_regular

try:
    import fcntl
except ImportError:  # Windows: no flock; the folder is not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".gensis.lock"
_LOCK_LINE = re.compile(r"pid \d+ on \S* since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: ")
_HELD: dict[Path, int] = {}  # folder -> open file descriptor holding its lock

F = TypeVar("F", bound=Callable)


class FolderBusy(GensisError):
    """Another process is writing the folder."""


def hold(folder: str | Path) -> None:
    """Take the folder's lock for this process (a no-op when this process holds it already)."""
    root = Path(folder).resolve()
    if root in _HELD or fcntl is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GensisError(f"{display(root)}: cannot write this folder: {err.strerror or err}") from None
    path = root / LOCK_NAME
    fd = open_owned(path, os.O_RDWR | os.O_CREAT)  # never a link: it would point the lock line at a user's file
    head = os.pread(fd, 400, 0).decode("utf-8", "replace")
    if head and not _LOCK_LINE.match(head):
        os.close(fd)
        raise GensisError(
            by_rule(
                "foreign-file",
                f"{display(path)}: not a lock gensis wrote (it holds other text); "
                "it is never overwritten, choose another out=",
            )
        )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "a process that has not said who it is"
        os.close(fd)
        raise FolderBusy(
            by_rule(
                "one-writer",
                f"{root}: another gensis process is writing this folder ({holder}); "
                "wait for it to end or choose another out=",
            )
        ) from None
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}: {command}\n".encode(errors="replace"), 0)
    _HELD[root] = fd


def is_gensis_lock(folder: str | Path) -> bool:
    """Whether ``folder`` holds a lock file that gensis wrote: one small regular file (not a link)
    whose text is a lock line, or empty (a lock taken and not yet stamped)."""
    path = Path(folder) / LOCK_NAME
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > 1024:
            return False
        text = read_regular(path, 1024, "lock").decode("utf-8", "replace")
    except (OSError, GensisError):
        return False
    return text == "" or bool(_LOCK_LINE.match(text))


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
