"""The pipeline's evaluation stage: kNN and linear probe of each encoder, cached by file hash."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gensis.config.schema import PipelineConfig
from gensis.runtime.io import file_sha256, write_result_json
from gensis.runtime.trust import read_text

log = logging.getLogger("gensis.run")


def evaluate_stage(name: str, encoder_path: Path, cfg: PipelineConfig, folder: Path, results: dict[str, Any]) -> bool:
    """Evaluate one exported encoder into ``folder/<name>.json``; False when already done."""
    from gensis.data import load_images
    from gensis.eval.evaluate import evaluate_encoder
    from gensis.runtime.checkpoint import load_encoder
    from gensis.runtime.device import resolve_device

    out = folder / f"{name}.json"
    digest = file_sha256(encoder_path)
    saved = _saved_result(out, digest, cfg)
    if saved is not None:
        results[name] = saved
        return False
    device = resolve_device(cfg.device)
    encoder = load_encoder(encoder_path, device)
    meta = encoder.info
    resolution, (mean, std) = meta.resolution, meta.normalization()  # refused before the data loads
    kw: dict[str, Any] = dict(
        require_labels=True,
        cache_dir=cfg.data.cache_dir,
        progress=cfg.progress,
        max_image_bytes=cfg.data.max_image_bytes,
    )
    # both set: stage_configs refuses a run without data.path, and the caller evaluates only with an eval_path
    assert cfg.data.path is not None and cfg.data.eval_path is not None
    train = load_images(cfg.data.path, resolution, max_images=cfg.data.max_images, **kw)
    test = load_images(cfg.data.eval_path, resolution, **kw)
    folder.mkdir(parents=True, exist_ok=True)
    result = evaluate_encoder(
        encoder,
        train,
        test,
        mean=mean,
        std=std,
        knn_k=cfg.knn_k,
        linear=cfg.linear,
        linear_epochs=cfg.linear_epochs,
        device=device,
        seed=cfg.seed,
        progress=cfg.progress,
        extra={
            "encoder": str(encoder_path),
            "encoder_sha256": digest,
            "linear_epochs": cfg.linear_epochs,
            "method": meta.method or "?",
            "trained_steps": meta.trained_steps or 0,
        },
    )
    write_result_json(out, result)
    results[name] = result
    log.info(
        "eval %s: kNN %s%s",
        name,
        result["knn_top1"],
        f", linear {result['linear']['top1']:.2f}" if "linear" in result else "",
    )
    return True


def _saved_result(out: Path, digest: str, cfg: PipelineConfig) -> dict[str, Any] | None:
    """The evaluation saved for this encoder file and probe length; None when there is none."""
    if not out.exists():
        return None
    saved = json.loads(read_text(out, "evaluation"))
    # "knn_correct": evaluations older than the paired test are redone once
    same = saved.get("encoder_sha256") == digest and saved.get("linear_epochs") == cfg.linear_epochs
    return saved if same and "knn_correct" in saved else None
