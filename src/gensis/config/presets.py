"""Named presets: partial configs applied over the schema defaults.

``default`` is DINO's published ViT-S/16 recipe (facebookresearch/dino defaults, 224 px,
2 global + 8 local crops). ``cifar10`` follows lightly's CIFAR-10 DINO benchmark (CIFAR-stem
ResNet-18, 2 global 32-px crops, no blur, 2-layer BN head with 2048 prototypes, SGD
0.06 per 128 images with weight decay 5e-4, cosine), so the two can be compared one to one.
``cifar10-vit`` is the ViT variant for 32-px images (ViT-Tiny with 4-px patches, DINO's
ViT settings). ``96px`` is for 96-px images such as STL-10 or PCam tiles (ResNet-18 with its
standard stem, 2 global 96-px + 6 local 48-px crops). ``histology`` is ``96px`` with
augmentations for H&E tiles (all flips and rotations, mild colour jitter, no solarization,
PCam mean/std); ``histology-224`` is ``default`` with the same augmentations for 224-px tiles.
``digits`` is the laptop demo on scikit-learn's bundled handwritten digits (16 px).
``GENERATOR_DEFAULTS`` gives the stage-2 UNet that goes with a preset in ``gensis run``.
"""

from __future__ import annotations

from typing import Any

from gensis.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "data": {"resolution": 224},
        "augment": {
            "global_crop_size": 224,
            "global_crop_scale": (0.4, 1.0),
            "n_local_crops": 8,
            "local_crop_size": 96,
            "local_crop_scale": (0.05, 0.4),
        },
        "model": {"backbone": "vit_small_patch16_224", "backbone_kwargs": {"drop_path_rate": 0.1}},
        "dino": {"out_dim": 65536, "warmup_teacher_temp_epochs": 0},
        "optim": {"name": "adamw", "lr": 0.0005, "weight_decay": 0.04, "weight_decay_end": 0.4},
        "train": {"epochs": 100, "batch_size": 256},
    },
    "cifar10": {
        "data": {"resolution": 32},
        "augment": {
            "global_crop_size": 32,
            "global_crop_scale": (0.4, 1.0),
            "n_local_crops": 0,
            "blur_p": (0.0, 0.0, 0.0),
        },
        "model": {"backbone": "resnet18", "cifar_stem": True},
        "dino": {
            "out_dim": 2048,
            "hidden_dim": 2048,
            "bottleneck_dim": 256,
            "head_layers": 2,
            "head_batch_norm": True,
            "warmup_teacher_temp_epochs": 0,
        },
        "optim": {
            "name": "sgd",
            "lr": 0.12,
            "min_lr": 0.0,
            "warmup_epochs": 0,
            "weight_decay": 5e-4,
            "weight_decay_end": 5e-4,
        },
        "train": {"epochs": 200, "batch_size": 512, "knn_every": 20},
    },
    "cifar10-vit": {
        "data": {"resolution": 32},
        "augment": {
            "global_crop_size": 32,
            "global_crop_scale": (0.25, 1.0),
            "n_local_crops": 6,
            "local_crop_size": 16,
            "local_crop_scale": (0.05, 0.25),
            "blur_p": (0.0, 0.0, 0.0),
        },
        "model": {"backbone": "vit_tiny_patch16_224", "backbone_kwargs": {"patch_size": 4, "drop_path_rate": 0.1}},
        "dino": {"out_dim": 4096, "warmup_teacher_temp_epochs": 0},
        "optim": {"name": "adamw", "lr": 0.0005, "weight_decay": 0.04, "weight_decay_end": 0.4},
        "train": {"epochs": 200, "batch_size": 512, "knn_every": 20},
    },
    "96px": {
        "data": {"resolution": 96},
        "augment": {
            "global_crop_size": 96,
            "global_crop_scale": (0.25, 1.0),
            "n_local_crops": 6,
            "local_crop_size": 48,
            "local_crop_scale": (0.05, 0.25),
        },
        "model": {"backbone": "resnet18"},
        "dino": {"out_dim": 4096, "head_layers": 2, "head_batch_norm": True, "warmup_teacher_temp_epochs": 0},
        "optim": {
            "name": "sgd",
            "lr": 0.12,
            "min_lr": 0.0,
            "warmup_epochs": 10,
            "weight_decay": 5e-4,
            "weight_decay_end": 5e-4,
        },
        "train": {"epochs": 200, "batch_size": 256, "knn_every": 20},
    },
    "digits": {
        "data": {"resolution": 16},
        "augment": {
            "global_crop_size": 16,
            "global_crop_scale": (0.5, 1.0),
            "n_local_crops": 0,
            "hflip_p": 0.0,
            "blur_p": (0.0, 0.0, 0.0),
        },
        "model": {"backbone": "resnet10t", "cifar_stem": True},
        "dino": {
            "out_dim": 1024,
            "hidden_dim": 1024,
            "bottleneck_dim": 128,
            "head_layers": 2,
            "head_batch_norm": True,
            "warmup_teacher_temp_epochs": 0,
        },
        "optim": {
            "name": "sgd",
            "lr": 0.12,
            "min_lr": 0.0,
            "warmup_epochs": 1,
            "weight_decay": 5e-4,
            "weight_decay_end": 5e-4,
        },
        "train": {"epochs": 30, "batch_size": 128, "knn_every": 10, "log_every": 5},
    },
}


def _extend(base: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    """``base`` with some keys of some sections replaced."""
    return {**base, **{name: {**base.get(name, {}), **keys} for name, keys in sections.items()}}


# Augmentations that respect tissue (H&E tiles), for any tile size.
TISSUE_AUGMENT: dict[str, Any] = {
    # Tissue has no up, down or handedness: every flip and rotation is a true view.
    "hflip_p": 0.5,
    "vflip_p": 0.5,
    "rot90_p": 0.75,  # k in {1, 2, 3} when applied, so all four rotations have p = 1/4
    # Stain-variation proxy: AugmentConfig has no HED (stain-space) jitter op, so
    # brightness/contrast carry stain intensity and hue/saturation stay mild, since
    # large hue shifts make H&E colours that no slide has.
    "brightness": 0.2,
    "contrast": 0.2,
    "saturation": 0.1,
    "hue": 0.02,
    "grayscale_p": 0.1,  # a little colour invariance without losing the stain signal
    "blur_p": (1.0, 0.1, 0.5),  # DINO's blur kept: scanner focus varies across a slide
    "solarize_p": 0.0,  # solarization inverts H&E into colours no stain produces
    # Per-channel pixel mean/std of all 20,000 tiles of ../shared/data/pcam/train.zip
    # (RGB in [0, 1], one pass over every pixel), computed once with numpy + PIL.
    "mean": (0.6982, 0.5387, 0.6898),
    "std": (0.2370, 0.2799, 0.2236),
}
# 96-px tiles (PCam): the `96px` recipe (crops of 25-100 % at 96 px and 6 locals of 5-25 % at
# 48 px, ResNet-18 with timm's standard stem, head and optimizer) with tissue augmentations.
PRESETS["histology"] = _extend(PRESETS["96px"], augment=TISSUE_AUGMENT)
# 224-px tiles (e.g. 0.5 mpp slides through `gensis tile`): DINO's ViT-S/16 recipe and crops
# (globals 40-100 %, 8 locals of 5-40 % at 96 px), as pathology DINO models use, with tissue
# augmentations.
PRESETS["histology-224"] = _extend(PRESETS["default"], augment=TISSUE_AUGMENT)

# Stage-2 settings that go with a preset in `gensis run` (the pipeline's `generator.*` keys
# override them). Latent presets get an `autoencoder` stage that trains the latent space on the
# same images (or give `generator.model.vae=<folder>`). H&E tiles use it at 96 px too: on PCam, with
# `pixel96` given the latent side's whole time (its autoencoder included), the latent views found
# their source in 12.7 % of 100 tiles against 1.5 % over 3 seeds (benchmarks/latent_vs_pixel96.py,
# docs/RESULTS.md).
# `96px` keeps `pixel96`: STL-10-like images were not measured.
GENERATOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "96px": {"model.spec": "pixel96"},
    "histology": {"model.space": "latent", "model.spec": "latent"},
    "histology-224": {"model.space": "latent", "model.spec": "latent"},
}


def get_preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
