"""``gensis train-autoencoder``: a diffusers ``AutoencoderKL`` from scratch on the user's images.

The latent space of stage 2 for images above 96 px, with no outside weights (LDM's recipe,
Rombach et al. 2022, arXiv 2112.10752, Sec. 3 and App. G, without its outside LPIPS network):

* a pixel loss (L1 by default) on random crops: the model is convolutional, so crops teach it
  the same filters at a fraction of a whole image's cost, and it is used on whole images;
* LDM's KL weight of 1e-6 against the per-pixel sum of the reconstruction loss, which keeps the
  latent near N(0, I) without costing reconstruction;
* a perceptual term in the **stage-1 encoder's own space** (1 - cosine of the embeddings of
  crop and reconstruction), which needs no outside weights, unlike LPIPS. It is on (weight
  0.1) whenever ``encoder=`` is given, as in ``gensis run``: on 224-px lung tiles it gained
  1.2 dB PSNR and 0.04 cosine in each of 3 seeds (undecided by the t-interval: p = 0.11 and
  0.080) at 1.6x the time per step.

At the end the scaling factor is set to 1 / std of the latents (as LDM does), the model is
written with ``save_pretrained`` plus ``gensis.json``, and the reconstructions of held-out
images are measured (:mod:`gensis.autoencoder.quality`) and drawn.

Every random draw of a step depends only on ``(seed, step)``, so ``--resume`` continues exactly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gensis.autoencoder.model import autoencoder_digest, build_autoencoder, fit_scaling_factor, save_autoencoder
from gensis.autoencoder.quality import psnr, reconstruct, reconstruction_quality, save_pairs_grid
from gensis.config.autoencoder import TrainAutoencoderConfig
from gensis.data import ImageData
from gensis.data.batches import step_generator
from gensis.data.loader import load_training_images, subset_indices
from gensis.errors import ConfigError, DataError
from gensis.runtime import distributed
from gensis.runtime.checkpoint import load_encoder, resolve_encoder_path, restore_state, save_training_state
from gensis.runtime.device import resolve_device
from gensis.runtime.io import atomic_write_text, file_sha256
from gensis.runtime.job import Job
from gensis.runtime.products import exported_path
from gensis.runtime.run_folder import RunFolder
from gensis.runtime.schedules import warmup_cosine
from gensis.runtime.signals import GracefulStop
from gensis.train.loop import Loop, Schedule

log = logging.getLogger("gensis.autoencoder")

AUTOENCODER_STATE = "gensis.autoencoder-state/1"
IN_MEMORY_BYTES = 4 << 30  # decode a lazy set once when it fits in this; else per batch


@dataclass
class AutoencoderResult:
    out: Path
    autoencoder_path: Path
    steps: int
    quality: dict


# long: the stage's checks, set-up and export in reading order; its steps run in _Trainer on the shared Loop
def run_train_autoencoder(
    cfg: TrainAutoencoderConfig, *, resume: bool = False, data: ImageData | None = None
) -> AutoencoderResult:
    run = RunFolder(cfg.out)
    run.check_new_or_resume(cfg, resume)
    if distributed.from_environment().enabled:
        raise ConfigError("train-autoencoder runs in one process (one GPU); start it without torchrun")
    device = resolve_device(cfg.train.device)
    encoder, encoder_path = None, None
    if cfg.encoder is not None:
        encoder_path = resolve_encoder_path(cfg.encoder)
        encoder = load_encoder(encoder_path, device).requires_grad_(False)
    explicit = "resolution" in cfg.data.model_fields_set or encoder is None
    resolution = cfg.data.resolution if explicit or encoder is None else encoder.info.resolution
    factor = 2 ** (len(cfg.model.widths(resolution)) - 1)
    crop = cfg.train.crop_size or resolution
    if resolution % factor:
        raise ConfigError(
            f"data.resolution={resolution} is not divisible by the downsampling factor {factor} "
            f"of model.block_out_channels {cfg.model.widths(resolution)}"
            f"{'' if cfg.model.block_out_channels else ' (its default at this size)'}"
        )
    if crop % factor or crop > resolution:
        raise ConfigError(
            f"train.crop_size={crop}: must be a multiple of {factor} and at most data.resolution={resolution}"
        )
    if data is None:
        data = load_training_images(cfg.data, resolution, progress=cfg.train.progress)
    held = torch.tensor(subset_indices(len(data), min(cfg.train.eval_images, len(data) // 10)), dtype=torch.long)
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[held] = False
    train_idx = keep.nonzero().squeeze(1)
    if len(train_idx) < cfg.train.batch_size:
        raise DataError(
            f"{data.source}: {len(train_idx)} training images, fewer than train.batch_size={cfg.train.batch_size}"
        )
    with run.started(cfg, data.fingerprint()), GracefulStop() as stop:
        images = _resident(data)
        torch.manual_seed(cfg.train.seed)  # the initialization, the same for every run of these settings
        vae = build_autoencoder(cfg.model, resolution).to(device)
        optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.train.lr, weight_decay=0.0)
        step = _restore(run, vae, optimizer, device) if resume else 0
        if resume:
            run.truncate_metrics_after(step)
        log.info(
            "train-autoencoder: %d images (+%d held out), %d-px crops of %d-px images, latent %dx%dx%d "
            "(%dx), %.2fM parameters%s",
            len(train_idx),
            len(held),
            crop,
            resolution,
            cfg.model.latent_channels,
            resolution // factor,
            resolution // factor,
            factor,
            sum(p.numel() for p in vae.parameters()) / 1e6,
            f", perceptual weight {cfg.train.perceptual_weight}" if cfg.train.perceptual_weight else "",
        )
        held_images = data.batch(held)
        parts = _Parts(vae, optimizer, step, data, images, train_idx, held_images, crop, encoder, device)
        step = _Trainer(Job(cfg, run, resume, stop=stop), parts).train()
        vae.eval()
        scale = fit_scaling_factor(vae, _fetch(data, images, train_idx[: 256 if len(train_idx) > 256 else None]))
        vae.register_to_config(scaling_factor=scale)
        quality, rec = reconstruction_quality(vae, held_images, held, encoder=encoder, data=data, device=device)
        digest = autoencoder_digest(vae)
        folder = exported_path(run.root, TrainAutoencoderConfig.product).parent  # <run>/exported/autoencoder
        save_autoencoder(
            folder,
            vae.cpu(),
            {
                "resolution": resolution,
                "data_fingerprint": data.fingerprint(),
                "data": str(data.source),
                "images": len(data),
                "trained_steps": step,
                "sha256": digest,
                "encoder_sha256": file_sha256(encoder_path) if encoder_path else None,
                "downsampling": factor,
                "latent_shape": [cfg.model.latent_channels, resolution // factor, resolution // factor],
                "scaling_factor": scale,
                "quality": quality,
            },
        )
        atomic_write_text(run.root / "reconstruction.json", json.dumps(quality, indent=1) + "\n")
        grid = save_pairs_grid(run.root / "reconstructions.png", held_images, rec, tile_px=min(resolution, 112))
        run.log_image("autoencoder/reconstructions", str(grid), step)
        log.info(
            "autoencoder: %s; reconstructions of %d held-out images: PSNR %.2f dB%s",
            folder,
            len(held),
            quality["psnr_db"],
            f", source top-1 {quality['retrieval_top1']:.1f} % (real views "
            f"{quality['ceiling']['retrieval_top1']:.1f} %)"
            if "retrieval_top1" in quality
            else "",
        )
    return AutoencoderResult(run.root, folder, step, quality)


def _resident(data: ImageData) -> torch.Tensor | None:
    """All images as one uint8 tensor when they fit in memory (decoded once), else None."""
    if data.in_memory:
        return data.images
    if len(data) * 3 * data.resolution**2 > IN_MEMORY_BYTES:
        return None
    return torch.cat([data.batch(torch.arange(i, min(i + 256, len(data)))) for i in range(0, len(data), 256)])


def _fetch(data: ImageData, images: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor:
    return images[idx] if images is not None else data.batch(idx)


def _crops(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    if size == x.shape[-1]:
        return x
    corners = torch.randint(0, x.shape[-1] - size + 1, (len(x), 2), generator=gen).tolist()
    return torch.stack([img[:, i : i + size, j : j + size] for img, (i, j) in zip(x, corners, strict=True)])


def _loss(cfg: TrainAutoencoderConfig, vae, x: torch.Tensor, gen: torch.Generator, encoder) -> dict[str, torch.Tensor]:
    """x in [-1, 1]. LDM's balance: KL (summed over the latent) / pixels per image x kl_weight."""
    post = vae.encode(x).latent_dist
    noise = torch.randn(post.mean.shape, generator=gen).to(x.device)
    rec = vae.decode(post.mean + post.std * noise).sample
    diff = rec - x
    pixel = diff.abs().mean() if cfg.train.pixel_loss == "l1" else diff.pow(2).mean()
    kl = post.kl().mean() / x[0].numel()
    terms = {"pixel": pixel, "kl": kl, "loss": pixel + cfg.train.kl_weight * kl}
    assert cfg.train.perceptual_weight is not None  # resolved by the config's validator
    if cfg.train.perceptual_weight > 0:
        mean_std = encoder.info.normalization()
        mean = torch.tensor(mean_std[0], device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(mean_std[1], device=x.device).view(1, 3, 1, 1)
        a = encoder(((x + 1) / 2 - mean) / std)
        b = encoder(((rec.clamp(-1, 1) + 1) / 2 - mean) / std)
        terms["perceptual"] = 1 - torch.nn.functional.cosine_similarity(a, b, dim=-1).mean()
        terms["loss"] = terms["loss"] + cfg.train.perceptual_weight * terms["perceptual"]
    return terms


@dataclass(frozen=True)
class _Parts:
    """The model, its optimizer and the step it starts from, the images (``images``: held in memory,
    or None to decode each batch), which of them train, the held-out ones, the crop size and the
    frozen encoder of the perceptual loss (None without it)."""

    vae: Any
    optimizer: torch.optim.Optimizer
    step: int
    data: Any
    images: Any
    train_idx: torch.Tensor
    held_images: torch.Tensor
    crop: int
    encoder: Any
    device: torch.device


class _Trainer:
    """One autoencoder step (crops -> loss -> optimizer step -> log); :class:`~gensis.train.loop.Loop`
    runs the steps, as it does for stages 1-3."""

    def __init__(self, job: Job[TrainAutoencoderConfig], parts: _Parts) -> None:
        self.cfg, self.run, self.parts = job.cfg, job.run, parts
        tc = job.cfg.train
        self.schedule = Schedule(len(parts.train_idx), tc.batch_size, tc.epochs, tc.seed, tc.max_steps)
        self.loop = Loop(self.schedule, job.run, self.save, tc.checkpoint_every, tc.progress, job.info, job.stop)

    def train(self) -> int:
        p = self.parts
        p.vae.train()

        def fetch(batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:  # decoded when the loop asks
            return (_fetch(p.data, p.images, p.train_idx[idx]) for idx in batches)

        return self.loop.run_steps(p.step, self.step, fetch)

    def step(self, step: int, epoch: int, raw: torch.Tensor) -> float | None:
        cfg, tc, p = self.cfg, self.cfg.train, self.parts
        gen = step_generator(tc.seed, step)
        x = _crops(raw, p.crop, gen).to(p.device).float() / 127.5 - 1
        lr = warmup_cosine(step, self.schedule.total_steps, tc.lr, tc.warmup_steps)
        for group in p.optimizer.param_groups:
            group["lr"] = lr
        terms = _loss(cfg, p.vae, x, gen, p.encoder)
        self.loop.check_finite(terms["loss"], f"step {step}", "lower train.lr")
        p.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(p.vae.parameters(), 1.0)
        p.optimizer.step()
        done, last = step + 1, self.schedule.last_step
        shown = None
        if done % tc.log_every == 0 or done == last:
            record = {
                "step": done,
                "epoch": epoch,
                "lr": lr,
                **{k: v.item() for k, v in terms.items()},
                "images_per_s": self.loop.images_per_s(done),
                "data_wait": self.loop.data_wait.share(),
            }
            self.run.log_metrics(record)
            shown = record["loss"]
        if tc.eval_every and (done % tc.eval_every == 0 or done == last):
            p.vae.eval()
            value = float(psnr(reconstruct(p.vae, p.held_images), p.held_images).mean())
            p.vae.train()
            self.run.log_metrics({"step": done, "psnr_db": round(value, 3)})
            log.info("step %d: held-out PSNR %.2f dB", done, value)
        return shown

    def save(self, step: int) -> None:
        _save(self.run, self.parts.vae, self.parts.optimizer, step)


def _save(run: RunFolder, vae, optimizer, step: int) -> None:
    save_training_state(run, AUTOENCODER_STATE, step, {"model": vae.state_dict()}, optimizer)


def _restore(run: RunFolder, vae, optimizer, device) -> int:
    return restore_state(
        run, AUTOENCODER_STATE, "autoencoder", lambda state: vae.load_state_dict(state["model"]), device, optimizer
    )
