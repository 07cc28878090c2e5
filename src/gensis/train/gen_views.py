"""Stage 3 of Gen-SIS (arXiv 2412.01672): what it adds to the stage-1 step, in one place.

The stage-1 step (train/pretrain.py) takes a batch of real images, makes DINO's crops and
computes the loss. Stage 3 changes three things, all here except the loss term itself:

1. **(real, generated) pairs** (Sec. 3.2): with probability ``gen.p_gen`` an image's two global
   views are a crop of the real image and a crop of one of its generated views (from a bank or
   drawn on the fly: :func:`generated_source`) instead of two crops of the real image; the
   hand-crafted augmentations apply to both. Which global slot holds the generated image is
   drawn per sample, so generated images get both global recipes (DINO's second view is the
   solarized one).
2. **the source of the local crops** (``gen.local_source``): the real image, or the generated
   one when the pair is generated.
3. **the disentanglement task** (Sec. 3.3): the inputs are built here (:class:`DisentangleViews`:
   the interpolated image for the student, its partner for the teacher, alpha and which global
   slot is the real source); the loss, ``lambda_dis`` times the cross-entropy between the
   student's output on the interpolation and the alpha-mix of the teacher's outputs on the two
   sources, is added in ``DINO.forward`` (ssl/dino.py, ``ssl/losses/disentangle_loss.py``),
   because DDP allows one student forward per step and the interpolation rides in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gensis.augment import MultiCropAugment
from gensis.config.schema import GenViewsConfig, PretrainConfig
from gensis.data import ImageData
from gensis.runtime.device import resolve_device
from gensis.ssl.dino import DisentangleViews
from gensis.train.view_sources import GeneratedSource


@dataclass
class GenViews:
    views: list[torch.Tensor]  # [global1, global2, *locals], normalized float
    dis: DisentangleViews | None
    generated: torch.Tensor  # (B,) bool: the pair is (real, generated)


class PairSampler:
    def __init__(
        self,
        cfg: GenViewsConfig,
        source: GeneratedSource,
        augment: MultiCropAugment,
        fetch: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        """``fetch(indices)`` returns the real uint8 images at ``indices`` on the compute device."""
        self.cfg = cfg
        self.source = source
        self.augment = augment
        self.fetch = fetch
        self.disentangle = cfg.lambda_dis > 0 and source.has_interpolations

    def __call__(self, images: torch.Tensor, indices: torch.Tensor, generator: torch.Generator) -> GenViews:
        b = images.shape[0]
        generated = torch.rand(b, generator=generator) < self.cfg.p_gen
        generated_first = generated & (torch.rand(b, generator=generator) < 0.5)
        other = images.clone()
        if generated.any():
            other[generated.to(images.device)] = self.source.views(indices[generated], generator).to(images.device)
        swap = generated_first.to(images.device).view(-1, 1, 1, 1)
        first, second = torch.where(swap, other, images), torch.where(swap, images, other)
        local = other if self.cfg.local_source == "generated" else images
        views = self.augment(images, generator, global_images=(first, second), local_images=local)
        dis = self._disentangle(indices, generated_first, images.device, generator) if self.disentangle else None
        return GenViews(views, dis, generated)

    def _disentangle(
        self, indices: torch.Tensor, real_second: torch.Tensor, device: torch.device, generator: torch.Generator
    ) -> DisentangleViews:
        interp = self.source.interpolations(indices, generator)
        student = self.augment.view(interp.images.to(device), "global1", generator)
        partner = self.augment.view(self.fetch(interp.partner), "global1", generator)
        return DisentangleViews(
            interpolated=student,
            partner=partner,
            alpha=interp.alpha.to(device),
            real_slot=real_second.long().to(device),
        )


def stage3_views(
    cfg: PretrainConfig,
    generated: GeneratedSource | None,
    augment: MultiCropAugment,
    fetch: Callable[[torch.Tensor], torch.Tensor],
    lambda_dis: float,
) -> PairSampler | None:
    """The stage-3 views of a batch, ``(images, indices, generator) -> GenViews``; None for stage 1
    (no generated source). ``lambda_dis`` is 0 for methods without a teacher."""
    if generated is None:
        return None
    return PairSampler(cfg.gen.model_copy(update={"lambda_dis": lambda_dis}), generated, augment, fetch)


def generated_source(cfg: PretrainConfig, data: ImageData):
    """Stage 3's generated images (a bank, or the generator on the fly), or None for plain DINO."""
    g = cfg.gen
    if g.bank is not None:
        from gensis.train.view_sources import BankViews

        return BankViews(
            g.bank, len(data), data.resolution, g.views_per_image, data=data, device=resolve_device(cfg.train.device)
        )
    if g.generator is not None:
        from gensis.train.view_sources import OnTheFlyViews

        return OnTheFlyViews(
            g.generator,
            data,
            resolve_device(cfg.train.device),
            sampler=g.sampler,
            steps=g.steps,
            guidance_scale=g.guidance_scale,
            alpha_range=g.alpha_range,
            precision=cfg.train.precision,
        )
    return None
