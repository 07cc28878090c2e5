"""``gensis run``: stage 1 -> embed -> stage 2 -> generate -> stage 3 -> eval -> report."""

from gensis.pipeline.stages import StageConfigs, run_pipeline, stage_configs

__all__ = ["StageConfigs", "run_pipeline", "stage_configs"]
