"""Input-pipeline throughput: gensis batched multi-crop vs lightly's per-image DINOTransform.

Same views (2 global 32-px crops + N local 16-px crops, colour jitter, grayscale,
solarization, no blur as in the CIFAR-10 presets), measured in one process so the numbers
are per core-set, without DataLoader workers on either side.

    python benchmarks/augment_throughput.py --data ../shared/data/cifar10/test.zip
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import emit, header

import gensis
from gensis.augment import MultiCropAugment
from gensis.config.overrides import build_config
from gensis.config.schema import PretrainConfig
from gensis.data.batches import step_generator
from gensis.runtime.device import resolve_device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data/cifar10/test.zip")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--n-local", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None)
    args = p.parse_args()

    device = resolve_device(args.device)
    data = gensis.load_images(args.data, 32, max_images=args.batch_size * args.batches)
    cfg = build_config(
        PretrainConfig, {"preset": "cifar10", "augment.n_local_crops": args.n_local, "augment.local_crop_size": 16}
    )
    augment = MultiCropAugment(cfg.augment)
    images = data.images.to(device)
    batches = images.split(args.batch_size)
    augment(batches[0], step_generator(0, 0))  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i, b in enumerate(batches):
        augment(b, step_generator(0, i))
    if device.type == "cuda":
        torch.cuda.synchronize()
    gensis_rate = len(images) / (time.perf_counter() - t0)

    from lightly.transforms.dino_transform import DINOTransform
    from PIL import Image

    transform = DINOTransform(
        global_crop_size=32,
        global_crop_scale=cfg.augment.global_crop_scale,
        local_crop_size=16,
        n_local_views=args.n_local,
        gaussian_blur=(0.0, 0.0, 0.0),
    )
    pil = [Image.fromarray(a) for a in data.images.permute(0, 2, 3, 1).numpy()]
    t0 = time.perf_counter()
    for im in pil:
        transform(im)
    lightly_rate = len(pil) / (time.perf_counter() - t0)

    result = {
        **header("augment_throughput", device),
        "views": f"2x32px + {args.n_local}x16px",
        "batch_size": args.batch_size,
        "images": len(images),
        "threads": torch.get_num_threads(),
        "gensis_images_per_s": round(gensis_rate, 1),
        "lightly_images_per_s_one_process": round(lightly_rate, 1),
        "speedup": round(gensis_rate / lightly_rate, 2),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
