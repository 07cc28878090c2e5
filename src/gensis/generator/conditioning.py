"""Embedding conditioning and classifier-free guidance for the stage-2 generator.

Gen-SIS (Belagali et al., arXiv 2412.01672) conditions a diffusion model on the frozen
stage-1 encoder's L2-normalized pooled embedding of an image, as RCDM (Bordes et al. 2022,
arXiv 2112.09164) and RCG (Li et al. 2023, arXiv 2312.03701) do. ``EmbeddingConditioner``
maps that embedding to the UNet's conditioning vector; diffusers provides everything else.

Classifier-free guidance (Ho & Salimans 2022, arXiv 2207.12598): during training the
condition is replaced by a learned null embedding with probability ``p_uncond``, so the same
network also predicts unconditionally, and at sampling time the two predictions are combined
by :func:`guided`.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from gensis.errors import ConfigError


class EmbeddingConditioner(nn.Module):
    """SSL embedding (B, embed_dim) -> conditioning vector (B, cond_dim).

    Linear -> SiLU -> Linear on the L2-normalized embedding. A dropped row gets the projection
    of ``null_embedding`` instead, a learned vector initialized at the origin, which no
    unit-norm embedding is close to.

    ``standardize`` multiplies the unit-norm embedding by sqrt(D), so its entries have unit
    variance like the sinusoidal timestep features the projection is summed with. Without it
    a default-initialized projection of the condition starts about sqrt(D) (~20-40x) smaller
    than the timestep embedding and the network learns to ignore it (measured in
    docs/RESULTS.md, "Stage 2 that follows its condition"). ``zero_init`` starts the output
    layer at zero (the adaLN-Zero / ControlNet trick): the condition then enters gradually.
    """

    def __init__(
        self,
        embed_dim: int,
        cond_dim: int,
        hidden_dim: int | None = None,
        p_uncond: float = 0.1,
        standardize: bool = True,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= p_uncond <= 1.0:
            raise ConfigError(f"p_uncond must lie in [0, 1], got {p_uncond}")
        hidden_dim = hidden_dim or cond_dim
        self.embed_dim = embed_dim
        self.cond_dim = cond_dim
        self.p_uncond = p_uncond
        self.scale = float(embed_dim) ** 0.5 if standardize else 1.0
        self.proj = nn.Sequential(nn.Linear(embed_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, cond_dim))
        if zero_init:
            nn.init.zeros_(cast(nn.Linear, self.proj[-1]).weight)
            nn.init.zeros_(cast(nn.Linear, self.proj[-1]).bias)
        self.null_embedding = nn.Parameter(torch.zeros(embed_dim))

    def check_embedding(self, emb: torch.Tensor) -> None:
        d = emb.shape[-1]
        if d != self.embed_dim:
            raise ConfigError(f"embedding has dimension {d}, the generator expects {self.embed_dim}")

    def sample_drop(
        self, batch_size: int, device: torch.device | str, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Bernoulli(p_uncond) per sample, drawn on the generator's device, then moved."""
        draw_on = generator.device if generator is not None else torch.device(device)
        u = torch.rand(batch_size, generator=generator, device=draw_on)
        return (u < self.p_uncond).to(device)

    def forward(
        self, emb: torch.Tensor, drop: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``drop``: bool (B,), True = unconditional. If None, drawn in train mode only."""
        self.check_embedding(emb)
        if emb.dim() != 2:
            raise ConfigError(f"embeddings must have shape (batch, {self.embed_dim}), got {tuple(emb.shape)}")
        b = emb.shape[0]
        if drop is None and self.training and self.p_uncond > 0:
            drop = self.sample_drop(b, emb.device, generator)
        emb = F.normalize(emb.to(self.null_embedding.dtype), dim=-1) * self.scale
        cond = self.proj(emb)
        if drop is None:
            return cond
        if drop.shape != (b,):
            raise ConfigError(f"drop must have shape ({b},), got {tuple(drop.shape)}")
        # Projecting the null vector once (not per row) makes dropped rows bit-identical to
        # ``unconditional`` and lets the gradient reach the null embedding.
        null = self.proj(self.null_embedding).unsqueeze(0)
        return torch.where(drop.to(device=cond.device, dtype=torch.bool).unsqueeze(-1), null, cond)

    def unconditional(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The null embedding's projection, repeated: (batch_size, cond_dim)."""
        null = self.proj(self.null_embedding).unsqueeze(0).expand(batch_size, -1)
        return null if device is None else null.to(device)


def guided(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``eps_uncond + scale * (eps_cond - eps_uncond)``.

    scale 1 is the plain conditional model (returned as is, so bit-exact), 0 the unconditional
    one, > 1 pushes samples towards the condition.
    """
    if scale == 1:
        return eps_cond
    return eps_uncond + scale * (eps_cond - eps_uncond)
