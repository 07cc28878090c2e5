"""Frozen-feature evaluation of an encoder on labelled train/test images: weighted kNN and a
linear probe (the figures every stage of the pipeline and ``gensis eval`` report)."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from gensis.config.schema import EvalConfig
from gensis.data import ImageData, load_images
from gensis.eval.features import extract_features
from gensis.eval.knn import knn_accuracy, knn_ks_used
from gensis.eval.labels import align_labels
from gensis.eval.linear import linear_probe
from gensis.eval.significance import encode_correct
from gensis.models.backbones import Encoder
from gensis.runtime.checkpoint import load_encoder
from gensis.runtime.device import resolve_device
from gensis.runtime.io import write_result_json

log = logging.getLogger("gensis.eval")


# long: its signature is one keyword per line (ruff format); the body is under 50 lines
def evaluate_encoder(
    encoder: Encoder,
    train: ImageData,
    test: ImageData,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    knn_k: list[int] | tuple[int, ...] = (20, 200),
    temperature: float = 0.07,
    linear: bool = True,
    linear_epochs: int = 100,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    seed: int = 0,
    out: str | None = None,
    extra: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """kNN + linear probe of ``encoder`` on labelled ``train``/``test`` images."""
    labels = align_labels(train, test)  # by class name; refuses disjoint sets before any work
    if not bool(labels.keep.all()):
        test = test.subset(labels.keep)
    t0 = time.perf_counter()
    kw: dict[str, Any] = dict(mean=mean, std=std, batch_size=batch_size, device=device, progress=progress)
    train_f = extract_features(encoder, train, desc="train features", **kw)
    test_f = extract_features(encoder, test, desc="test features", **kw)
    n_classes = labels.num_classes
    correct: dict[int, torch.Tensor] = {}
    knn = knn_accuracy(
        train_f,
        labels.train,
        test_f,
        labels.test,
        k=knn_ks_used(knn_k, len(train), train.source),
        temperature=temperature,
        num_classes=n_classes,
        correct=correct,
    )
    result: dict[str, Any] = {
        **(extra or {}),
        "train": train.source,
        "test": test.source,
        "n_train": len(train),
        "n_test": len(test),
        "embed_dim": int(train_f.shape[1]),
        "knn_temperature": temperature,
        "knn_top1": {str(k): round(v, 2) for k, v in knn.items()},
        # per test image, for paired tests between encoders (gensis.eval.significance)
        "knn_correct": {str(k): encode_correct(c.tolist()) for k, c in correct.items()},
    }
    if linear:
        probe = linear_probe(
            train_f,
            labels.train,
            test_f,
            labels.test,
            num_classes=n_classes,
            epochs=linear_epochs,
            seed=seed,
            progress=progress,
        )
        result["linear"] = probe
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if out:
        write_result_json(out, result)
    return result


def format_eval_table(result: dict[str, Any]) -> str:
    rows = [("metric", "top-1 %")]
    rows += [(f"kNN k={k} (T={result['knn_temperature']})", f"{v:.2f}") for k, v in result["knn_top1"].items()]
    if "linear" in result:
        rows.append(("linear probe", f"{result['linear']['top1']:.2f}"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b:>8}" for a, b in rows]
    lines.insert(1, "-" * (width + 10))
    return "\n".join(lines)


def run_evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """``gensis eval``: weighted kNN (DINO, cosine, T=0.07) and a linear probe of a frozen encoder."""
    device = resolve_device(cfg.device)
    encoder = load_encoder(cfg.encoder, device)
    meta = encoder.info
    resolution, (mean, std) = cfg.resolution or meta.resolution, meta.normalization()  # before the data loads
    train = _load_labelled(cfg.train_path, resolution, cfg)
    test = _load_labelled(cfg.test_path, resolution, cfg)
    return evaluate_encoder(
        encoder,
        train,
        test,
        mean=mean,
        std=std,
        knn_k=cfg.knn_k,
        temperature=cfg.knn_temperature,
        linear=cfg.linear,
        linear_epochs=cfg.linear_epochs,
        batch_size=cfg.batch_size,
        device=device,
        seed=cfg.seed,
        out=cfg.out,
        extra={"encoder": str(cfg.encoder)},
        progress=cfg.progress,
    )


def _load_labelled(path: str, resolution: int, cfg: EvalConfig) -> ImageData:
    return load_images(
        path,
        resolution,
        require_labels=True,
        cache_dir=cfg.cache_dir,
        max_images=cfg.max_images,
        progress=cfg.progress,
        max_image_bytes=cfg.max_image_bytes,
    )
