"""Gen-SIS on CIFAR-10: DINO vs Gen-DINO without disentanglement vs Gen-DINO, plus a
compute-fair DINO baseline, with kNN (k=20, 200) and a linear probe on the test split.

The protocol of Gen-SIS (arXiv 2412.01672) at our scale: stage 1 trains DINO; stage 2 trains
the embedding-conditioned generator and writes the view bank; stage 3 continues from the
stage-1 weights for the same number of epochs three ways (same backbone, same recipe):

* ``control``: DINO without generated views (the equal-epoch baseline);
* ``gen-dino-nodis``: Gen-DINO with (real, generated) pairs, ``lambda_dis = 0``;
* ``gen-dino``: Gen-DINO with the disentanglement task.

``dino-compute-fair`` continues stage 1 with plain DINO for as many epochs as the seconds
the generator, the bank and Gen-DINO cost (measured in this run), so it gets the whole
Gen-SIS pipeline's compute. Every run is one ``gensis run`` folder plus two extra stage-3
runs; a rerun skips what is done.

    python benchmarks/gensis_cifar10.py --scale cpu --no-nodis   # 5k images, ResNet-10t, 3 stage-3 seeds:
                                                                 # 1 h 25 min on 2 cores
    python benchmarks/gensis_cifar10.py --scale gpu --device cuda   # 50k images, the cifar10 preset
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _gensis_run import experiment_main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"

SCALES: dict[str, dict[str, Any]] = {
    # 2 CPU cores: a spread 5k-image subset at the native 32 px; ResNet-10t with its
    # standard stem (10x cheaper than the CIFAR stem on the CPU) and a small UNet.
    "cpu": {
        "data.max_images": 5000,
        "pretrain": {
            "model.backbone": "resnet10t",
            "model.cifar_stem": False,
            "train.epochs": 40,
            "train.knn_every": 0,
            "train.log_every": 5,
        },
        # 1,560 steps of 64; EMA 0.995, since 0.999 still averages in the first, unconditioned
        # weights after 1,500 steps (measured on PCam, 2026-11-30).
        "generator": {
            "model.spec": "tiny",
            "model.block_out_channels": [32, 64, 64],
            "train.batch_size": 64,
            "train.epochs": 20,
            "train.lr": 5e-4,
            "train.warmup_steps": 50,
            "train.ema_decay": 0.995,
            "train.log_every": 20,
        },
        "generate": {"views_per_image": 1, "interpolations_per_image": 1, "steps": 10, "batch_size": 500},
        # Stage 3 continues stage 1 (heads, teacher, center too) for half its length: 90 steps
        # moved neither encoder on PCam, so this is long enough to move both.
        "gen_dino": {"train.epochs": 20, "optim.warmup_epochs": 1},
        "show": {"steps": 10},
        "linear_epochs": 100,
    },
    # One GPU: the full training set, lightly's CIFAR-10 DINO recipe (cifar10 preset) and
    # the 32-px UNet preset.
    "gpu": {
        "pretrain": {"train.epochs": 200, "train.knn_every": 20},
        "generator": {"model.spec": "pixel32", "train.batch_size": 256, "train.epochs": 100},
        "generate": {"views_per_image": 4, "interpolations_per_image": 1, "steps": 20, "batch_size": 1000},
        "gen_dino": {"train.epochs": 100},
        "linear_epochs": 100,
    },
}


if __name__ == "__main__":
    experiment_main("gensis_cifar10", __doc__, SCALES, DATA, preset="cifar10")
