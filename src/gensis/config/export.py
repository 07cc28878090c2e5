"""Config of ``gensis export`` (kept out of schema.py, which holds the training configs)."""

from __future__ import annotations

from pydantic import Field

from gensis.config.base import StrictModel
from gensis.config.paths import InputPath, OutputFile


class ExportConfig(StrictModel):
    """``gensis export``: an encoder as one self-contained file (TorchScript, torch.export or ONNX)."""

    encoder: InputPath = Field(..., description="run folder or exported encoder .safetensors")
    out: OutputFile = Field(
        ...,
        description=".pt: TorchScript (torch.jit.load), .pt2: torch.export (torch.export.load), "
        ".onnx: ONNX (onnxruntime; needs gensis[onnx])",
    )
