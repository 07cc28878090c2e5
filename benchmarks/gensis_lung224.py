"""Gen-SIS on 224-px H&E lung tiles (LC25000), end to end with nothing from outside: stage 1,
an autoencoder trained on the same tiles, a latent generator, its view bank, Gen-DINO and its
control, kNN and a linear probe on the 600 test tiles.

The protocol of ``gensis_pcam.py`` (one ``gensis run`` folder) with the ``histology-224``
preset; no ``generator.model.vae`` is given, so the pipeline trains its own autoencoder.
LC25000 holds rotated and flipped copies of 250 source images per class in both splits: use
its accuracies for comparisons, not as a benchmark of new slides.

    python benchmarks/gensis_lung224.py --scale cpu --stage3-seeds 1 --no-compute-fair --no-nodis   # < 1 h on 2 cores
    python benchmarks/gensis_lung224.py --scale gpu --device cuda
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _gensis_run import experiment_main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lc25000-lung"

# A ResNet-10t in the `histology` recipe (SGD, BN head with 4,096 prototypes) instead of the
# preset's ViT-S/16, whose 224-px steps do not fit an hour on 2 cores.
RESNET = {
    "model.backbone": "resnet10t",
    "model.backbone_kwargs.drop_path_rate": 0.0,
    "dino.out_dim": 4096,
    "dino.hidden_dim": 2048,
    "dino.bottleneck_dim": 256,
    "dino.head_layers": 2,
    "dino.head_batch_norm": True,
    "optim.name": "sgd",
    "optim.lr": 0.12,
    "optim.min_lr": 0.0,
    "optim.weight_decay": 5e-4,
    "optim.weight_decay_end": 5e-4,
    "optim.warmup_epochs": 1,
}

SCALES: dict[str, dict[str, Any]] = {
    # 2 CPU cores, all 2,400 training tiles at 224 px. Stage 1 learns from 112-px global crops
    # (4x cheaper than 224: 19 against 4 crops/s here) and embeds whole 224-px tiles; no local crops.
    "cpu": {
        "pretrain": {
            **RESNET,
            "augment.global_crop_size": 112,
            "augment.n_local_crops": 0,
            "train.batch_size": 64,
            "train.epochs": 4,
            "train.knn_every": 0,
            "train.log_every": 5,
        },
        # The own autoencoder: 8x down (28x28x4 latents), widths 16-64, 64-px crops (0.34 s/step);
        # 750 steps, past the bend of its PSNR curve (~450 steps, docs/RESULTS.md).
        "autoencoder": {
            "model.block_out_channels": [16, 32, 64, 64],
            "train.epochs": 5,
            "train.batch_size": 16,
            "train.crop_size": 64,
            "train.eval_every": 150,
            "train.log_every": 25,
        },
        # The PCam CPU generator's widths on 28x28x4 latents; EMA 0.995 for a short run.
        "generator": {
            "model.block_out_channels": [32, 64, 64],
            "train.batch_size": 64,
            "train.epochs": 16,
            "train.lr": 5e-4,
            "train.warmup_steps": 50,
            "train.ema_decay": 0.995,
            "train.log_every": 20,
            "train.monitor_every": 100,
        },
        "generate": {"views_per_image": 1, "interpolations_per_image": 1, "steps": 10, "batch_size": 250},
        "gen_dino": {"train.epochs": 2},
        "show": {"steps": 10},
        "linear_epochs": 100,
    },
    # One GPU: the preset's ViT-S/16 with its local crops, the default autoencoder and latent UNet.
    "gpu": {
        "pretrain": {"train.epochs": 100, "train.batch_size": 128, "train.knn_every": 20},
        "autoencoder": {"train.epochs": 50, "train.batch_size": 32, "train.crop_size": 128},
        "generator": {"train.batch_size": 128, "train.epochs": 100},
        "generate": {"views_per_image": 4, "interpolations_per_image": 1, "steps": 20, "batch_size": 250},
        "gen_dino": {"train.epochs": 50},
        "linear_epochs": 100,
    },
}

if __name__ == "__main__":
    experiment_main("gensis_lung224", __doc__, SCALES, DATA, preset="histology-224", nodis=False, compute_fair=False)
