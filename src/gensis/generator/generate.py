"""``gensis generate``: fill a view bank with self-augmentations and interpolations.

For source image i with embedding e_i (the frozen encoder's, of the clean image), the bank
gets K views G(e_i) with different noise and M interpolations G(SLERP(e_i, e_j, alpha)) with
a random partner j != i and alpha ~ U(alpha_range), alpha being the share of e_i (Gen-SIS,
arXiv 2412.01672). Work is cut into shards of source images; each shard's randomness depends
only on (seed, shard), so a rerun regenerates nothing that is finished and produces the same
bank as an uninterrupted run.

Under ``torchrun`` the shards still to do are dealt out to the ranks (``todo[rank::world]``);
each rank writes its shard files and rank 0 alone writes ``index.json`` (after a barrier),
so N processes write the same bank as one. A run killed before that merge leaves complete
shard files outside the index; the next run adopts them instead of regenerating them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from tqdm.auto import tqdm

from gensis.bank.store import (
    BankIndex,
    ViewBank,
    adopt_finished_shards,
    broken_shards,
    read_index,
    write_index,
    write_shard,
)
from gensis.config.schema import GenerateConfig
from gensis.data import load_images
from gensis.errors import CheckpointError, ConfigError, GensisError, by_rule
from gensis.eval.features import encoder_embeddings
from gensis.generator.adaptive import adaptive_settings, bank_noise_levels, perturb_views
from gensis.generator.external import ExternalGenerator, open_external
from gensis.generator.quality import bank_quality
from gensis.generator.slerp import slerp
from gensis.generator.synthesizer import Synthesizer
from gensis.runtime import distributed, lock
from gensis.runtime.checkpoint import load_encoder
from gensis.runtime.device import resolve_device
from gensis.runtime.io import atomic_write_text, relative_path
from gensis.runtime.signals import GracefulStop, Interrupted

log = logging.getLogger("gensis.generate")


# A pixel bank larger than this is stored as latents by storage=auto (stage 3 holds the bank in memory).
PIXEL_BANK_LIMIT = 16 << 30


@dataclass
class GenerateResult:
    bank: Path
    n_images: int
    images_per_s: float | None
    quality: dict | None = None


# long: a bank's life in order (open or resume, fill the missing shards, index, quality)
def run_generate(cfg: GenerateConfig) -> GenerateResult:
    info = distributed.from_environment()
    device = distributed.setup(info, resolve_device(cfg.device))
    if not info.is_main:
        logging.getLogger("gensis").setLevel(logging.WARNING)  # one console log, rank 0's
    # GenerateConfig requires one of external and generator
    synth = open_external(cfg, device) if cfg.external else Synthesizer(cast(str, cfg.generator), device)
    encoder_path = synth.encoder_path(cfg.encoder)
    encoder = load_encoder(encoder_path, device)
    if encoder.embed_dim != synth.embed_dim:
        raise CheckpointError(
            f"{encoder_path}: {encoder.embed_dim}-d embeddings, the generator expects {synth.embed_dim}"
        )
    data = load_images(
        cfg.data_path,
        encoder.info.resolution,
        cache_dir=cfg.cache_dir,
        max_images=cfg.max_images,
        progress=cfg.progress,
        max_image_bytes=cfg.max_image_bytes,
    )
    settings = {k: getattr(cfg, k) for k in ("sampler", "steps", "guidance_scale", "alpha_range", "seed")}
    settings["alpha_range"] = list(cfg.alpha_range)
    settings.update(adaptive_settings(cfg))  # empty when off: older banks resume unchanged
    storage = bank_storage(cfg, synth, len(data))
    if storage == "latents":  # recorded only then, so pixel banks of older versions resume unchanged
        settings["storage"] = storage
    n_shards = -(-len(data) // cfg.shard_size)
    wanted = range(n_shards) if cfg.shards is None else cfg.shards
    bad = [s for s in wanted if not 0 <= s < n_shards]
    if bad:  # checked before the bank folder is touched
        raise ConfigError(f"shards: {bad} outside [0, {n_shards}) for {len(data)} sources of {cfg.shard_size}")
    root = Path(cfg.out)
    index = _open_index_once(root, cfg, synth, data, settings, info)
    todo = [s for s in wanted if s not in index.shards]
    if not todo:
        log.info("view bank %s is complete (%d shards)", root, index.n_shards)
        return GenerateResult(root, 0, None)

    # Every rank needs every embedding (interpolation partners come from anywhere). Rank 0
    # embeds them, N encoder passes against N*(K+M)*steps*2 UNet passes of generation, and
    # sends them, so that all ranks condition on the same bits as a 1-process run.
    emb = encoder_embeddings(encoder, data, device=device, progress=cfg.progress) if info.is_main else None
    emb = distributed.broadcast(emb, info).cpu()
    # An external pipeline is conditioned on its own image embeddings or on the images (external.py).
    cond = cast(ExternalGenerator, synth).conditions(data, progress=cfg.progress) if cfg.external else emb
    levels = None  # GenView's adaptive noise: one level per source, rank 0's (adaptive.py)
    if cfg.adaptive_noise:
        levels = bank_noise_levels(root, encoder, data, cfg, device) if info.is_main else None
        levels = distributed.broadcast(levels, info).cpu()
    made, t0 = 0, time.perf_counter()
    mine = todo[info.rank :: info.world_size]
    # One process stops after the shard a signal arrives in (the bank resumes from there);
    # ranks have unequal shard lists, so under torchrun they keep the default signal handling.
    with contextlib.nullcontext() if info.enabled else GracefulStop() as stop:
        for k, shard in enumerate(tqdm(mine, desc="shards", disable=not (cfg.progress and info.is_main))):
            tensors = _generate_shard(
                cfg, synth, cond, index.shard_range(shard), shard, levels, latent=index.storage == "latents"
            )
            if info.enabled:
                write_shard(root, index, shard, tensors, record=False)  # rank 0 merges the index below
            else:
                write_shard(root, index, shard, tensors)
            made += len(tensors["source"])
            if stop is not None and stop.signal is not None and k + 1 < len(mine):
                raise Interrupted(
                    stop.signal,
                    f"after shard {shard} ({k + 1} of {len(mine)} done); the bank "
                    f"{root} resumes from there: rerun the same command",
                )
    if info.enabled:
        distributed.barrier(info)
        made = round(distributed.mean({"made": torch.tensor(float(made))}, info)["made"] * info.world_size)
        if info.is_main:
            adopt_finished_shards(root, index)
            write_index(root, index)
    rate = made / (time.perf_counter() - t0)
    log.info("generated %d images into %s (%.1f images/s)", made, root, rate)
    if not info.is_main:  # the quality report is rank 0's
        distributed.barrier(info)
        return GenerateResult(root, made, rate)
    quality = bank_quality(
        ViewBank(root), encoder, data, max_sources=cfg.quality_sources, device=device, real_embeddings=emb
    )
    atomic_write_text(root / "quality.json", json.dumps(quality, indent=2) + "\n")
    log.info("quality on %s sources: %s", quality.get("sources"), quality)
    distributed.barrier(info)
    return GenerateResult(root, made, rate, quality)


def _open_index_once(
    root: Path,
    cfg: GenerateConfig,
    synth: Synthesizer | ExternalGenerator,
    data,
    settings: dict,
    info: distributed.Dist,
) -> BankIndex:
    """Rank 0 opens (or creates) the bank and sends the index; the others stop if it failed."""
    index, error = None, None
    if info.is_main:
        try:
            index = _open_index(
                root,
                cfg,
                synth.generator_sha256,
                synth.meta["encoder_sha256"],
                data,
                synth.resolution,
                settings,
                _decoder_fields(synth, settings, root),
            )
        except GensisError as exc:
            if not info.enabled:
                raise
            error = exc
    index = distributed.broadcast_object(index, info)
    if error is not None:
        raise error
    if index is None:
        raise CheckpointError(f"{root}: rank 0 could not open the view bank (see its message)")
    return index


def _decoder_fields(synth, settings: dict, root: Path) -> dict[str, str]:
    if settings.get("storage") != "latents":
        return {}
    return {
        "storage": "latents",
        "vae": synth.vae_path,
        "vae_relative": relative_path(synth.vae_path, root),
        "vae_sha256": synth.vae_sha256,
    }


def bank_storage(cfg: GenerateConfig, synth, n_sources: int) -> str:
    """pixels or latents. auto: latents only when a latent generator's pixel bank would not fit
    in memory, since stage 3 holds the bank in memory and a latent bank costs a decode per read
    (docs/RESULTS.md, "A latent view bank")."""
    vae = getattr(synth, "vae", None)  # external pipelines make pixels
    if cfg.storage == "latents" and vae is None:
        raise ConfigError("storage=latents: the generator works in pixel space; its bank stores pixels")
    if cfg.storage != "auto" or vae is None:
        return "latents" if cfg.storage == "latents" else "pixels"
    views = n_sources * (cfg.views_per_image + cfg.interpolations_per_image)
    return "latents" if views * 3 * synth.resolution**2 > PIXEL_BANK_LIMIT else "pixels"


def _open_index(
    root: Path,
    cfg: GenerateConfig,
    gen_sha: str,
    enc_sha: str,
    data,
    resolution: int,
    settings: dict,
    decoder: dict[str, Any] | None = None,
) -> BankIndex:
    index = read_index(root)
    n, fingerprint = len(data), data.fingerprint()
    interpolations = _interpolations_per_image(cfg, n)
    fresh = BankIndex(
        generator_sha256=gen_sha,
        encoder_sha256=enc_sha,
        resolution=resolution,
        n_sources=n,
        shard_size=cfg.shard_size,
        views_per_image=cfg.views_per_image,
        interpolations_per_image=interpolations,
        settings=settings,
        data_fingerprint=fingerprint,
        **(decoder or {}),
    )
    if index is None:
        lock.hold(root)  # one writer per bank (runtime/lock.py)
        write_index(root, fresh)
        return fresh
    _refuse_another_bank(root, index, fresh)
    ViewBank(root).check_data(fingerprint, cfg.data_path, "data_path")
    lock.hold(root)  # checked above, written from here on; a second writer stops at this line
    index = read_index(root) or index
    broken = broken_shards(root, index)  # listed, but deleted or cut short since: made again
    for shard, why in broken.items():
        log.warning("%s: shard %d is listed but %s; it is generated again", root, shard, why)
    index.shards = [s for s in index.shards if s not in broken]
    adopted = adopt_finished_shards(root, index)  # left by a multi-process run killed before its merge
    if adopted:
        log.info("%s: %d finished shard(s) missing from the index adopted: %s", root, len(adopted), adopted)
    if adopted or broken:
        write_index(root, index)
    return index


def _refuse_another_bank(root: Path, index: BankIndex, fresh: BankIndex) -> None:
    """A bank resumes only from the same generator with the same settings."""
    if index.generator_sha256 != fresh.generator_sha256:
        raise CheckpointError(
            f"{root}: bank written by another generator ({index.generator_sha256[:12]}); "
            "use another out= (nothing was changed)"
        )
    fields = ("n_sources", "shard_size", "views_per_image", "interpolations_per_image", "settings")
    if any(getattr(index, f) != getattr(fresh, f) for f in fields):
        raise ConfigError(
            by_rule(
                "finished-run",
                f"{root}: bank was started with other settings; use the same ones to resume, or another out=",
            )
        )


def _interpolations_per_image(cfg: GenerateConfig, n_sources: int) -> int:
    """What the bank will hold: an interpolation needs a partner, so a one-image bank has none."""
    if cfg.interpolations_per_image and n_sources < 2:
        log.warning(
            "interpolations_per_image=%d: one source image has no partner to interpolate with, so the "
            "bank holds views only (index.json says 0)",
            cfg.interpolations_per_image,
        )
        return 0
    return cfg.interpolations_per_image


@torch.no_grad()
def _generate_shard(
    cfg: GenerateConfig,
    synth: Synthesizer | ExternalGenerator,
    emb: torch.Tensor,
    sources: range,
    shard: int,
    levels: torch.Tensor | None = None,
    *,
    latent: bool = False,
):
    """One shard's views and interpolations: uint8 images, or fp16 latents (``latent``)."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + shard)
    n = emb.shape[0]
    rows_src, rows_partner, rows_alpha = [], [], []
    for i in sources:
        rows_src += [i] * cfg.views_per_image
        rows_partner += [-1] * cfg.views_per_image
        rows_alpha += [1.0] * cfg.views_per_image
    if cfg.interpolations_per_image and n > 1:
        for i in sources:
            for _ in range(cfg.interpolations_per_image):
                j = int(torch.randint(0, n - 1, (1,), generator=g))
                rows_src.append(i)
                rows_partner.append(j + (j >= i))  # any image but i
                lo, hi = cfg.alpha_range
                rows_alpha.append(lo + (hi - lo) * float(torch.rand((), generator=g)))
    src = torch.tensor(rows_src, dtype=torch.long)
    partner = torch.tensor(rows_partner, dtype=torch.long)
    alpha = torch.tensor(rows_alpha, dtype=torch.float32)
    e_src = emb[src]
    interp = partner >= 0
    cond = e_src.clone()
    if interp.any():
        cond[interp] = slerp(e_src[interp], emb[partner[interp]], alpha[interp])
    if levels is not None:  # GenView: views only, on a stream of their own (see adaptive.py)
        cond = perturb_views(cond, src, ~interp, levels, cfg.seed, shard)
    make = cast(Synthesizer, synth).latents if latent else synth.images  # latents: a latent Synthesizer's bank
    out = [
        make(
            cond[start : start + cfg.batch_size],
            sampler=cfg.sampler,
            steps=cfg.steps,
            guidance_scale=cfg.guidance_scale,
            generator=g,
            precision=cfg.precision,
        )
        for start in range(0, len(src), cfg.batch_size)
    ]
    seed = torch.full((len(src),), cfg.seed * 1_000_003 + shard, dtype=torch.long)
    payload = {"latents": torch.cat(out).half()} if latent else {"images": torch.cat(out)}
    return {**payload, "source": src, "partner": partner, "alpha": alpha, "seed": seed}
