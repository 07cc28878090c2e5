"""gensis: self-supervised learning with generative self-augmentation (Gen-SIS, GenView).

Public API (one function per CLI subcommand): :func:`pretrain`, :func:`evaluate`,
:func:`embed`, :func:`demo`, plus :func:`load_encoder` for exported encoders.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
# One function per CLI subcommand, imported from gensis.api on first use.
_API = (
    "run",
    "pretrain",
    "train_autoencoder",
    "train_generator",
    "generate",
    "eval_generator",
    "show",
    "evaluate",
    "embed",
    "export",
)
__all__ = [*_API, "demo", "load_encoder", "load_images", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `gensis --version` and config errors should not wait for torch to import.
    if name in _API:
        from gensis import api

        return getattr(api, name)
    if name == "demo":
        from gensis.demo import demo

        return demo
    if name == "load_encoder":
        from gensis.runtime.checkpoint import load_encoder

        return load_encoder
    if name == "load_images":
        from gensis.data import load_images

        return load_images
    raise AttributeError(f"module 'gensis' has no attribute {name!r}")
