"""Stage 2 training loop: a diffusion model conditioned on frozen stage-1 embeddings.

The generator is conditioned on the embedding of the *clean* image (no crop, no jitter) at
the encoder's resolution, the same input that ``gensis generate`` conditions on later, so
training and sampling see one distribution of conditions. Only the flips and rotations that
stage 1 used touch the target image (:mod:`gensis.generator.target_augment`): the encoder
was trained to be invariant to those, so the condition still fits.

A few images are held out of training for the conditioning monitor
(:mod:`gensis.generator.monitor`), which reports whether the generator follows its
embedding while it trains.

Embeddings are computed once with the frozen encoder and cached in the run folder
(``embeddings.safetensors``, keyed by the encoder file's hash). As in stage 1, every random
draw of a step depends only on ``(seed, step)``, so ``--resume`` continues exactly.

Under ``torchrun`` the UNet trains data-parallel (DDP) as in stage 1: every rank draws the
global batch, its flips, noise, timesteps and condition dropout, keeps its contiguous
slice, and only rank 0 writes the run folder; N processes then follow the 1-process run.
Dropout layers (the ``pixel32`` preset) draw masks per rank, so there the runs agree in
distribution only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file

from gensis.autoencoder.latent import check_vae_fits, downsample_factor, encode_images, load_vae, vae_sha256
from gensis.config.schema import TrainGeneratorConfig
from gensis.data import ImageData
from gensis.data.batches import step_generator
from gensis.data.loader import load_training_images
from gensis.errors import ConfigError, DataError, GensisError
from gensis.eval.features import encoder_embeddings
from gensis.generator.checkpoint import GENERATOR_FORMAT, export_generator
from gensis.generator.monitor import ConditioningMonitor, holdout_split
from gensis.generator.sampling import make_scheduler, training_loss
from gensis.generator.target_augment import resolve_target_augment
from gensis.generator.unet import build_unet
from gensis.models.metadata import EncoderInfo
from gensis.runtime import distributed
from gensis.runtime.checkpoint import load_encoder, resolve_encoder_path, restore_state, save_training_state
from gensis.runtime.device import autocast, resolve_device
from gensis.runtime.ema import ema_update_
from gensis.runtime.io import file_sha256, save_safetensors
from gensis.runtime.job import Job
from gensis.runtime.products import exported_path
from gensis.runtime.run_folder import RunFolder
from gensis.runtime.schedules import warmup_cosine
from gensis.runtime.signals import GracefulStop
from gensis.train.loop import Loop, Schedule

log = logging.getLogger("gensis.generator")


@dataclass
class GeneratorResult:
    out: Path
    generator_path: Path
    steps: int
    final_loss: float | None


def run_train_generator(
    cfg: TrainGeneratorConfig, *, resume: bool = False, data: ImageData | None = None
) -> GeneratorResult:
    run = RunFolder(cfg.out)
    run.check_new_or_resume(cfg, resume)
    info = distributed.from_environment()
    distributed.check_batch(info, cfg.train.batch_size)
    device = distributed.setup(info, resolve_device(cfg.train.device))
    encoder_path = resolve_encoder_path(cfg.encoder)
    encoder = load_encoder(encoder_path, device)
    meta = encoder.info
    resolution = cfg.data.resolution if "resolution" in cfg.data.model_fields_set else meta.resolution
    latent = cfg.model.space == "latent"
    if latent and cfg.model.vae is None:
        raise ConfigError(
            "model.vae: an AutoencoderKL folder or hub id is required with model.space=latent "
            "(train one on these images: gensis train-autoencoder)"
        )
    if not latent and resolution > 96:
        raise GensisError(
            f"data.resolution={resolution}: the pixel-space generator handles <= 96 px; for larger "
            "images use model.space=latent model.vae=<AutoencoderKL folder or hub id>"
        )
    vae = load_vae(cast(str, cfg.model.vae), device) if latent else None  # with latent: set (checked above)
    if data is None:
        data = load_training_images(cfg.data, resolution, progress=cfg.train.progress)
    if not latent and not data.in_memory:
        raise DataError(f"{data.source}: the pixel-space generator trains on images held in memory (<= 96 px)")
    if latent:
        check_vae_fits(cast(str, cfg.model.vae), resolution, data.fingerprint(), f"data.path={data.source}")
    if latent and resolution % downsample_factor(vae):
        raise ConfigError(f"data.resolution={resolution} is not divisible by the VAE's factor {downsample_factor(vae)}")
    if len(data) < cfg.train.batch_size:
        raise DataError(f"{data.source}: {len(data)} images, fewer than train.batch_size={cfg.train.batch_size}")
    with run.started(cfg, data.fingerprint(), is_main=info.is_main):
        # Rank 0 embeds (and encodes latents) once and sends the result: every rank then
        # conditions on bit-identical tensors, whatever its GPU's kernels would round to.
        embeddings = _embeddings(run, encoder, encoder_path, data, device, cfg.train.progress) if info.is_main else None
        embeddings = distributed.broadcast(embeddings, info)
        # Pixel space trains on the uint8 images; latent space on latents encoded once.
        if vae is None:
            targets = data.images
        else:
            targets = encode_images(vae, data, device=device, progress=cfg.train.progress) if info.is_main else None
            targets = distributed.broadcast(targets, info)
        vae_digest = vae_sha256(vae) if vae is not None else None
        del vae
        # The monitor re-embeds one-step predictions, which needs pixels: latent space gets the loss gap only.
        monitor_encoder = encoder if (info.is_main and not latent and cfg.train.monitor_every > 0) else None
        del encoder
        assert targets is not None  # pixel space holds its images in memory (checked above)
        with GracefulStop() as stop:
            return _train(
                Job(cfg, run, resume, info, stop),
                _Inputs(targets, embeddings, device, encoder_path, monitor_encoder, meta, vae_digest),
            )


def _embeddings(run, encoder, encoder_path: Path, data: ImageData, device, progress) -> torch.Tensor:
    """L2-normalized embeddings of the clean images, computed once per encoder file."""
    path = run.root / "embeddings.safetensors"
    digest = file_sha256(encoder_path)
    if path.exists():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            saved = f.metadata() or {}
        if saved.get("encoder_sha256") == digest and saved.get("ids") == json.dumps(data.ids):
            return load_file(str(path))["embeddings"]
    emb = encoder_embeddings(encoder, data, device=device, progress=progress)
    info = {"encoder_sha256": digest, "encoder": str(encoder_path), "ids": json.dumps(data.ids)}
    save_safetensors(path, {"embeddings": emb}, info)
    return emb


@dataclass(frozen=True)
class _Inputs:
    """What run_train_generator prepared: ``targets`` are uint8 images (pixel space) or float
    latents (latent space), (N, C, S, S); ``embeddings`` their conditions, the same on every rank."""

    targets: torch.Tensor
    embeddings: torch.Tensor
    device: torch.device
    encoder_path: Path
    monitor_encoder: Any = None  # rank 0, pixel space, monitor on: the encoder that re-embeds predictions
    encoder_info: EncoderInfo | None = None
    vae_digest: str | None = None


class _Trainer:
    """One stage-2 step (target flips -> noise -> denoising loss -> optimizer step -> EMA -> log);
    :class:`~gensis.train.loop.Loop` runs the steps, as it does for stages 1/3 and the autoencoder."""

    def __init__(self, job: Job[TrainGeneratorConfig], inputs: _Inputs) -> None:
        cfg, run, info, tc = job.cfg, job.run, job.info, job.cfg.train
        self.cfg, self.run, self.info, self.device = cfg, run, info, inputs.device
        torch.manual_seed(tc.seed)
        encoder_info = inputs.encoder_info
        self.augment = resolve_target_augment(tc, encoder_info.augment if encoder_info else None)
        requested = tc.monitor_images if tc.monitor_every > 0 else 0
        self.train_idx, held = holdout_split(len(inputs.targets), requested, tc.batch_size, tc.seed)
        targets, embeddings = inputs.targets, inputs.embeddings
        self.unet = build_unet(cfg, targets.shape[-1], targets.shape[1], embeddings.shape[1]).to(self.device)
        self.ema = [p.detach().clone() for p in self.unet.parameters()]
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        self.scheduler = make_scheduler(
            "ddpm", cfg.model.num_train_timesteps, cfg.model.beta_schedule, cfg.model.prediction_type
        )
        self.schedule = Schedule(len(self.train_idx), tc.batch_size, tc.epochs, tc.seed, tc.max_steps)
        self.start = _restore(run, self.unet, self.ema, self.optimizer, self.device) if job.resume else 0
        if job.resume and info.is_main:
            run.truncate_metrics_after(self.start)
        self.model = distributed.wrap_ddp(self.unet, info, self.device)  # forward/backward path; same weights
        self.share = info.local_slice(tc.batch_size) if info.enabled else None
        self.targets, self.embeddings = targets.to(self.device), embeddings.to(self.device)
        self.monitor = (
            _monitor(self.targets, self.embeddings, held, self.scheduler, inputs.monitor_encoder, encoder_info, tc.seed)
            if info.is_main and len(held)
            else None
        )
        _describe(
            cfg, len(self.train_idx), len(held), self.targets, self.embeddings, self.schedule, self.unet, self.augment
        )
        self.loop = Loop(self.schedule, run, self.save, tc.checkpoint_every, tc.progress, info, job.stop)
        self.loss: float | None = None  # the last logged loss (mean over ranks)

    def train(self) -> int:
        return self.loop.run_steps(self.start, self.step)

    def step(self, step: int, epoch: int, idx: torch.Tensor) -> float | None:
        tc, info = self.cfg.train, self.info
        lr = _lr(self.cfg, step, self.schedule.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        gen = step_generator(tc.seed, step)
        rows = self.train_idx[idx].to(self.device)
        x0 = self.targets[rows]
        x0 = self.augment(x0.float() / 127.5 - 1.0 if x0.dtype == torch.uint8 else x0, gen)
        torch.manual_seed(tc.seed * 1_000_003 + step + (info.rank << 40))  # dropout layers; own masks per rank
        with autocast(self.device, tc.precision):  # `share`: the global batch's draws, this rank's rows
            loss = training_loss(
                self.model,
                self.scheduler,
                x0,
                self.embeddings[rows],
                gen,
                rows=self.share,
                min_snr_gamma=tc.min_snr_gamma,
            )
        self.loop.check_finite(loss, f"step {step}", "lower train.lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.unet.parameters(), tc.clip_grad)  # DDP: on the averaged gradients
        self.optimizer.step()
        ema_update_(self.ema, self.unet.parameters(), ema_decay(tc.ema_decay, step))  # the exported generator uses it
        done = step + 1
        shown = self._log(done, epoch, loss, lr)
        if self.monitor is not None and (done % tc.monitor_every == 0 or done == self.schedule.last_step):
            _run_monitor(self.monitor, self.unet, self.run, done, self.schedule.total_steps)
        return shown

    def _log(self, step: int, epoch: int, loss: torch.Tensor, lr: float) -> float | None:
        """Every ``log_every`` steps: the global batch's loss (mean over ranks) to metrics.jsonl; returns it."""
        tc = self.cfg.train
        if step % tc.log_every != 0 and step != self.schedule.last_step:
            return None
        self.loss = distributed.mean({"loss": loss}, self.info)["loss"]
        if self.info.is_main:
            self.run.log_metrics(
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": self.loss,
                    "lr": lr,
                    "images_per_s": self.loop.images_per_s(step),
                    "data_wait": self.loop.data_wait.share(),
                }
            )
        return self.loss

    def save(self, step: int) -> None:
        _save(self.run, self.unet, self.ema, self.optimizer, step)


def _train(job: Job[TrainGeneratorConfig], inputs: _Inputs) -> GeneratorResult:
    trainer = _Trainer(job, inputs)
    step = trainer.train()
    path = _export(job.run, job.info, trainer.unet, trainer.ema, job.cfg, inputs.encoder_path, step, inputs.vae_digest)
    return GeneratorResult(job.run.root, path, step, trainer.loss)


def _export(run: RunFolder, info, unet, ema, cfg, encoder_path, step: int, vae_digest: str | None) -> Path:
    path = exported_path(run.root, TrainGeneratorConfig.product)
    if info.is_main:
        export_generator(path, unet, ema, cfg, encoder_path, step, vae_sha256=vae_digest)
        log.info("exported EMA generator to %s", path)
    distributed.barrier(info)
    return path


def _describe(cfg, n: int, n_held: int, targets, embeddings, schedule: Schedule, unet, augment) -> None:
    log.info(
        "train-generator: %d images (+%d held out for the monitor), %s targets of %s, %d-d embeddings, "
        "%d steps, %.1fM parameters; target flips h=%.2f v=%.2f rot90=%.2f",
        n,
        n_held,
        cfg.model.space,
        tuple(targets.shape[1:]),
        embeddings.shape[1],
        schedule.total_steps,
        sum(p.numel() for p in unet.parameters()) / 1e6,
        augment.hflip_p,
        augment.vflip_p,
        augment.rot90_p,
    )


def _monitor(targets, embeddings, held, scheduler, encoder, info: EncoderInfo | None, seed) -> ConditioningMonitor:
    x0 = targets[held.to(targets.device)]
    x0 = x0.float() / 127.5 - 1.0 if x0.dtype == torch.uint8 else x0.float()
    mean = info.mean if info and info.mean else (0.5, 0.5, 0.5)
    std = info.std if info and info.std else (0.5, 0.5, 0.5)
    return ConditioningMonitor(
        x0,
        embeddings[held.to(embeddings.device)],
        held,
        embeddings,
        scheduler,
        encoder=encoder,
        mean=mean,
        std=std,
        seed=seed,
    )


def _run_monitor(monitor: ConditioningMonitor, unet, run: RunFolder, step: int, total_steps: int) -> None:
    metrics = monitor.measure(unet)
    run.log_metrics({"step": step, **metrics})
    log.info(
        "step %d conditioning: loss +%.1f / +%.1f / +%.1f %% with a wrong embedding (low/mid/high noise)%s",
        step,
        metrics["cond_gap_low"],
        metrics["cond_gap_mid"],
        metrics["cond_gap_high"],
        f"; source found from one-step predictions: top-1 {metrics['monitor_top1']:.1f} % "
        f"(wrong embedding {metrics['monitor_top1_shuffled']:.1f} %), median rank "
        f"{metrics['monitor_median_rank']}"
        if "monitor_top1" in metrics
        else "",
    )
    monitor.check(metrics, step, total_steps)


def ema_decay(decay: float, step: int) -> float:
    """EMA decay with warm-up, min(decay, (1 + t) / (10 + t)) (as in diffusers' EMAModel).

    Without it a decay of 0.9999 keeps the exported weights ~95 % at their random start
    after 500 steps, and a short run exports noise.
    """
    return min(decay, (1 + step) / (10 + step))


def _lr(cfg: TrainGeneratorConfig, step: int, total: int) -> float:
    tc = cfg.train
    return warmup_cosine(step, total, tc.lr, tc.warmup_steps, cosine=tc.lr_schedule != "constant")


def _save(run: RunFolder, model, ema, optimizer, step: int) -> None:
    save_training_state(run, GENERATOR_FORMAT, step, {"model": model.state_dict(), "ema": list(ema)}, optimizer)


def _restore(run: RunFolder, model, ema, optimizer, device) -> int:
    def apply(state: dict) -> None:
        model.load_state_dict(state["model"])
        for dst, src in zip(ema, state["ema"], strict=True):
            dst.copy_(src)

    return restore_state(run, GENERATOR_FORMAT, "generator", apply, device, optimizer)
