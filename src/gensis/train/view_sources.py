"""Where stage 3 gets its generated images: a finished view bank, or the generator itself.

Both sources answer the same two questions for a batch of source-image indices: one
generated view of each (``views``) and one interpolation of each with its partner and alpha
(``interpolations``). Every draw comes from the step's CPU generator, so a resumed run sees
the same images as an uninterrupted one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from gensis.bank.store import ViewBank, open_decoder, shard_keys
from gensis.errors import ConfigError

log = logging.getLogger("gensis.bank")


@dataclass
class Interpolations:
    images: torch.Tensor  # uint8 (B, 3, R, R): G(SLERP(e_source, e_partner, alpha))
    partner: torch.Tensor  # (B,) long, index of the second source image
    alpha: torch.Tensor  # (B,) float, share of the source image


class GeneratedSource(Protocol):
    has_interpolations: bool

    def views(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...

    def interpolations(self, indices: torch.Tensor, generator: torch.Generator) -> Interpolations: ...


class BankViews:
    """A whole view bank held in memory as (N, K, 3, R, R) uint8, for O(1) batch access.

    Random batches touch every shard, so reading shards on demand would reread the bank
    every step; memory is N * (K + M) * 3 * R * R bytes (CIFAR-10, K=4, M=1: 768 MB). A latent
    bank is held as fp16 latents (24x smaller at 224 px) and a batch is decoded on ``device``
    when it is read.
    """

    def __init__(
        self,
        root: str,
        n_sources: int,
        resolution: int,
        views_per_image: int | None = None,
        data=None,
        device: torch.device | str = "cpu",
    ) -> None:
        bank = ViewBank(root)
        index = bank.index
        bank.check_complete()
        if index.n_sources != n_sources:
            raise ConfigError(
                f"gen.bank: {root} was generated from {index.n_sources} images, the training data has {n_sources}"
            )
        if index.resolution != resolution:
            raise ConfigError(f"gen.bank: {root} holds {index.resolution}-px images, data.resolution is {resolution}")
        if data is not None:  # the training images (ImageData): the bank's pairs must be of these
            bank.check_data(data.fingerprint(), data.source, "gen.bank")
        k = index.views_per_image if views_per_image is None else min(views_per_image, index.views_per_image)
        if k == 0:
            raise ConfigError(f"gen.bank: {root} has no self-augmented views (views_per_image=0)")
        m = index.interpolations_per_image
        self.encoder_sha256 = index.encoder_sha256
        self.generator_sha256 = index.generator_sha256
        self._key = shard_keys(index)[0]
        self._vae = open_decoder(bank.root, index, device) if index.storage == "latents" else None
        first = bank._read_shard(0)[self._key]
        item, dtype = tuple(first.shape[1:]), first.dtype  # (3, R, R) uint8, or (C, h, w) fp16 latents
        self._views = torch.empty((n_sources, k, *item), dtype=dtype)
        self._interp = torch.empty((n_sources, m, *item), dtype=dtype)
        self._partner = torch.empty((n_sources, m), dtype=torch.long)
        self._alpha = torch.empty((n_sources, m), dtype=torch.float32)
        for shard in range(index.n_shards):
            self._fill(bank._read_shard(shard), k, m)
        self.has_interpolations = m > 0
        log.info("view bank %s: %d images x %d views, %d interpolations each", root, n_sources, k, m)

    def _fill(self, data: dict[str, torch.Tensor], k: int, m: int) -> None:
        is_view = data["partner"] < 0
        src, rank, rows = _first_rows(data["source"][is_view], k)
        self._views[src, rank] = data[self._key][is_view][rows]
        if m:
            interp = {key: v[~is_view] for key, v in data.items()}
            src, rank, rows = _first_rows(interp["source"], m)
            self._interp[src, rank] = interp[self._key][rows]
            self._partner[src, rank] = interp["partner"][rows]
            self._alpha[src, rank] = interp["alpha"][rows]

    def views(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        idx = indices.cpu()
        pick = torch.randint(0, self._views.shape[1], (len(idx),), generator=generator)
        return self._images(self._views[idx, pick])

    def interpolations(self, indices: torch.Tensor, generator: torch.Generator) -> Interpolations:
        idx = indices.cpu()
        pick = torch.randint(0, self._interp.shape[1], (len(idx),), generator=generator)
        return Interpolations(self._images(self._interp[idx, pick]), self._partner[idx, pick], self._alpha[idx, pick])

    def _images(self, stored: torch.Tensor) -> torch.Tensor:
        if self._vae is None:
            return stored
        from gensis.autoencoder.latent import decode_latents

        return decode_latents(self._vae, stored.float())


class OnTheFlyViews:
    """Views drawn from the generator during training (no bank; costs sampling time per step)."""

    has_interpolations = True

    def __init__(
        self,
        generator_path: str,
        data,
        device: torch.device,
        *,
        sampler: str,
        steps: int,
        guidance_scale: float,
        alpha_range: tuple[float, float],
        precision: str = "auto",
    ) -> None:
        from gensis.eval.features import encoder_embeddings
        from gensis.generator.synthesizer import Synthesizer
        from gensis.runtime.checkpoint import load_encoder

        self.synth = Synthesizer(generator_path, device)
        encoder_path = self.synth.encoder_path()
        encoder = load_encoder(encoder_path, device)
        if encoder.info.resolution != data.resolution:
            raise ConfigError(
                f"gen.generator: its encoder works at {encoder.info.resolution} px, "
                f"data.resolution is {data.resolution}"
            )
        self.embeddings = encoder_embeddings(encoder, data, device=device, progress=False)
        self.encoder_sha256 = self.synth.meta["encoder_sha256"]
        self.generator_sha256 = self.synth.generator_sha256
        self._kw: dict[str, Any] = dict(
            sampler=sampler, steps=steps, guidance_scale=guidance_scale, precision=precision
        )
        self.alpha_range = alpha_range

    def views(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.views_from(self.embeddings[indices.cpu()], generator)

    def interpolations(self, indices: torch.Tensor, generator: torch.Generator) -> Interpolations:
        from gensis.generator.slerp import slerp

        idx = indices.cpu()
        n = self.embeddings.shape[0]
        j = torch.randint(0, n - 1, (len(idx),), generator=generator)
        partner = j + (j >= idx).long()  # any image but the source
        lo, hi = self.alpha_range
        alpha = lo + (hi - lo) * torch.rand(len(idx), generator=generator)
        cond = slerp(self.embeddings[idx], self.embeddings[partner], alpha)
        return Interpolations(self.views_from(cond, generator), partner, alpha)

    def views_from(self, cond: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.synth.images(cond, generator=generator, **self._kw)


def _first_rows(sources: torch.Tensor, per_source: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For rows tagged with their source: (source, rank among its rows, row) of the first ``per_source``."""
    order = torch.argsort(sources, stable=True)
    ordered = sources[order]
    rank = torch.arange(len(ordered)) - torch.searchsorted(ordered, ordered)
    keep = rank < per_source
    return ordered[keep], rank[keep], order[keep]
