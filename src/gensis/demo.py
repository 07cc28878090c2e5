"""The laptop demo: DINO on real handwritten digits, evaluated before and after.

The data is scikit-learn's bundled copy of the UCI optical-recognition digits (1,797 real
8x8 scans, 10 classes), which installs from PyPI with scikit-learn: nothing is downloaded
at run time. The demo trains the ``digits`` preset, then compares kNN accuracy of the
randomly initialized encoder with the pretrained one, so the number it prints means
something on its own. Rerunning it resumes (or skips) the same run folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from gensis.api import evaluate_encoder, pretrain_config
from gensis.data import demo_digits
from gensis.models.backbones import build_encoder
from gensis.runtime.checkpoint import load_encoder
from gensis.runtime.io import atomic_write_text
from gensis.runtime.pretrain import run_pretrain
from gensis.runtime.run_folder import RunFolder

log = logging.getLogger("gensis.demo")


def demo(overrides: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("preset", "digits")
    kwargs.setdefault("out", "runs/demo")
    cfg = pretrain_config(overrides, **kwargs)
    train, test = demo_digits(resolution=cfg.data.resolution)
    log.info("demo data: %d train / %d test digits at %d px", len(train), len(test), cfg.data.resolution)
    mean, std = cfg.augment.mean, cfg.augment.std
    common = dict(mean=mean, std=std, batch_size=256, seed=cfg.train.seed, progress=cfg.train.progress)

    torch.manual_seed(cfg.train.seed)
    random_encoder = build_encoder(cfg.model, cfg.data.resolution)
    before = evaluate_encoder(random_encoder, train, test, linear=False, **common)

    resume = RunFolder(cfg.out).last_checkpoint.exists()
    result = run_pretrain(cfg, resume=resume, data=train, eval_data=test)
    after = evaluate_encoder(load_encoder(result.encoder_path), train, test, linear=True, **common)

    summary = {
        "dataset": "scikit-learn digits (UCI optical recognition of handwritten digits)",
        "n_train": len(train),
        "n_test": len(test),
        "resolution": cfg.data.resolution,
        "backbone": cfg.model.backbone,
        "epochs": cfg.train.epochs,
        "random_init": before["knn_top1"],
        "dino": after["knn_top1"],
        "dino_linear_top1": after["linear"]["top1"],
        "encoder": str(result.encoder_path),
    }
    atomic_write_text(Path(cfg.out) / "demo_results.json", json.dumps(summary, indent=2) + "\n")
    return summary


def format_demo(summary: dict[str, Any]) -> str:
    ks = list(summary["dino"])
    lines = [
        f"gensis demo: DINO on {summary['n_train']} real handwritten digits "
        f"({summary['resolution']} px, {summary['backbone']}, {summary['epochs']} epochs), "
        f"tested on {summary['n_test']}",
        f"{'encoder':<22}" + "".join(f"{'kNN k=' + k:>12}" for k in ks) + f"{'linear':>10}",
        f"{'random init':<22}" + "".join(f"{summary['random_init'][k]:>11.2f}%" for k in ks) + f"{'-':>10}",
        f"{'DINO (gensis)':<22}" + "".join(f"{summary['dino'][k]:>11.2f}%" for k in ks)
        + f"{summary['dino_linear_top1']:>9.2f}%",
        f"encoder: {summary['encoder']}",
    ]
    return "\n".join(lines)
