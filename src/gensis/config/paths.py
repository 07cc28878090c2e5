"""The role of each path field in a command's config, read by the output guard (runtime/guards.py).

A string field without a role is an input whenever it names something on disk, so a new path
field is guarded by default; a role only makes the intent explicit (and an output an output).
"""

from __future__ import annotations

import enum
from typing import Annotated


class Role(enum.Enum):
    INPUT = "input"
    OUTPUT_DIR = "output folder"
    OUTPUT_FILE = "output file"
    OUTPUT_ANY = "output: a file when the name has a suffix, else a folder"
    SCRATCH = "scratch"  # a cache: written and read, but neither the user's data nor a result


InputPath = Annotated[str, Role.INPUT]
OutputDir = Annotated[str, Role.OUTPUT_DIR]
OutputFile = Annotated[str, Role.OUTPUT_FILE]
OutputAny = Annotated[str, Role.OUTPUT_ANY]
ScratchDir = Annotated[str, Role.SCRATCH]
