"""The fixed layout of a run folder (as in lightly-train).

    <out>/config.yaml              resolved config
    <out>/metrics.jsonl            one JSON object per logged step / evaluation
    <out>/train.log                human log
    <out>/checkpoints/last.pt      full training state (weights_only-loadable)
    <out>/exported/encoder.safetensors   teacher backbone for downstream use
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gensis.config.overrides import to_yaml
from gensis.errors import GensisError
from gensis.runtime.io import atomic_write_text

LOGGER_NAME = "gensis"


class RunFolder:
    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.root / "train.log"

    @property
    def last_checkpoint(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def exported_encoder(self) -> Path:
        return self.root / "exported" / "encoder.safetensors"

    def create(self) -> None:
        try:
            (self.root / "checkpoints").mkdir(parents=True, exist_ok=True)
            (self.root / "exported").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GensisError(f"cannot create run folder {self.root}: {exc.strerror or exc}") from None

    def write_config(self, cfg: BaseModel) -> None:
        atomic_write_text(self.config_path, to_yaml(cfg))

    def log_metrics(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        clean.setdefault("time", round(time.time(), 3))
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(clean) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop records written after the checkpoint's step (they will be redone)."""
        records = [r for r in self.read_metrics() if r.get("step", -1) <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))

    def attach_log(self) -> logging.Handler:
        handler = logging.FileHandler(self.log_path)
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger(LOGGER_NAME)
        # The run log is complete whoever called us (the CLI, or a script that set no logging).
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        return handler


def setup_console_logging(level: int = logging.INFO) -> None:
    """Console output at ``level``; the logger itself stays at INFO so run logs are complete."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    console = [h for h in logger.handlers if getattr(h, "_gensis_console", False)]
    if not console:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("%(message)s"))
        h._gensis_console = True  # type: ignore[attr-defined]
        logger.addHandler(h)
        console = [h]
    for h in console:
        h.setLevel(level)
