"""Self-contained encoder files: no gensis (and no timm) needed to load them.

``gensis export encoder=<run or .safetensors> out=encoder.pt`` writes TorchScript
(``torch.jit.load``); ``out=encoder.pt2`` writes a ``torch.export`` program
(``torch.export.load(...).module()``). Both take float images in [0, 1], shape (B, 3, H, W),
apply the encoder's own mean/std inside, and return the pooled embeddings (B, D), as
``gensis embed normalize=false``. This is how the CIFAR-stem ResNets, whose stem plain timm
cannot build, load in one line. The settings (backbone, resolution, mean, std) travel in the
file as ``gensis.json``.

``out=encoder.onnx`` writes ONNX (opset 18, the batch axis dynamic) for serving stacks
(onnxruntime, TensorRT, Triton): input ``images``, output ``embeddings``; the settings are in the
model's metadata (``gensis.json`` and one key each for resolution, mean, std, embed_dim). It
needs ``pip install 'gensis[onnx]'``; the file is checked in onnxruntime before it is kept.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from gensis.config.export import EXTRA_FILE, ExportConfig
from gensis.errors import ConfigError, GensisError
from gensis.runtime.io import atomic_write

FORMATS = {".pt": "torchscript", ".pt2": "torch.export", ".onnx": "onnx"}
ONNX_OPSET = 18

if TYPE_CHECKING:
    import numpy  # only the type of run_onnx's result


class NormalizedEncoder(nn.Module):
    """Images in [0, 1] -> (x - mean) / std -> backbone -> pooled embedding."""

    mean: torch.Tensor  # buffers (register_buffer)
    std: torch.Tensor

    def __init__(self, backbone: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - self.mean) / self.std)


def export_self_contained(encoder_path: str | Path, out: str | Path) -> Path:
    """Write the exported encoder ``encoder_path`` as TorchScript (.pt) or torch.export (.pt2)."""
    from gensis.runtime.checkpoint import load_encoder, resolve_encoder_path

    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"out: {out}: unknown export format {out.suffix!r} (.pt: TorchScript, .pt2: torch.export, .onnx: ONNX)"
        )
    if fmt == "onnx":
        _check_onnx_packages(out)  # before the encoder is read or anything written
    src = resolve_encoder_path(encoder_path)
    encoder = load_encoder(src, "cpu")
    meta = encoder.info
    mean, std = (list(v) for v in meta.normalization())
    model = NormalizedEncoder(encoder.backbone, mean, std).eval()
    res = meta.resolution
    info = {
        "backbone": meta.backbone,
        "cifar_stem": meta.cifar_stem,
        "backbone_kwargs": meta.backbone_kwargs,
        "resolution": res,
        "embed_dim": encoder.embed_dim,
        "mean": mean,
        "std": std,
        "input": "float images in [0, 1], shape (B, 3, H, W)",
        "output": "pooled embeddings (B, D), not L2-normalized",
        "source": src.name,
    }
    example = torch.rand(2, 3, res, res)
    extra = {EXTRA_FILE: json.dumps(info, indent=1)}
    # torch >= 2.9 marks TorchScript deprecated; .pt stays for tools that still load it (.pt2 is the future).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        expected = model(example)
        if fmt == "torchscript":
            program = _torchscript(model, example)
            atomic_write(out, lambda tmp: torch.jit.save(program, str(tmp), _extra_files=extra))
            got = torch.jit.load(str(out))(example)
        elif fmt == "torch.export":
            program = _torch_export(model, example)
            atomic_write(out, lambda tmp: _save_exported(program, tmp, extra))
            got = torch.export.load(str(out)).module()(example)
        else:
            atomic_write(out, lambda tmp: _save_onnx(model, example, tmp, info))
            got = torch.from_numpy(run_onnx(out, example.numpy()))
    if not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):  # never hand out a file that computes otherwise
        out.unlink(missing_ok=True)
        raise GensisError(
            f"{out}: the {fmt} file does not reproduce the encoder (max diff "
            f"{(got - expected).abs().max().item():.2e}); please report this backbone"
        )
    return out


def _torchscript(model: nn.Module, example: torch.Tensor):
    try:
        return torch.jit.script(model)
    except Exception:  # noqa: BLE001 - not every timm model scripts; tracing fixes the control flow
        return torch.jit.trace(model, example, check_trace=False)


def _save_exported(program, path: Path, extra: dict[str, str]) -> None:
    with open(path, "wb") as f:  # a file object: torch.export warns on a path without .pt2 (our temp name)
        torch.export.save(program, f, extra_files=extra)


def _torch_export(model: nn.Module, example: torch.Tensor):
    batch = torch.export.Dim("batch", min=1)
    return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))


def _check_onnx_packages(out: Path) -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"out: {out}: writing ONNX needs {', '.join(missing)} (pip install 'gensis[onnx]')")


def _save_onnx(model: nn.Module, example: torch.Tensor, path: Path, info: dict) -> None:
    import onnx

    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=["images"],
            output_names=["embeddings"],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    assert program is not None  # dynamo=True always returns the program
    proto = program.model_proto
    meta = {
        EXTRA_FILE: json.dumps(info),
        "resolution": str(info["resolution"]),
        "embed_dim": str(info["embed_dim"]),
        "mean": json.dumps(info["mean"]),
        "std": json.dumps(info["std"]),
        "input": info["input"],
        "output": info["output"],
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "gensis"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def run_onnx(path: str | Path, images) -> numpy.ndarray:
    """The embeddings an ONNX encoder file gives for float images in [0, 1] (B, 3, H, W), in onnxruntime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["embeddings"], {"images": images})[0]


def run_export(cfg: ExportConfig) -> Path:
    """``gensis export``: the encoder of ``cfg.encoder`` as the one file ``cfg.out``."""
    return export_self_contained(cfg.encoder, cfg.out)
