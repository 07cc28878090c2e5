"""Batched DINO multi-crop augmentation on the compute device (Caron et al. 2021).

:class:`MultiCropAugment` builds the global and local views of "Emerging Properties in
Self-Supervised Vision Transformers" from a uint8 batch; :mod:`gensis.augment.ops` holds
the per-sample-random batched ops it is made of.
"""

from gensis.augment.multicrop import MultiCropAugment, ViewKind, eval_transform
from gensis.augment.ops import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_color_jitter,
    color_jitter,
    draw_mask,
    gaussian_blur,
    gaussian_blur_sigma,
    normalize,
    random_grayscale,
    random_hflip,
    random_resized_crop,
    random_rot90,
    random_solarize,
    random_vflip,
    resized_crop,
    rgb_to_grayscale,
    sample_crop_boxes,
)

__all__ = [
    "MultiCropAugment",
    "ViewKind",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply_color_jitter",
    "color_jitter",
    "draw_mask",
    "eval_transform",
    "gaussian_blur",
    "gaussian_blur_sigma",
    "normalize",
    "random_grayscale",
    "random_hflip",
    "random_resized_crop",
    "random_rot90",
    "random_solarize",
    "random_vflip",
    "resized_crop",
    "rgb_to_grayscale",
    "sample_crop_boxes",
]
