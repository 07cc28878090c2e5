"""The role of each path field in a command's config, read by the output guard (runtime/guards.py).

A string field without a role is an input whenever it names something on disk, so a new path
field is guarded by default; a role only makes the intent explicit (and an output an output).
"""

from __future__ import annotations

import enum
import os
from typing import Annotated

from pydantic import AfterValidator


class Role(enum.Enum):
    INPUT = "input"
    OUTPUT_DIR = "output folder"
    OUTPUT_FILE = "output file"
    OUTPUT_ANY = "output: a file when the name has a suffix, else a folder"
    SCRATCH = "scratch"  # a cache: written and read, but neither the user's data nor a result


def _home(path: str) -> str:
    """``~`` and ``~user`` are expanded here, once: every reader, writer and the guard see one path.
    An empty path is refused: it would mean the current folder (``out=`` left empty would write a
    run into it and append to a ``train.log`` of yours)."""
    if not path.strip():
        raise ValueError("an empty path: give a path (or null where the key may be left out)")
    return os.path.expanduser(path)


Home = AfterValidator(_home)
InputPath = Annotated[str, Role.INPUT, Home]
OutputDir = Annotated[str, Role.OUTPUT_DIR, Home]
OutputFile = Annotated[str, Role.OUTPUT_FILE, Home]
OutputAny = Annotated[str, Role.OUTPUT_ANY, Home]
ScratchDir = Annotated[str, Role.SCRATCH, Home]
