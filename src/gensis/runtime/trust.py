"""Files are trusted by what they are, never by their name.

Every file gensis appends to, locks or reads byte by byte goes through here:

* a file gensis writes in place (a lock, ``metrics.jsonl``, ``train.log``) is opened with
  ``O_NOFOLLOW`` and must be one regular file with one link, so a symlink or a hard link planted
  under that name never redirects the write to a user's file (whole files are written atomically,
  :mod:`gensis.runtime.io`, which replaces a link rather than following it);
* a file gensis reads (an image, a small JSON or YAML) must be a regular file under a size cap,
  opened non-blocking, so a FIFO named ``pipe.png`` cannot hang a run and a link to ``/dev/zero``
  named ``zero.png`` cannot fill the memory;
* file names are kept as the operating system gave them (surrogate-escaped) and shown with
  backslash escapes, so a name that is not valid UTF-8 is named in a message, not a traceback.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gensis.errors import DataError, GensisError, by_rule

MAX_TEXT_BYTES = 16 << 20  # a config, an index or a result JSON
# POSIX flags (0 where the platform has none, e.g. Windows, which has no FIFOs or symlink tricks of this kind)
_NOFOLLOW, _CLOEXEC, _NONBLOCK = (getattr(os, f"O_{n}", 0) for n in ("NOFOLLOW", "CLOEXEC", "NONBLOCK"))


def display(name: str | os.PathLike) -> str:
    """A file name fit for a one-line message, whatever bytes it holds."""
    return os.fsdecode(os.fsencode(name)).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def what_it_is(mode: int) -> str:
    """What a file that is not a regular file is, for a message (from its ``st_mode``)."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def open_owned(path: str | Path, flags: int, mode: int = 0o644) -> int:
    """A descriptor on ``path`` for gensis to write in place: never through a symlink, and only
    on one regular file with one link (a refusal is one line naming the file and the rule)."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK, mode)
    except OSError as err:
        if os.path.islink(path):
            raise GensisError(
                by_rule(
                    "no-links",
                    f"{display(path)}: a symbolic link where gensis writes a file of "
                    "its own; it is never followed, remove the link",
                )
            ) from None
        raise GensisError(f"{display(path)}: cannot write: {err.strerror or err}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = what_it_is(st.st_mode) if not stat.S_ISREG(st.st_mode) else f"a file with {st.st_nlink} hard links"
        raise GensisError(
            by_rule(
                "no-links",
                f"{display(path)}: {what} where gensis writes a file of its own; "
                "it is never written through, remove it",
            )
        )
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return fd


def read_owned(path: str | Path, limit: int) -> bytes:
    """The bytes of a file gensis writes in place (``metrics.jsonl``), read as :func:`open_owned`
    opens it: never through a link, so a planted link cannot feed a user's file in as a record."""
    fd = open_owned(path, os.O_RDONLY)
    try:
        data = _read_upto(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise DataError(f"{display(path)}: over the cap of {limit:,} bytes")
    return data


def _read_upto(fd: int, n: int) -> bytes:
    """At most ``n`` bytes from ``fd`` (fewer at its end)."""
    chunks, left = [], n
    while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def append_text(path: str | Path, text: str) -> None:
    """Append ``text`` to a file gensis owns (created when missing), through :func:`open_owned`."""
    fd = open_owned(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        data = text.encode("utf-8", "backslashreplace")
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def read_regular(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; a FIFO, a device or a larger file
    raises :class:`DataError` in one line, without blocking and without reading past the cap."""
    try:
        fd = os.open(path, os.O_RDONLY | _CLOEXEC | _NONBLOCK)
    except OSError as err:
        raise DataError(f"{display(path)}: cannot read {what}: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{display(path)}: {what_it_is(st.st_mode)}, not a regular file; skipped")
        if st.st_size > limit:
            raise DataError(
                f"{display(path)}: {st.st_size:,} bytes, over the cap of {limit:,} (max_image_bytes for images)"
            )
        if _NONBLOCK:
            os.set_blocking(fd, True)
        data = _read_upto(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # grew while read
        raise DataError(f"{display(path)}: over the cap of {limit:,} bytes (max_image_bytes for images)")
    return data


def read_text(path: str | Path, what: str = "file", limit: int = MAX_TEXT_BYTES) -> str:
    """A small text file gensis reads by a fixed name (an index, a result, a marker): a regular
    file under ``limit``, UTF-8 (odd bytes kept surrogate-escaped); else one line."""
    return read_regular(path, limit, what).decode("utf-8", "surrogateescape")


def regular_file_problem(st: os.stat_result, limit: int) -> str | None:
    """Why a listed file is not read (not regular, or over the cap); None when it may be."""
    if not stat.S_ISREG(st.st_mode):
        return f"{what_it_is(st.st_mode)}, not a regular file"
    if st.st_size > limit:
        return f"{st.st_size:,} bytes, over the size cap max_image_bytes={limit:,}"
    return None
