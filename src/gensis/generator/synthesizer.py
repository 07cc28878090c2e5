"""From conditioning embeddings to uint8 images, in pixel or latent space.

``Synthesizer`` holds an exported generator (EMA UNet), the noise-schedule settings it was
trained with and, in latent space, the frozen VAE whose decoder turns samples into images.
The sampling loop itself stays explicit in :func:`gensis.generator.sampling.sample`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gensis.autoencoder.latent import decode_latents, downsample_factor, load_vae, vae_sha256
from gensis.errors import CheckpointError, GensisError, first_line
from gensis.generator.checkpoint import load_generator, resolve_generator_path
from gensis.generator.sampling import Scheduler, make_scheduler, sample
from gensis.runtime.checkpoint import resolve_encoder_path
from gensis.runtime.device import autocast
from gensis.runtime.io import file_sha256, recorded_path


class Synthesizer:
    def __init__(self, path: str | Path, device: torch.device) -> None:
        self.unet, self.meta = load_generator(path, device)
        self.device = device
        self.space = self.meta.get("space", "pixel")
        self.folder = resolve_generator_path(path).parent  # where its relative records start
        self.vae_path = recorded_path(self.meta.get("vae", ""), self.meta.get("vae_relative"), self.folder)
        self.vae = load_vae(self.vae_path, device) if self.space == "latent" else None
        self.vae_sha256 = vae_sha256(self.vae) if self.vae is not None else None
        if self.vae is not None and self.meta.get("vae_sha256"):  # older generators recorded none
            digest = self.vae_sha256
            assert digest is not None  # computed above for the VAE
            if digest != self.meta["vae_sha256"]:
                raise CheckpointError(
                    f"{self.vae_path}: not the autoencoder the generator was trained on "
                    f"(sha256 {digest[:12]}, generator expects {self.meta['vae_sha256'][:12]})"
                )
        self._schedule = json.loads(self.meta["scheduler"])
        self._schedulers: dict[str, Scheduler] = {}
        try:  # a bad recorded schedule is named now, before anything is sampled or written
            make_scheduler("ddim", **self._schedule)
        except (GensisError, TypeError, ValueError, KeyError, ArithmeticError, NotImplementedError) as exc:
            raise CheckpointError(
                f"{path}: metadata 'scheduler' does not build a noise schedule ({first_line(exc)})"
            ) from None

    @property
    def generator_sha256(self) -> str:
        return self.unet.generator_sha256

    @property
    def embed_dim(self) -> int:
        return self.unet.embed_dim

    @property
    def resolution(self) -> int:
        factor = downsample_factor(self.vae) if self.vae is not None else 1
        return self.unet.spec.sample_size * factor

    def encoder_path(self, override: str | None = None) -> Path:
        """The encoder to embed sources with: ``override`` or the recorded one, checked by hash."""
        path = resolve_encoder_path(
            override or recorded_path(self.meta["encoder"], self.meta.get("encoder_relative"), self.folder)
        )
        digest = file_sha256(path)
        if digest != self.meta["encoder_sha256"]:
            raise CheckpointError(
                f"{path}: not the encoder the generator was trained on "
                f"(sha256 {digest[:12]}, generator expects {self.meta['encoder_sha256'][:12]})"
            )
        return path

    def images(
        self,
        cond: torch.Tensor,
        *,
        sampler: str,
        steps: int,
        guidance_scale: float,
        generator: torch.Generator,
        precision: str = "auto",
    ) -> torch.Tensor:
        """uint8 images (B, 3, R, R) on the CPU, one per conditioning embedding."""
        x = self._sample(cond, sampler, steps, guidance_scale, generator, precision)
        if self.vae is not None:
            return decode_latents(self.vae, x.float())
        return (x.float() * 255).round().clamp(0, 255).to(torch.uint8).cpu()

    def latents(
        self,
        cond: torch.Tensor,
        *,
        sampler: str,
        steps: int,
        guidance_scale: float,
        generator: torch.Generator,
        precision: str = "auto",
    ) -> torch.Tensor:
        """Latent space only: the sampled (scaled) latents (B, C, h, w), float32 on the CPU,
        which :func:`~gensis.autoencoder.latent.decode_latents` turns into :meth:`images`."""
        if self.vae is None:
            raise ValueError("latents() needs a latent-space generator")
        return self._sample(cond, sampler, steps, guidance_scale, generator, precision).float().cpu()

    def _sample(self, cond, sampler, steps, guidance_scale, generator, precision) -> torch.Tensor:
        if sampler not in self._schedulers:
            self._schedulers[sampler] = make_scheduler(sampler, **self._schedule, clip=self.vae is None)
        with autocast(self.device, precision):
            return sample(
                self.unet,
                self._schedulers[sampler],
                cond.to(self.device),
                steps=steps,
                guidance_scale=guidance_scale,
                generator=generator,
                to_image=self.vae is None,
            )
