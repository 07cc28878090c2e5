"""``gensis run`` as one command: every stage of the pipeline inside one experiment."""

from __future__ import annotations

from typing import Any

from gensis.config.schema import PipelineConfig
from gensis.pipeline.stages import run_pipeline
from gensis.runtime.loggers import experiment


def run_command(cfg: PipelineConfig) -> dict[str, Any]:
    """Every stage in ``cfg.out``, skipped when already done; each stage folder logs under its
    name (pretrain/..., gen-dino/...) in the one experiment of the loggers."""
    with experiment(cfg.out, cfg.loggers, config=cfg.model_dump(mode="json")):
        return run_pipeline(cfg)
