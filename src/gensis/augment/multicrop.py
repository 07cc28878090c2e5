"""DINO multi-crop views, batched on the compute device.

Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers", Sec. 3.1
and App. D (``DataAugmentationDINO`` of facebookresearch/dino): two global views and
``n_local_crops`` small local views, each with flip + colour jitter + grayscale, Gaussian
blur with a per-view probability, and solarization on the second global view only.

Differences from the reference, all deliberate:

* crops are resized with bilinear ``roi_align`` (box-averaged when shrinking) instead of
  PIL bicubic, see :func:`gensis.augment.ops.resized_crop`;
* the blur is an exact truncated Gaussian (radius ceil(3 sigma_max)) instead of PIL's
  box-blur approximation;
* views that share a recipe are built as one batch (both globals, all locals), so a call
  costs a fixed number of kernel launches whatever the batch size and number of crops.
"""

from __future__ import annotations

from typing import Literal

import torch

from gensis.augment import ops
from gensis.config.schema import AugmentConfig

ViewKind = Literal["global1", "global2", "local"]


def _to_float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images of shape (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    return images.float().div_(255.0)


def eval_transform(
    images: torch.Tensor, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> normalized float32, no crop (images are already at resolution)."""
    return ops.normalize(_to_float(images), mean, std)


class MultiCropAugment:
    """Batched ``DataAugmentationDINO``: uint8 images in, normalized float32 views out.

    Every random draw comes from the CPU generator passed to the call (same state, same
    views, on any device) and parameters are drawn per sample.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    @property
    def n_views(self) -> int:
        return 2 + self.cfg.n_local_crops

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        global_images: tuple[torch.Tensor, torch.Tensor] | None = None,
        local_images: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """images: uint8 (B, 3, H, W) on any device -> [global1, global2, *locals].

        ``global_images`` gives each global view its own source (Gen-SIS pairs a real image
        with a generated one) and ``local_images`` the source of the local crops; both default
        to ``images``. The random stream is the same either way.
        """
        x = _to_float(images)
        sources = None if global_images is None else [_to_float(t) for t in global_images]
        x_local = x if local_images is None else _to_float(local_images)
        return self._global(x, generator, sources) + self._local(x_local, self.cfg.n_local_crops, generator)

    def global_views(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """Only the two global views [global1, global2] (same stream as the first two views)."""
        return self._global(_to_float(images), generator)

    def view(self, images: torch.Tensor, kind: ViewKind, generator: torch.Generator) -> torch.Tensor:
        """One view of the given kind, float32 (B, 3, S, S)."""
        x = _to_float(images)
        cfg = self.cfg
        if kind == "local":
            return self._local(x, 1, generator)[0]
        if kind not in ("global1", "global2"):
            raise ValueError(f"unknown view kind {kind!r}: use 'global1', 'global2' or 'local'")
        second = kind == "global2"
        blur = [cfg.blur_p[1] if second else cfg.blur_p[0]]
        sol = [cfg.solarize_p if second else 0.0]
        size, scale = cfg.global_crop_size, cfg.global_crop_scale
        return self._views(x, blur, sol, size, scale, generator)[0]

    # ------------------------------------------------------------------ internals
    def _global(
        self, x: torch.Tensor, generator: torch.Generator, sources: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        cfg = self.cfg
        blur = [cfg.blur_p[0], cfg.blur_p[1]]
        sol = [0.0, cfg.solarize_p]  # solarize on the second global view only
        size, scale = cfg.global_crop_size, cfg.global_crop_scale
        if sources is None:
            return self._views(x, blur, sol, size, scale, generator)
        # View v crops sample i of sources[v]: stack them and index view-major.
        stacked = torch.cat(sources)
        return self._views(stacked, blur, sol, size, scale, generator, per_view_source=True)

    def _local(self, x: torch.Tensor, n: int, generator: torch.Generator) -> list[torch.Tensor]:
        if n == 0:
            return []
        cfg = self.cfg
        blur, sol = [cfg.blur_p[2]] * n, [0.0] * n
        return self._views(x, blur, sol, cfg.local_crop_size, cfg.local_crop_scale, generator)

    def _views(
        self,
        x: torch.Tensor,
        blur_p: list[float],
        solarize_p: list[float],
        size: int,
        scale: tuple[float, float],
        generator: torch.Generator,
        per_view_source: bool = False,
    ) -> list[torch.Tensor]:
        """``len(blur_p)`` views with one recipe; view v uses blur_p[v] and solarize_p[v].

        All views are stacked into one batch of V * B samples (view-major), so every op runs
        once; per-view probabilities become per-sample probability vectors. With
        ``per_view_source`` x holds V * B images, the sources of the views in order.
        """
        cfg = self.cfg
        n_views = len(blur_p)
        b = x.shape[0] // n_views if per_view_source else x.shape[0]
        src_index = torch.arange(b * n_views) if per_view_source else torch.arange(b).repeat(n_views)
        h, w = x.shape[-2:]
        # The ops are written for float32; a caller's autocast region must not turn the blur
        # conv into bf16.
        with torch.autocast(x.device.type, enabled=False):
            boxes = ops.sample_crop_boxes(b * n_views, h, w, scale, generator=generator)
            y = ops.resized_crop(x, boxes, size, src_index)
            y = ops.random_hflip(y, cfg.hflip_p, generator)
            if cfg.vflip_p > 0:
                y = ops.random_vflip(y, cfg.vflip_p, generator)
            if cfg.rot90_p > 0:
                y = ops.random_rot90(y, cfg.rot90_p, generator)
            jitter = (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
            y = ops.color_jitter(y, *jitter, p=cfg.color_jitter_p, generator=generator)
            y = ops.random_grayscale(y, cfg.grayscale_p, generator)
            per_sample_blur = torch.tensor(blur_p).repeat_interleave(b)
            y = ops.gaussian_blur(y, per_sample_blur, cfg.blur_sigma, generator)
            if any(p > 0 for p in solarize_p):
                per_sample_sol = torch.tensor(solarize_p).repeat_interleave(b)
                y = ops.random_solarize(y, per_sample_sol, 0.5, generator)
            y = ops.normalize(y, cfg.mean, cfg.std)
        return list(y.split(b)) if b > 0 else [y] * n_views
