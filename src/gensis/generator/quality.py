"""Quality of generated views, measured in the stage-1 encoder's own space.

No Inception network is available offline, so every measure uses the encoder the generator
was conditioned on (the L2-normalized embeddings it produces):

* fidelity: cosine between the embedding of a generated view and its conditioning embedding,
  and source retrieval: is the source image the nearest of *all* real images to the view?
* diversity: mean pairwise cosine distance (and pixel RMSE) among the K views of one source;
  zero would mean the generator ignores its noise.
* Frechet distance between the Gaussians fitted to real and generated embeddings (the FID
  formula of Heusel et al. 2017, in this space instead of Inception's).
"""

from __future__ import annotations

import torch

from gensis.bank.store import ViewBank
from gensis.data import ImageData
from gensis.data.loader import subset_indices
from gensis.eval.features import encoder_embeddings
from gensis.models.backbones import Encoder


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), in float64."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.atleast_2d(torch.cov(a.T)), torch.atleast_2d(torch.cov(b.T))
    root_a = _sqrtm_psd(s_a)
    cross = _sqrtm_psd(root_a @ s_b @ root_a)
    return float((mu_a - mu_b).square().sum() + torch.trace(s_a + s_b - 2 * cross))


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def _as_data(images: torch.Tensor) -> ImageData:
    return ImageData(images=images, labels=None, class_names=None, ids=[str(i) for i in range(len(images))],
                     source="generated", resolution=images.shape[-1])


@torch.no_grad()
def bank_quality(
    bank: ViewBank,
    encoder: Encoder,
    real: ImageData,
    *,
    max_sources: int = 500,
    device: torch.device | str = "cpu",
    real_embeddings: torch.Tensor | None = None,
) -> dict[str, float | int]:
    """Fidelity, retrieval, diversity and Frechet distance on a spread sample of sources."""
    real_emb = real_embeddings if real_embeddings is not None else encoder_embeddings(encoder, real, device=device)
    n = bank.index.n_sources
    ready = [s for s in range(n) if s // bank.index.shard_size in bank.index.shards]
    sources = [ready[i] for i in subset_indices(len(ready), min(max_sources, len(ready)))]
    views, view_src = [], []
    for s in sources:
        v = bank.views_of(s)
        views.append(v)
        view_src += [s] * len(v)
    if not view_src:
        return {"sources": 0}
    all_views = torch.cat(views)
    gen_emb = encoder_embeddings(encoder, _as_data(all_views), device=device)
    src = torch.tensor(view_src)
    cos_to_cond = (gen_emb * real_emb[src]).sum(-1)
    sims = gen_emb @ real_emb.T  # (V, N): retrieval among every real image
    rank = (sims > sims.gather(1, src[:, None])).sum(1)  # 0 = the source is the nearest
    k = bank.index.views_per_image
    result: dict[str, float | int] = {
        "sources": len(sources),
        "views": len(view_src),
        "fidelity_cosine": round(float(cos_to_cond.mean()), 4),
        "retrieval_top1": round(float((rank == 0).float().mean() * 100), 2),
        "retrieval_top5": round(float((rank < 5).float().mean() * 100), 2),
        "retrieval_median_rank": int(rank.median()) + 1,
        "frechet_distance": round(frechet_distance(real_emb, gen_emb), 4),
    }
    if k >= 2:
        e = gen_emb.view(len(sources), k, -1)
        pair = 1 - e @ e.transpose(1, 2)
        off = ~torch.eye(k, dtype=torch.bool)
        result["diversity_cosine"] = round(float(pair[:, off].mean()), 4)
        px = all_views.float().div(255).view(len(sources), k, -1)
        rmse = torch.cdist(px, px) / px.shape[-1] ** 0.5
        result["diversity_pixel_rmse"] = round(float(rmse[:, off].mean()), 4)
    return result
