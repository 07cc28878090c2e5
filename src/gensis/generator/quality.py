"""Quality of generated views, measured in the stage-1 encoder's own space.

No Inception network is available offline, so every measure uses the encoder the generator
was conditioned on (the L2-normalized embeddings it produces):

* fidelity: cosine between the embedding of a generated view and its conditioning embedding;
* faithfulness: source retrieval and class consistency, beside the same figures for real
  stage-1 views (the ceiling) and chance (:mod:`gensis.eval.faithfulness`);
* diversity: mean pairwise cosine distance (and pixel RMSE) among the K views of one source,
  beside two real stage-1 views; zero would mean the generator ignores its noise.
* Frechet distance between the Gaussians fitted to real and generated embeddings (the FID
  formula of Heusel et al. 2017, in this space instead of Inception's).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from gensis.bank.store import ViewBank
from gensis.config.schema import EvalGeneratorConfig
from gensis.data import ImageData, load_images
from gensis.data.loader import subset_indices
from gensis.errors import GensisError
from gensis.eval.faithfulness import as_data, ceiling_and_chance, versus_ceiling, view_figures
from gensis.eval.features import encoder_embeddings
from gensis.models.backbones import Encoder
from gensis.runtime.checkpoint import load_encoder, resolve_encoder_path
from gensis.runtime.device import resolve_device
from gensis.runtime.io import file_sha256, write_result_json


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


@torch.no_grad()
def bank_quality(
    bank: ViewBank,
    encoder: Encoder,
    real: ImageData,
    *,
    max_sources: int = 500,
    device: torch.device | str = "cpu",
    real_embeddings: torch.Tensor | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Fidelity, faithfulness against the real-view ceiling, diversity and Frechet distance,
    on a spread sample of sources (see :mod:`gensis.eval.faithfulness`)."""
    real_emb = real_embeddings if real_embeddings is not None else encoder_embeddings(encoder, real, device=device)
    real_emb = real_emb.cpu()
    n = bank.index.n_sources
    ready = [s for s in range(n) if s // bank.index.shard_size in bank.index.shards]
    sources = [ready[i] for i in subset_indices(len(ready), min(max_sources, len(ready)))]
    views = [bank.views_of(s) for s in sources]
    if not sources or not len(views[0]):
        return {"sources": 0}
    images = torch.stack(views)  # (S, K, 3, R, R)
    gen_emb = encoder_embeddings(encoder, as_data(images.flatten(0, 1)), device=device).cpu()
    src = torch.tensor(sources)
    k = images.shape[1]
    originals = real.batch(src)  # decoded once for both the generated and the real views' figures
    generated = view_figures(gen_emb, images, src, real_emb, real.labels, originals=originals)
    result: dict[str, Any] = {
        "sources": len(sources),
        "views": len(gen_emb),
        "fidelity_cosine": round(float((gen_emb * real_emb[src.repeat_interleave(k)]).sum(-1).mean()), 4),
        **generated,
        "frechet_distance": round(frechet_distance(real_emb, gen_emb), 4),
    }
    result.update(
        ceiling_and_chance(encoder, real, src, real_emb, views=max(k, 2), device=device, seed=seed, originals=originals)
    )
    result["versus_ceiling"] = versus_ceiling(generated, result["ceiling"])
    return result


def run_eval_generator(cfg: EvalGeneratorConfig) -> dict[str, Any]:
    """``gensis eval-generator``: :func:`bank_quality` of a bank with the encoder its generator was
    conditioned on and the images it was generated from (both checked before the measure)."""
    device = resolve_device(cfg.device)
    bank = ViewBank(cfg.bank)
    enc_path = resolve_encoder_path(cfg.encoder)
    if file_sha256(enc_path) != bank.index.encoder_sha256:
        raise GensisError(f"{enc_path}: not the encoder this bank's generator was conditioned on")
    encoder = load_encoder(enc_path, device)
    data = load_images(
        cfg.data_path,
        encoder.info.resolution,
        cache_dir=cfg.cache_dir,
        max_images=cfg.max_images,
        progress=cfg.progress,
        max_image_bytes=cfg.max_image_bytes,
    )
    if len(data) != bank.index.n_sources:
        raise GensisError(
            f"{cfg.data_path}: {len(data)} images, but the bank was generated from {bank.index.n_sources}"
        )
    bank.check_data(data.fingerprint(), cfg.data_path, "data_path")
    result = bank_quality(bank, encoder, data, max_sources=cfg.max_sources, device=device)
    done, total = len(bank.index.shards), bank.index.n_shards
    result["bank_shards"] = {"done": done, "total": total}
    if done < total:  # measured on what is there, and said so (stage 3 refuses such a bank)
        logging.getLogger("gensis.generate").warning(
            "%s is incomplete (%d of %d shards): these figures are of the finished shards' %d sources only",
            cfg.bank,
            done,
            total,
            result.get("sources", 0),
        )
    if cfg.out:
        write_result_json(cfg.out, result)
    return result
