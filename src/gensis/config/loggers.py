"""``loggers``: experiment trackers that receive what ``metrics.jsonl`` records.

TensorBoard is on by default (when the ``tensorboard`` package is installed); Weights & Biases
and MLflow are opt-in extras that work without a network (W&B offline, MLflow in a local
folder). metrics.jsonl is always written and stays the record: a logger that fails only warns.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):  # as in schema.py, which imports this module
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TensorBoardLoggerConfig(StrictModel):
    enabled: bool = Field(True, description="event files in the run folder (one TensorBoard run per stage)")


class WandbLoggerConfig(StrictModel):
    enabled: bool = Field(False, description="Weights & Biases (pip install 'gensis[wandb]')")
    project: str = "gensis"
    entity: str | None = None
    name: str | None = Field(None, description="run name; default: the run folder's name")
    mode: Literal["auto", "online", "offline"] = Field(
        "auto",
        description="auto: online when logged in (WANDB_API_KEY or wandb login), else offline into the run folder",
    )


class MLflowLoggerConfig(StrictModel):
    enabled: bool = Field(False, description="MLflow (pip install 'gensis[mlflow]')")
    tracking_uri: str | None = Field(
        None,
        description="default: MLFLOW_TRACKING_URI, else a local SQLite store <out>/mlflow.db "
        "(artifacts in <out>/mlartifacts; mlflow ui --backend-store-uri sqlite:///<out>/mlflow.db)",
    )
    experiment: str = "gensis"
    run_name: str | None = Field(None, description="default: the run folder's name")


class LoggersConfig(StrictModel):
    """Where training metrics and pictures go besides metrics.jsonl (``gensis run``: one experiment,
    stage names as prefixes)."""

    tensorboard: TensorBoardLoggerConfig = Field(default_factory=TensorBoardLoggerConfig)
    wandb: WandbLoggerConfig = Field(default_factory=WandbLoggerConfig)
    mlflow: MLflowLoggerConfig = Field(default_factory=MLflowLoggerConfig)
