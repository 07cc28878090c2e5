"""CIFAR-10 kNN / linear accuracy of gensis DINO after a fixed training budget.

Pretrains with the ``cifar10`` preset on ../shared/data/cifar10/train.zip (optionally a
class-balanced prefix of it, and fewer epochs, for CPU budgets), then evaluates the exported
teacher encoder on the full train (kNN bank / probe training) and test splits: weighted kNN
(k=20, k=200, T=0.07) and a linear probe. Prints and appends one JSON line with the figures,
the wall time of each phase and the machine.

    # the issue's GPU target: 200 epochs, full data
    python benchmarks/cifar10_knn_budget.py --epochs 200
    # a CPU budget
    python benchmarks/cifar10_knn_budget.py --epochs 2 --max-images 10000 --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _common import emit, header

import gensis
import gensis.api
from gensis.api import evaluate_encoder
from gensis.runtime.device import resolve_device

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", default=str(DATA / "train.zip"))
    p.add_argument("--test", default=str(DATA / "test.zip"))
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--max-images", type=int, default=None, help="train on a prefix of train.zip")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--out", default="runs/bench_cifar10")
    p.add_argument("--device", default="auto")
    p.add_argument("--results", default=None, help="append the JSON result to this file")
    p.add_argument("--resume", action="store_true")
    p.add_argument(
        "--random-baseline", action="store_true", help="also report kNN of the same backbone at random initialization"
    )
    p.add_argument("set", nargs="*", metavar="key=value", help="extra pretrain settings")
    args = p.parse_args()

    from gensis.config.overrides import parse_overrides

    settings = {
        "preset": "cifar10",
        "out": args.out,
        "data.path": args.train,
        "model.backbone": args.backbone,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "train.device": args.device,
        "train.knn_every": 0,
        **({"data.max_images": args.max_images} if args.max_images else {}),
        **parse_overrides(args.set),
    }
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    run = gensis.pretrain(settings, resume=args.resume)
    train_s = time.perf_counter() - t0

    encoder = gensis.load_encoder(run.encoder_path, device)
    meta = encoder.extra_metadata
    train = gensis.load_images(args.train, 32, require_labels=True)
    test = gensis.load_images(args.test, 32, require_labels=True)
    t1 = time.perf_counter()
    res = evaluate_encoder(
        encoder,
        train,
        test,
        mean=tuple(json.loads(meta["mean"])),
        std=tuple(json.loads(meta["std"])),
        batch_size=512,
        device=device,
    )
    eval_s = time.perf_counter() - t1
    eval_kw = dict(
        mean=tuple(json.loads(meta["mean"])), std=tuple(json.loads(meta["std"])), batch_size=512, device=device
    )
    baseline = None
    if args.random_baseline:
        from gensis.models.backbones import build_encoder

        cfg = gensis.api.pretrain_config(settings)
        torch.manual_seed(cfg.train.seed)
        random_encoder = build_encoder(cfg.model, 32).to(device)
        baseline = evaluate_encoder(random_encoder, train, test, linear=False, **eval_kw)["knn_top1"]
    result = {
        **header("cifar10_knn_budget", device),
        "backbone": args.backbone,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_images": args.max_images or len(train),
        "steps": run.steps,
        "pretrain_minutes": round(train_s / 60, 2),
        "eval_minutes": round(eval_s / 60, 2),
        "knn_top1": res["knn_top1"],
        "random_init_knn_top1": baseline,
        "linear_top1": res["linear"]["top1"],
        "extra_settings": args.set,
    }
    emit(result, args.results)


if __name__ == "__main__":
    main()
