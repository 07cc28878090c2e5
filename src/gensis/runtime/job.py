"""One training run as every trainer takes it (issue 42: one object, not 10+ positional arguments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gensis.runtime.distributed import Dist
from gensis.runtime.run_folder import RunFolder
from gensis.runtime.signals import GracefulStop

C = TypeVar("C")


@dataclass(frozen=True)
class Job(Generic[C]):
    """The resolved config, the run folder, whether the run resumes from its last checkpoint, this
    process's place among the ranks, and the stop it listens to (SIGINT/SIGTERM: a checkpoint
    at the next step, then exit)."""

    cfg: C
    run: RunFolder
    resume: bool = False
    info: Dist = field(default_factory=Dist)
    stop: GracefulStop | None = None
