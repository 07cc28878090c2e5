"""Gen-SIS on PCam (H&E lymph-node tiles, tumour or not): DINO vs Gen-DINO, with kNN, a
linear probe, and the probe's AUC and F1 on the test split, as the Gen-SIS paper reports
for histopathology (arXiv 2412.01672, Table 4: PANDA, BRIGHT).

The protocol of ``gensis_cifar10.py`` (one ``gensis run`` folder: stage 1, generator, bank,
Gen-DINO and its equal-epoch control from the stage-1 weights) with the ``histology`` preset.

    python benchmarks/gensis_pcam.py --scale cpu    # 4k tiles at 32 px, 3 stage-3 seeds: 1 h 31 min on 2 idle cores
                                                    # (2026-12-01)
    python benchmarks/gensis_pcam.py --scale gpu --device cuda   # all 20k tiles at 96 px
    python benchmarks/gensis_pcam.py --stage1-epochs 186 --no-compute-fair --out runs/gensis_pcam_s1e186   # 1 h 24 min
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _gensis_run import experiment_main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pcam"

# 60 epochs meet the one-run convergence rule, yet 120 gain 4.0 linear points, and 240 another 1.3
# linear and 2.8 kNN k=20 points (docs/RESULTS.md, 2026-12-06): by the length test (doubling moves
# the linear probe by less than a point) 120 epochs are not converged. 240 is the shortest length
# not refuted; 480 (about 3 h on 2 cores) has not been run to confirm it.
CONVERGED_EPOCHS = 240

SCALES: dict[str, dict[str, Any]] = {
    # 2 CPU cores: a class-balanced spread 4k-tile subset, downscaled 96 -> 32 px (9x less
    # compute per image for the encoder and the UNet), the histology augmentations with two
    # global crops and no local crops (16-px locals of a 32-px tile hold a few nuclei at best),
    # ResNet-10t with its standard stem, and a small UNet.
    "cpu": {
        "data.max_images": 4000,
        "data.resolution": 32,
        "pretrain": {
            "model.backbone": "resnet10t",
            "augment.global_crop_size": 32,
            "augment.n_local_crops": 0,
            "augment.blur_p": [0.0, 0.0, 0.0],  # as lightly's 32-px recipe: blur erases nuclei
            "train.epochs": 30,
            "train.knn_every": 0,
            "train.log_every": 5,
        },
        # The demo's measured stage-2 budget scaled to 4k tiles (1,500 steps); EMA 0.995, since
        # 0.999 still averages in the first, unconditioned weights after 1,500 steps. Pixel space
        # (the preset's latent space is for 96-px tiles; these are downscaled to 32 px).
        "generator": {
            "model.space": "pixel",
            "model.spec": "tiny",
            "model.block_out_channels": [32, 64, 64],
            "train.batch_size": 64,
            "train.epochs": 25,
            "train.lr": 5e-4,
            "train.warmup_steps": 50,
            "train.ema_decay": 0.995,
            "train.log_every": 20,
        },
        # Guidance 1: guidance doubles the sampler's cost (8,000 tiles at 32 px: ~17 min more
        # with the compute-fair control), which does not fit one 2-hour session here.
        "generate": {"views_per_image": 1, "interpolations_per_image": 1, "steps": 10, "batch_size": 500},
        # Stage 3 continues stage 1 (heads, teacher, center too); 1 warm-up epoch, not the preset's 10.
        "gen_dino": {"train.epochs": 6, "optim.warmup_epochs": 1},
        "show": {"steps": 10},
        "linear_epochs": 100,
    }
}
_CPU = SCALES["cpu"]
SCALES |= {
    # Issue 37: the cpu scale with stage 1 long enough to converge (benchmarks/stage1_convergence.py,
    # docs/RESULTS.md 2026-12-06), the online kNN often enough for the report's convergence rule,
    # and fp32 pinned so that a GPU runs the identical recipe (gpu_scratch.sh converged; its seeds
    # merge with these only when recipe and pixels are identical).
    "converged": {
        **{k: v for k, v in _CPU.items() if k != "pretrain"},
        "pretrain": {
            **_CPU["pretrain"],
            "train.epochs": CONVERGED_EPOCHS,
            "train.knn_every": CONVERGED_EPOCHS // 20,
            "train.precision": "fp32",
        },
    },
    # One GPU: all 20k training tiles at 96 px, the histology preset as is: its own autoencoder
    # (4x, 24x24x4 latents) and the latent UNet.
    "gpu": {
        "pretrain": {"train.epochs": 100, "train.knn_every": 20},
        "generator": {"train.batch_size": 128, "train.epochs": 100},
        "generate": {"views_per_image": 4, "interpolations_per_image": 1, "steps": 20, "batch_size": 500},
        "gen_dino": {"train.epochs": 50},
        "linear_epochs": 100,
    },
}

if __name__ == "__main__":
    experiment_main("gensis_pcam", __doc__, SCALES, DATA, preset="histology", nodis=False)
