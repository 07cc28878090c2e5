"""The pretraining loop: stage 1 (DINO with hand-crafted multi-crop augmentations), stage 3
(with generated views, ``gen.*``), and the contrastive methods (``method=simclr|mocov3``,
optionally with GenView's quality-weighted loss, ``quality.*``), all through one interface
(:mod:`gensis.ssl.two_view`).

Everything random in a step is a function of ``(seed, step)`` (data order per epoch,
augmentation parameters, drop-path), so ``resume`` after an interruption continues exactly
the trajectory of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from gensis.augment import MultiCropAugment
from gensis.config.schema import PretrainConfig
from gensis.data import ImageData, load_images
from gensis.data.loader import load_training_images
from gensis.errors import DataError
from gensis.eval.features import extract_features
from gensis.eval.knn import knn_accuracy, knn_ks_used
from gensis.eval.labels import align_labels
from gensis.models.backbones import build_encoder
from gensis.runtime import distributed
from gensis.runtime.checkpoint import export_encoder
from gensis.runtime.device import autocast, resolve_device
from gensis.runtime.loader import epoch_batches, iterate_batches, step_generator
from gensis.runtime.optim import build_optimizer, clip_gradients_per_param, set_lr_wd
from gensis.runtime.pretrain_state import (
    init_full_state,
    init_weights_state,
    load_model_state,
    restore_pretrain_state,
    save_pretrain_state,
)
from gensis.runtime.run_folder import RunFolder
from gensis.runtime.signals import GracefulStop, TrainingInterrupted
from gensis.ssl.methods import build_method
from gensis.ssl.schedules import cosine_schedule

log = logging.getLogger("gensis.pretrain")


@dataclass
class PretrainResult:
    out: Path
    encoder_path: Path
    steps: int
    final_metrics: dict[str, Any] = field(default_factory=dict)


def run_pretrain(
    cfg: PretrainConfig,
    *,
    resume: bool = False,
    data: ImageData | None = None,
    eval_data: ImageData | None = None,
) -> PretrainResult:
    run = RunFolder(cfg.out)
    run.check_new_or_resume(cfg, resume)
    info = distributed.from_environment()
    distributed.check_batch(info, cfg.train.batch_size)
    # Read the data before touching the run folder: bad input leaves nothing behind.
    data, eval_data = _load_data(cfg, data, eval_data)
    run.bind(cfg, data.fingerprint())  # checkpoints carry it; resume refuses another run's or data's
    generated = _generated_source(cfg, data)
    init = init_weights_state(cfg) if cfg.init_from is not None and not resume else None
    if init is not None and cfg.init_full:
        init = {"backbone": init, "full": init_full_state(cfg)}
    quality_encoder = _quality_encoder(cfg)
    if info.is_main:  # only rank 0 writes the run folder
        run.create()
        run.write_config(cfg)
    else:
        logging.getLogger("gensis").setLevel(logging.WARNING)  # one console log, rank 0's
    log_to_file = run.logging_to_file() if info.is_main else contextlib.nullcontext()
    with log_to_file, GracefulStop() as stop:
        return _train(cfg, run, resume, data, eval_data, generated, stop, init, info, quality_encoder)


def _quality_encoder(cfg: PretrainConfig):
    """GenView's frozen quality encoder (loaded before the run folder exists: a bad path writes nothing)."""
    if not cfg.quality.enabled:
        return None
    from gensis.runtime.checkpoint import load_encoder

    return load_encoder(cfg.quality.encoder or cfg.init_from, "cpu")


def _pair_quality(cfg: PretrainConfig, encoder, data: ImageData, device, run: RunFolder):
    from gensis.foreground.fit import fit_foreground
    from gensis.foreground.quality import PairQuality

    q, fg = cfg.quality, cfg.quality.foreground
    encoder = encoder.to(device)
    pca = fit_foreground(encoder, data, fit_images=fg.fit_images, quantile=fg.quantile, sign=fg.sign,
                         seed=cfg.train.seed, resolution=fg.resolution, device=device)
    log.info("quality encoder: foreground PCA on %d images (sign %+d, threshold %.3f)", min(fg.fit_images, len(data)),
             pca.sign, pca.threshold)
    from gensis.foreground.picture import log_foreground

    log_foreground(run, encoder, data, pca, device=device, resolution=fg.resolution)
    return PairQuality(encoder, pca, q.gamma, cfg.augment.mean, cfg.augment.std, resolution=fg.resolution)


def _generated_source(cfg: PretrainConfig, data: ImageData):
    """Stage 3's generated images (a bank, or the generator on the fly), or None for plain DINO."""
    g = cfg.gen
    if g.bank is not None:
        from gensis.bank.sources import BankViews

        return BankViews(g.bank, len(data), data.resolution, g.views_per_image, data=data,
                         device=resolve_device(cfg.train.device))
    if g.generator is not None:
        from gensis.bank.sources import OnTheFlyViews

        return OnTheFlyViews(g.generator, data, resolve_device(cfg.train.device), sampler=g.sampler, steps=g.steps,
                             guidance_scale=g.guidance_scale, alpha_range=g.alpha_range,
                             precision=cfg.train.precision)
    return None


def _load_data(
    cfg: PretrainConfig, data: ImageData | None, eval_data: ImageData | None
) -> tuple[ImageData, ImageData | None]:
    d = cfg.data
    if data is None:
        data = load_training_images(d, d.resolution, progress=cfg.train.progress,
                                    require_labels=d.eval_path is not None)
    if eval_data is None and d.eval_path is not None:
        eval_data = load_images(
            d.eval_path,
            d.resolution,
            require_labels=True,
            strict=d.strict,
            cache_dir=d.cache_dir,
            progress=cfg.train.progress,
            num_workers=d.num_workers,
        )
    if eval_data is not None and data.labels is None:
        raise DataError(f"{data.source} has no labels, which online kNN needs (or drop data.eval_path)")
    if eval_data is not None:
        align_labels(data, eval_data)  # disjoint classes are refused before the run folder is touched
    if len(data) < cfg.train.batch_size:
        raise DataError(
            f"{data.source}: {len(data)} images, fewer than train.batch_size={cfg.train.batch_size}"
        )
    return data, eval_data


def _train(
    cfg: PretrainConfig,
    run: RunFolder,
    resume: bool,
    data: ImageData,
    eval_data: ImageData | None,
    generated=None,
    stop: GracefulStop | None = None,
    init: dict | None = None,
    info: distributed.Dist = distributed.Dist(),
    quality_encoder=None,
) -> PretrainResult:
    tc, oc = cfg.train, cfg.optim
    device = distributed.setup(info, resolve_device(tc.device))
    torch.manual_seed(tc.seed)

    encoder = build_encoder(cfg.model, cfg.data.resolution)
    if init is not None:
        encoder.load_state_dict(init.get("backbone", init))
        log.info("initialized backbone weights from %s", cfg.init_from)
    lambda_dis = cfg.gen.lambda_dis if generated is not None and cfg.method == "dino" else 0.0
    model = build_method(cfg, encoder, lambda_dis)
    if init is not None and "full" in init:  # the whole model of the init run, not its optimizer or step
        load_model_state(model, init["full"], f"{cfg.init_from} (init_full)")
        log.info("initialized student, heads and %s from the last checkpoint of %s",
                 ", ".join(k for k in init["full"] if k not in ("student", "format", "step")), cfg.init_from)
    model = model.to(device)
    if device.type == "cuda" and tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model.student, oc)
    augment = MultiCropAugment(cfg.augment)

    steps_per_epoch = len(data) // tc.batch_size
    total_steps = tc.epochs * steps_per_epoch
    lr_base = oc.lr * tc.batch_size / 256.0
    step = 0
    if resume:
        step = restore_pretrain_state(run, model, optimizer, device)
        if info.is_main:
            run.truncate_metrics_after(step)
        log.info("resumed %s at step %d/%d", run.root, step, total_steps)
    if info.enabled:
        model.student = distributed.wrap_ddp(model.student, info, device)
        for ema_net in ("teacher", "momentum"):  # the EMA network sees the global batch too
            if device.type == "cuda" and hasattr(model, ema_net):
                setattr(model, ema_net, torch.nn.SyncBatchNorm.convert_sync_batchnorm(getattr(model, ema_net)))
    forward = torch.compile(model) if tc.compile else model
    student = distributed.unwrap(model.student)
    last_step = min(total_steps, tc.max_steps) if tc.max_steps else total_steps
    resident = data.images.to(device) if data.in_memory else None
    pairs = None
    if generated is not None:
        from gensis.bank.pairs import PairSampler

        def fetch(idx: torch.Tensor) -> torch.Tensor:
            return resident[idx.to(device)] if resident is not None else data.batch(idx).to(device)

        pairs = PairSampler(cfg.gen.model_copy(update={"lambda_dis": lambda_dis}), generated, augment, fetch)
    quality = _pair_quality(cfg, quality_encoder, data, device, run) if quality_encoder is not None else None
    log.info(
        "pretrain (%s): %d images, %d steps/epoch, %d epochs, backbone %s (%d-d), device %s",
        cfg.method, len(data), steps_per_epoch, tc.epochs, cfg.model.backbone, encoder.embed_dim, device,
    )

    metrics: dict[str, Any] = {}
    while step < last_step:
        epoch = step // steps_per_epoch
        batches = epoch_batches(len(data), tc.batch_size, tc.seed, epoch)[step % steps_per_epoch :]
        batches = batches[: last_step - step]
        bar = tqdm(total=len(batches), desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not (tc.progress and info.is_main),
                   leave=False)
        t0, seen = time.perf_counter(), 0
        for idx, images in zip(batches, iterate_batches(data, batches, device, cfg.data.num_workers, resident)):
            lr = cosine_schedule(step, total_steps, lr_base, oc.min_lr, oc.warmup_epochs * steps_per_epoch)
            wd = cosine_schedule(step, total_steps, oc.weight_decay, oc.weight_decay_end)
            momentum = cosine_schedule(step, total_steps, model.momentum_start or 0.0, 1.0)
            set_lr_wd(optimizer, lr, wd)

            torch.manual_seed(tc.seed * 1_000_003 + step)  # drop-path and other module randomness
            gen_views = pairs(images, idx, step_generator(tc.seed, step)) if pairs is not None else None
            views = gen_views.views if gen_views is not None else augment(images, step_generator(tc.seed, step))
            dis = gen_views.dis if gen_views is not None else None
            if info.enabled:  # every rank drew the global batch's views; each keeps its slice
                share = info.local_slice(images.shape[0])
                views = [v[share] for v in views]
                dis = dis.narrow(share) if dis is not None else None
            if device.type == "cuda" and tc.channels_last:
                views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            weights = quality(views[0], views[1]) if quality is not None else None
            with autocast(device, tc.precision):
                loss, student_emb = forward(views, epoch, dis, weights)
            if not distributed.all_finite(loss, info):
                raise run.non_finite_loss(loss.item(), f"step {step} (epoch {epoch})", "lower optim.lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if oc.clip_grad > 0:
                clip_gradients_per_param(student, oc.clip_grad)
            model.after_backward(epoch)
            optimizer.step()
            model.update_teacher(momentum)
            step += 1
            seen += images.shape[0]
            bar.update(1)

            if step % tc.log_every == 0 or step == last_step:
                # Losses averaged over ranks: the loss of the global batch.
                parts = distributed.mean({"loss": loss.detach(), **model.loss_parts}, info)
            if info.is_main and (step % tc.log_every == 0 or step == last_step):
                emb = torch.nn.functional.normalize(student_emb.detach().float(), dim=-1)
                metrics = {
                    "step": step,
                    "epoch": epoch,
                    "loss": parts.pop("loss"),
                    "lr": lr,
                    "weight_decay": wd,
                    **({"teacher_momentum": momentum} if model.momentum_start is not None else {}),
                    **model.log_values(epoch),
                    # Collapse signal: ~1/sqrt(D) when healthy, -> 0 when all embeddings coincide.
                    "embedding_std": emb.std(dim=0).mean().item(),
                    "images_per_s": seen / max(time.perf_counter() - t0, 1e-9),
                }
                if weights is not None:  # how far the quality weights are from uniform
                    metrics["quality_weight_std"] = weights.float().std().item()
                if gen_views is not None or cfg.method != "dino":
                    metrics.update(parts)
                if gen_views is not None:
                    metrics["generated_fraction"] = gen_views.generated.float().mean().item()
                run.log_metrics(metrics)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}")
            # Decided together, so that every rank stops after the same step.
            if stop is not None and distributed.any_rank(stop.signal is not None, info) and step < last_step:
                bar.close()
                if info.is_main:
                    save_pretrain_state(run, model, optimizer, step, cfg)
                raise TrainingInterrupted(stop.signal or signal.SIGTERM, step, run.last_checkpoint)
        bar.close()

        end_of_epoch = step % steps_per_epoch == 0
        done = step >= last_step
        finished_epoch = step // steps_per_epoch
        # the last logged loss, with its step: "nan" here once read as a diverged run
        seen = f"loss {metrics['loss']:.4f} at step {metrics['step']}" if "loss" in metrics else \
            f"no loss logged yet (train.log_every={tc.log_every})"
        log.info("step %d epoch %d: %s", step, finished_epoch, seen)
        if info.is_main and (done or (end_of_epoch and finished_epoch % tc.checkpoint_every == 0)):
            save_pretrain_state(run, model, optimizer, step, cfg)
        knn_due = tc.knn_every > 0 and end_of_epoch and finished_epoch % tc.knn_every == 0
        if info.is_main and eval_data is not None and (knn_due or step == total_steps):
            metrics.update(_online_knn(model, data, eval_data, cfg, device, step, finished_epoch, run))

    if info.is_main:
        export_encoder(run.exported_encoder, model.teacher_encoder, _export_meta(cfg, step, generated))
        log.info("exported teacher encoder to %s", run.exported_encoder)
    distributed.barrier(info)
    return PretrainResult(run.root, run.exported_encoder, step, metrics)


def _export_meta(cfg: PretrainConfig, step: int, generated=None) -> dict[str, str]:
    meta = {
        "mean": json.dumps(list(cfg.augment.mean)),
        "std": json.dumps(list(cfg.augment.std)),
        "trained_steps": str(step),
        "method": cfg.method if generated is None else f"gen-{cfg.method}",
        # What stage 1 called a view: the generator's target flips follow it, and
        # eval-generator's real-view ceiling is drawn with it.
        "augment": json.dumps(cfg.augment.model_dump(mode="json"), sort_keys=True),
    }
    if generated is not None:
        meta["generator_sha256"] = generated.generator_sha256
    return meta


def _online_knn(model, data, eval_data, cfg, device, step, epoch, run) -> dict[str, Any]:
    kw = dict(mean=cfg.augment.mean, std=cfg.augment.std, batch_size=cfg.train.batch_size,
              device=device, precision=cfg.train.precision)
    encoder = model.teacher_encoder
    labels = align_labels(data, eval_data)  # by class name
    train_f = extract_features(encoder, data, **kw)
    test_f = extract_features(encoder, eval_data.subset(labels.keep), **kw)
    ks = knn_ks_used((20, 200), len(data), data.source, warn=epoch <= cfg.train.knn_every)  # said once
    acc = knn_accuracy(train_f, labels.train, test_f, labels.test, k=ks, temperature=0.07,
                       num_classes=labels.num_classes)
    record = {"step": step, "epoch": epoch, **{f"knn_top1_k{k}": acc[k] for k in ks}}
    run.log_metrics(record)
    log.info("online kNN after epoch %d: %s", epoch, ", ".join(f"k={k} {acc[k]:.2f}%" for k in ks))
    return {k: v for k, v in record.items() if k.startswith("knn")}
