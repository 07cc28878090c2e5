"""Config of ``gensis export`` (kept out of schema.py, which holds the training configs)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from gensis.config.base import StrictModel
from gensis.config.paths import InputPath, OutputFile
from gensis.config.products import Product

EXTRA_FILE = "gensis.json"  # the encoder's metadata inside a TorchScript or torch.export zip (under extra/)


class ExportConfig(StrictModel):
    """``gensis export``: an encoder as one self-contained file (TorchScript, torch.export or ONNX)."""

    # TorchScript and torch.export files are zips holding the encoder's metadata (runtime/export.py)
    product: ClassVar[Product] = Product(
        "export",
        archive_members=(f"extra/{EXTRA_FILE}", f"*/extra/{EXTRA_FILE}"),
        archive_suffixes=(".zip", ".pt", ".pt2"),
    )

    encoder: InputPath = Field(..., description="run folder or exported encoder .safetensors")
    out: OutputFile = Field(
        ...,
        description=".pt: TorchScript (torch.jit.load), .pt2: torch.export (torch.export.load), "
        ".onnx: ONNX (onnxruntime; needs gensis[onnx])",
    )
