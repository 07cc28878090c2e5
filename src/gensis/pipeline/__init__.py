"""``gensis run``: stage 1 -> embed -> stage 2 -> generate -> stage 3 -> eval -> report."""

from gensis.pipeline.stage_configs import StageConfigs, stage_configs
from gensis.pipeline.stages import run_pipeline

__all__ = ["StageConfigs", "run_pipeline", "stage_configs"]
