"""Gen-SIS training views: (real, generated) pairs and inputs of the disentanglement task.

Gen-SIS (arXiv 2412.01672, Sec. 3.2): with probability ``p_gen`` an image's two global views
are a crop of the real image and a crop of one of its generated views, instead of two crops
of the real image; the hand-crafted augmentations apply to both. Which global slot holds the
generated image is drawn per sample, so generated images get both global recipes (DINO's
second view is the solarized one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gensis.augment import MultiCropAugment
from gensis.bank.sources import GeneratedSource
from gensis.config.schema import GenViewsConfig
from gensis.ssl.dino import DisentangleViews


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

    def _disentangle(self, indices: torch.Tensor, real_second: torch.Tensor, device: torch.device,
                     generator: torch.Generator) -> DisentangleViews:
        interp = self.source.interpolations(indices, generator)
        student = self.augment.view(interp.images.to(device), "global1", generator)
        partner = self.augment.view(self.fetch(interp.partner), "global1", generator)
        return DisentangleViews(
            interpolated=student,
            partner=partner,
            alpha=interp.alpha.to(device),
            real_slot=real_second.long().to(device),
        )
