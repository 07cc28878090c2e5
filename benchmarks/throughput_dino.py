"""DINO pretraining throughput: gensis vs lightly's own DINO pipeline, side by side.

Both train the same timm ResNet-18 with CIFAR stem, the same 3-layer DINO head
(512 -> 2048 -> 2048 -> 256 -> 2048 prototypes, BatchNorm), the same batch, crops and
precision, with SGD and an EMA teacher. What differs is the pipeline:

* gensis: the decoded uint8 dataset lives on the compute device; multi-crop augmentation
  runs batched there (``gensis.augment.MultiCropAugment``).
* lightly: PIL images -> ``lightly.transforms.DINOTransform`` in DataLoader workers ->
  ``lightly.models.modules.DINOProjectionHead`` + ``lightly.loss.DINOLoss``, as in lightly's
  CIFAR-10 benchmark (lightly gets images already decoded into memory, which favours it).

Images/s counts source images per second of training, data loading included, after warm-up.

    python benchmarks/throughput_dino.py --data ../shared/data/cifar10/train.zip
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from _common import emit, header
from torch.utils.data import DataLoader, Dataset

import gensis
from gensis.augment import MultiCropAugment
from gensis.config.overrides import build_config
from gensis.config.schema import PretrainConfig
from gensis.data.batches import step_generator
from gensis.models.backbones import build_encoder
from gensis.runtime.device import autocast, resolve_device
from gensis.runtime.optim import build_optimizer, set_lr_wd
from gensis.ssl.dino import DINO


def _config(args: argparse.Namespace) -> PretrainConfig:
    return build_config(
        PretrainConfig,
        {
            "preset": "cifar10",
            "augment.n_local_crops": args.n_local,
            "augment.local_crop_size": 16,
            "dino.head_layers": 3,
            "train.batch_size": args.batch_size,
        },
    )


def bench_gensis(images: torch.Tensor, cfg: PretrainConfig, device: torch.device, args) -> float:
    torch.manual_seed(0)
    model = DINO(build_encoder(cfg.model, 32), cfg.dino).to(device)
    opt = build_optimizer(model.student, cfg.optim)
    set_lr_wd(opt, 0.06, 5e-4)
    augment = MultiCropAugment(cfg.augment)
    resident = images.to(device)
    n, bs = len(resident), args.batch_size
    t0 = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            _sync(device)
            t0 = time.perf_counter()
        idx = torch.randint(0, n, (bs,), generator=step_generator(1, step))
        views = augment(resident[idx.to(device)], step_generator(0, step))
        with autocast(device, args.precision):
            loss, _ = model(views, epoch=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.update_teacher(0.996)
    _sync(device)
    return args.steps * bs / (time.perf_counter() - t0)


class _PILDataset(Dataset):
    def __init__(self, images: torch.Tensor, transform) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i]))


def bench_lightly(images: torch.Tensor, cfg: PretrainConfig, device: torch.device, args) -> float:
    from lightly.loss import DINOLoss
    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms.dino_transform import DINOTransform

    torch.manual_seed(0)
    transform = DINOTransform(
        global_crop_size=32,
        global_crop_scale=cfg.augment.global_crop_scale,
        local_crop_size=16,
        n_local_views=args.n_local,
        gaussian_blur=(0.0, 0.0, 0.0),
    )
    loader = DataLoader(
        _PILDataset(images, transform),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
    )

    def make() -> torch.nn.Module:
        backbone = build_encoder(cfg.model, 32)
        return torch.nn.Sequential(backbone, DINOProjectionHead(backbone.embed_dim, 2048, 256, 2048, batch_norm=True))

    # lightly's head uses the legacy weight_norm, which cannot be deep-copied: build twice.
    student, teacher = make().to(device), make().to(device)
    teacher.load_state_dict(student.state_dict())
    deactivate_requires_grad(teacher)
    criterion = DINOLoss(output_dim=2048, warmup_teacher_temp_epochs=0).to(device)
    opt = torch.optim.SGD(student.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
    it = iter(loader)
    t0 = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            _sync(device)
            t0 = time.perf_counter()
        try:
            views = next(it)
        except StopIteration:
            it = iter(loader)
            views = next(it)
        update_momentum(student, teacher, m=0.996)
        views = [v.to(device, non_blocking=True) for v in views]
        with autocast(device, args.precision):
            teacher_out = [teacher(v) for v in views[:2]]
            student_out = [student(v) for v in views]
            loss = criterion(teacher_out, student_out, epoch=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return args.steps * args.batch_size / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data/cifar10/train.zip")
    p.add_argument("--max-images", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--n-local", type=int, default=0, help="local 16-px crops besides the 2 global 32-px ones")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="lightly DataLoader workers")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--out", default=None, help="append the result as one JSON line to this file")
    args = p.parse_args()

    device = resolve_device(args.device)
    data = gensis.load_images(args.data, 32, max_images=args.max_images)
    cfg = _config(args)
    result = {
        **header("dino_throughput", device),
        "batch_size": args.batch_size,
        "views": f"2x32px + {args.n_local}x16px",
        "steps": args.steps,
        "lightly_workers": args.workers,
    }
    result["gensis_images_per_s"] = round(bench_gensis(data.images, cfg, device, args), 1)
    result["lightly_images_per_s"] = round(bench_lightly(data.images, cfg, device, args), 1)
    result["speedup"] = round(result["gensis_images_per_s"] / result["lightly_images_per_s"], 2)
    emit(result, args.out)


if __name__ == "__main__":
    main()
