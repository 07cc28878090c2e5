"""The device check of Gen-SIS: what one GPU does in 9 minutes, written to one folder.

Three measurements, each inside its own time budget (the ``budget`` part of ``benchmarks/gpu_check.sh``):

1. **Throughput**: gensis vs lightly's DINO pipeline (``throughput_dino.py``: ResNet-18 with
   the CIFAR stem, bf16, channels_last on the gensis side), images/s.
2. **Stage 1 on CIFAR-10**: the ``cifar10`` preset for as many epochs as fit in the budget,
   chosen from a short timed calibration run, then kNN (k=20, 200) on the test images.
3. **Stage 2**: the ``pixel32`` UNet on that encoder for as many steps as fit in its budget,
   then a bank of 1 view per training image and its faithfulness (source retrieval among all
   of them, beside real stage-1 views; class consistency), measured on 500 sources.

``prepare`` writes the data the device needs (a class-balanced CIFAR-10 subset and the converged
comparison's 4k PCam tiles at 32 px with all 3,000 test tiles, as .npz, small enough to travel); ``--dry``
runs everything with tiny budgets on the CPU (on a tiny subset):

    python benchmarks/gpu_check.py prepare --cifar ../shared/data/cifar10 --to .gpu_data
    python benchmarks/gpu_check.py run --data .gpu_data --out $OUT            # on the GPU
    python benchmarks/gpu_check.py prepare --to runs/gpu_dry_data --train-images 400 --test-images 200
    python benchmarks/gpu_check.py run --data runs/gpu_dry_data --out runs/gpu_check --dry
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import header

import gensis
from gensis.api import pretrain_config
from gensis.runtime.device import resolve_device

HERE = Path(__file__).resolve().parent
BUDGETS = {  # seconds: (throughput steps, stage 1, generator); the device check must end in 9 minutes
    "gpu": {"throughput_steps": 50, "throughput_batch": 512, "stage1_s": 240, "generator_s": 180},
    "dry": {"throughput_steps": 2, "throughput_batch": 32, "stage1_s": 20, "generator_s": 15},
}


def prepare(cifar: Path, to: Path, n_train: int, n_test: int) -> None:
    """Spread, class-balanced subsets of CIFAR-10 as .npz (the zips are too big to carry)."""
    to.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        data = gensis.load_images(str(cifar / f"{split}.zip"), 32, max_images=n)
        images = data.images.permute(0, 2, 3, 1).numpy()
        np.savez_compressed(to / f"cifar10_{split}.npz", images=images, labels=data.labels.numpy())
        print(f"{to / f'cifar10_{split}.npz'}: {len(data)} images")


def prepare_pcam(pcam: Path, to: Path, n_train: int, resolution: int = 32) -> None:
    """The converged comparison's PCam images as .npz, pixel for pixel what the CPU decodes from the
    zips (the same spread subset of ``n_train`` tiles, in the same order, and every test tile)."""
    to.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", None)):
        data = gensis.load_images(str(pcam / f"{split}.zip"), resolution, max_images=n)
        images = data.images.permute(0, 2, 3, 1).numpy()
        np.savez_compressed(to / f"pcam_{split}.npz", images=images, labels=data.labels.numpy())
        print(f"{to / f'pcam_{split}.npz'}: {len(data)} images")


def _write(out: Path, name: str, value: Any) -> None:
    (out / name).write_text(json.dumps(value, indent=2) + "\n")


def _epochs_in(budget_s: float, calib_s: float, calib_steps: int, steps_per_epoch: int) -> int:
    per_step = calib_s / calib_steps  # start-up included: errs on the short side
    return max(1, int(budget_s / (per_step * steps_per_epoch)))


def stage1(data: Path, out: Path, device: str, budget_s: float, dry: bool) -> dict[str, Any]:
    base = {
        "preset": "cifar10",
        "train.device": device,
        "data.path": str(data / "cifar10_train.npz"),
        "train.knn_every": 0,
        "train.progress": False,
    }
    if dry:  # the CPU can afford only a small backbone
        base.update({"model.backbone": "resnet10t", "model.cifar_stem": False, "train.batch_size": 64})
    calib_steps = 3 if dry else 20
    t0 = time.perf_counter()
    gensis.pretrain({**base, "out": str(out / "stage1_calibration"), "train.max_steps": calib_steps})
    calib = time.perf_counter() - t0
    cfg = pretrain_config({**base, "out": str(out / "stage1")})
    n = len(np.load(data / "cifar10_train.npz")["labels"])
    epochs = _epochs_in(budget_s, calib, calib_steps, max(1, n // cfg.train.batch_size))
    t0 = time.perf_counter()
    gensis.pretrain({**base, "out": str(out / "stage1"), "train.epochs": epochs})
    seconds = time.perf_counter() - t0
    ev = gensis.evaluate(
        {
            "encoder": str(out / "stage1" / "exported" / "encoder.safetensors"),
            "train_path": base["data.path"],
            "test_path": str(data / "cifar10_test.npz"),
            "linear": False,
            "device": device,
        }
    )
    return {
        "epochs": epochs,
        "images": n,
        "seconds": round(seconds, 1),
        "knn_top1": ev["knn_top1"],
        "calibration_s_per_step": round(calib / calib_steps, 3),
    }


def stage2(data: Path, out: Path, device: str, budget_s: float, dry: bool) -> dict[str, Any]:
    base = {
        "encoder": str(out / "stage1"),
        "train.device": device,
        "data.path": str(data / "cifar10_train.npz"),
        "model.spec": "tiny" if dry else "pixel32",
        "train.progress": False,
        "train.monitor_every": 0,
    }
    if dry:
        base.update({"model.block_out_channels": [32, 64, 64], "train.batch_size": 32})
    calib_steps = 3 if dry else 50
    t0 = time.perf_counter()
    gensis.train_generator({**base, "out": str(out / "generator_calibration"), "train.max_steps": calib_steps})
    per_step = (time.perf_counter() - t0) / calib_steps
    steps = max(1, int(budget_s / per_step))
    t0 = time.perf_counter()
    gensis.train_generator({**base, "out": str(out / "generator"), "train.max_steps": steps, "train.epochs": 10_000})
    seconds = time.perf_counter() - t0
    gensis.generate(
        {
            "generator": str(out / "generator"),
            "data_path": base["data.path"],
            "out": str(out / "bank"),
            "views_per_image": 1,
            "interpolations_per_image": 0,
            "steps": 10,
            "device": device,
            "progress": False,
        }
    )
    quality = json.loads((out / "bank" / "quality.json").read_text())  # faithfulness of <= 500 sources
    keep = ("retrieval_top1", "retrieval_median_rank", "class_consistency", "ceiling", "chance", "versus_ceiling")
    return {"steps": steps, "seconds": round(seconds, 1), "faithfulness": {k: quality.get(k) for k in keep}}


def run(data: Path, out: Path, device: str, dry: bool) -> dict[str, Any]:
    b = BUDGETS["dry" if dry else "gpu"]
    out.mkdir(parents=True, exist_ok=True)
    for name in ("stage1_calibration", "stage1", "generator_calibration", "generator", "bank"):
        shutil.rmtree(out / name, ignore_errors=True)  # this check's own scratch runs: measured anew
    result = header("gpu_check", resolve_device(device))
    result["budgets"] = b
    t0 = time.perf_counter()
    cmd = [
        sys.executable,
        str(HERE / "throughput_dino.py"),
        "--data",
        str(data / "cifar10_train.npz"),
        "--device",
        device,
        "--precision",
        "fp32" if dry else "bf16",  # bf16 convolutions crawl on CPUs
        "--batch-size",
        str(b["throughput_batch"]),
        "--steps",
        str(b["throughput_steps"]),
        "--out",
        str(out / "throughput.jsonl"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    result["throughput"] = (
        json.loads((out / "throughput.jsonl").read_text().splitlines()[-1])
        if done.returncode == 0
        else {"error": done.stderr.strip().splitlines()[-1:]}
    )
    _write(out, "result.json", result)
    result["stage1"] = stage1(data, out, device, b["stage1_s"], dry)
    _write(out, "result.json", result)
    result["stage2"] = stage2(data, out, device, b["generator_s"], dry)
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    _write(out, "result.json", result)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    prep = sub.add_parser("prepare")
    prep.add_argument("--cifar", default=str(HERE.parents[1] / "shared" / "data" / "cifar10"))
    prep.add_argument("--to", default=".gpu_data")
    prep.add_argument("--train-images", type=int, default=10000, help="CIFAR-10; 0: none")
    prep.add_argument("--test-images", type=int, default=5000)
    prep.add_argument(
        "--pcam",
        default=str(HERE.parents[1] / "shared" / "data" / "pcam"),
        help="also the converged comparison's PCam tiles (gpu_scratch.sh converged)",
    )
    prep.add_argument("--pcam-images", type=int, default=4000, help="0: no PCam")
    r = sub.add_parser("run")
    r.add_argument("--data", default=".gpu_data")
    r.add_argument("--out", default="runs/gpu_check")
    r.add_argument("--device", default="auto")
    r.add_argument("--dry", action="store_true", help="tiny budgets, for the CPU")
    args = p.parse_args()
    if args.cmd == "prepare":
        if args.train_images:  # 0: PCam only (the converged comparison: the carry is 64 MiB in all)
            prepare(Path(args.cifar), Path(args.to), args.train_images, args.test_images)
        if args.pcam_images:
            prepare_pcam(Path(args.pcam), Path(args.to), args.pcam_images)
    else:
        print(json.dumps(run(Path(args.data), Path(args.out), args.device, args.dry), indent=2))


if __name__ == "__main__":
    main()
