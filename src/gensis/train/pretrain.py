"""The pretraining loop: stage 1 (DINO with hand-crafted multi-crop augmentations), stage 3
(with generated views, ``gen.*``), and the contrastive methods (``method=simclr|mocov3``,
optionally with GenView's quality-weighted loss, ``quality.*``), all through one interface
(:mod:`gensis.ssl.two_view`).

Everything random in a step is a function of ``(seed, step)`` (data order per epoch,
augmentation parameters, drop-path), so ``resume`` after an interruption continues exactly
the trajectory of an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gensis.augment import MultiCropAugment
from gensis.config.schema import PretrainConfig
from gensis.data import ImageData, load_images
from gensis.data.batches import iterate_batches, step_generator
from gensis.data.loader import load_training_images
from gensis.errors import DataError
from gensis.eval.features import extract_features
from gensis.eval.knn import knn_accuracy, knn_ks_used
from gensis.eval.labels import align_labels
from gensis.models.backbones import build_encoder, check_model
from gensis.runtime import distributed
from gensis.runtime.checkpoint import export_encoder
from gensis.runtime.device import autocast, resolve_device
from gensis.runtime.job import Job
from gensis.runtime.optim import build_optimizer, clip_gradients_per_param, set_lr_wd
from gensis.runtime.run_folder import RunFolder
from gensis.runtime.schedules import cosine_schedule
from gensis.runtime.signals import GracefulStop
from gensis.ssl.methods import build_method
from gensis.train.gen_views import generated_source, stage3_views
from gensis.train.loop import Loop, Schedule
from gensis.train.state import (
    init_full_state,
    init_weights_state,
    load_model_state,
    restore_pretrain_state,
    save_pretrain_state,
)

log = logging.getLogger("gensis.pretrain")


@dataclass
class PretrainResult:
    out: Path
    encoder_path: Path
    steps: int
    final_metrics: dict[str, Any] = field(default_factory=dict)


def run_pretrain(
    cfg: PretrainConfig, *, resume: bool = False, data: ImageData | None = None, eval_data: ImageData | None = None
) -> PretrainResult:
    run = RunFolder(cfg.out)
    run.check_new_or_resume(cfg, resume)
    info = distributed.from_environment()
    distributed.check_batch(info, cfg.train.batch_size)
    # Read the data before touching the run folder: bad input leaves nothing behind.
    data, eval_data = _load_data(cfg, data, eval_data)
    generated = generated_source(cfg, data)
    init: dict[str, Any] | None = init_weights_state(cfg) if cfg.init_from is not None and not resume else None
    if init is not None and cfg.init_full:
        init = {"backbone": init, "full": init_full_state(cfg)}
    quality_encoder = _quality_encoder(cfg)
    check_model(cfg.model, cfg.data.resolution)  # an unknown backbone leaves no folder behind
    # Checkpoints carry the run's settings and data; resume refuses another run's or data's.
    with run.started(cfg, data.fingerprint(), is_main=info.is_main), GracefulStop() as stop:
        return _train(Job(cfg, run, resume, info, stop), _Inputs(data, eval_data, generated, init, quality_encoder))


def _quality_encoder(cfg: PretrainConfig):
    """GenView's frozen quality encoder (loaded before the run folder exists: a bad path writes nothing)."""
    if not cfg.quality.enabled:
        return None
    from gensis.runtime.checkpoint import load_encoder

    path = cfg.quality.encoder or cfg.init_from
    assert path is not None  # the config's validator requires one of them
    return load_encoder(path, "cpu")


def _pair_quality(cfg: PretrainConfig, encoder, data: ImageData, device, run: RunFolder):
    from gensis.foreground.fit import fit_foreground
    from gensis.foreground.quality import PairQuality

    q, fg = cfg.quality, cfg.quality.foreground
    encoder = encoder.to(device)
    pca = fit_foreground(
        encoder,
        data,
        fit_images=fg.fit_images,
        quantile=fg.quantile,
        sign=fg.sign,
        seed=cfg.train.seed,
        resolution=fg.resolution,
        device=device,
    )
    log.info(
        "quality encoder: foreground PCA on %d images (sign %+d, threshold %.3f)",
        min(fg.fit_images, len(data)),
        pca.sign,
        pca.threshold,
    )
    from gensis.foreground.picture import log_foreground

    log_foreground(run, encoder, data, pca, device=device, resolution=fg.resolution)
    return PairQuality(encoder, pca, q.gamma, cfg.augment.mean, cfg.augment.std, resolution=fg.resolution)


def _load_data(
    cfg: PretrainConfig, data: ImageData | None, eval_data: ImageData | None
) -> tuple[ImageData, ImageData | None]:
    d = cfg.data
    if data is None:
        data = load_training_images(
            d, d.resolution, progress=cfg.train.progress, require_labels=d.eval_path is not None
        )
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
        raise DataError(f"{data.source}: {len(data)} images, fewer than train.batch_size={cfg.train.batch_size}")
    return data, eval_data


class _Trainer:
    """One stage-1/3 run: the model, its optimizer and views, and the step in four parts
    (views, loss, optimizer step, log); :class:`~gensis.train.loop.Loop` runs the steps."""

    def __init__(self, job: Job[PretrainConfig], inputs: _Inputs) -> None:
        cfg, run, data, info, stop = job.cfg, job.run, inputs.data, job.info, job.stop
        generated, init, quality_encoder = inputs.generated, inputs.init, inputs.quality_encoder
        self.cfg, self.run, self.data, self.eval_data, self.info = cfg, run, data, inputs.eval_data, info
        self.device = distributed.setup(info, resolve_device(cfg.train.device))
        torch.manual_seed(cfg.train.seed)
        self.model = self._build_model(init, generated)
        self.optimizer = build_optimizer(self.model.student, cfg.optim)
        self.augment = MultiCropAugment(cfg.augment)
        self.schedule = Schedule(len(data), cfg.train.batch_size, cfg.train.epochs, cfg.train.seed, cfg.train.max_steps)
        self.loop = Loop(self.schedule, run, self.save, cfg.train.checkpoint_every, cfg.train.progress, info, stop)
        self.lr_base = cfg.optim.lr * cfg.train.batch_size / 256.0
        self.resident = data.images.to(self.device) if data.images is not None else None  # in memory
        self.generated = generated
        self.stage3 = stage3_views(cfg, generated, self.augment, self._fetch, self.lambda_dis)
        self.quality = (
            _pair_quality(cfg, quality_encoder, data, self.device, run) if quality_encoder is not None else None
        )
        self.metrics: dict[str, Any] = {}

    def _build_model(self, init: dict | None, generated):
        cfg = self.cfg
        encoder = build_encoder(cfg.model, cfg.data.resolution)
        if init is not None:
            encoder.load_state_dict(init.get("backbone", init))
            log.info("initialized backbone weights from %s", cfg.init_from)
        self.lambda_dis = cfg.gen.lambda_dis if generated is not None and cfg.method == "dino" else 0.0
        model = build_method(cfg, encoder, self.lambda_dis)
        if init is not None and "full" in init:  # the whole model of the init run, not its optimizer or step
            load_model_state(model, init["full"], f"{cfg.init_from} (init_full)")
            log.info(
                "initialized student, heads and %s from the last checkpoint of %s",
                ", ".join(k for k in init["full"] if k not in ("student", "format", "step")),
                cfg.init_from,
            )
        model = model.to(self.device)
        if self.device.type == "cuda" and cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.embed_dim = encoder.embed_dim
        return model

    def start(self, resume: bool) -> int:
        """Restore the step (``resume``), then wrap the student for DDP; returns the first step."""
        step = 0
        if resume:
            step = restore_pretrain_state(self.run, self.model, self.optimizer, self.device)
            if self.info.is_main:
                self.run.truncate_metrics_after(step)
            log.info("resumed %s at step %d/%d", self.run.root, step, self.schedule.total_steps)
        if self.info.enabled:
            self.model.student = distributed.wrap_ddp(self.model.student, self.info, self.device)
            for ema_net in ("teacher", "momentum"):  # the EMA network sees the global batch too
                if self.device.type == "cuda" and hasattr(self.model, ema_net):
                    setattr(
                        self.model, ema_net, torch.nn.SyncBatchNorm.convert_sync_batchnorm(getattr(self.model, ema_net))
                    )
        self.forward = torch.compile(self.model) if self.cfg.train.compile else self.model
        self.student = distributed.unwrap(self.model.student)
        c, s = self.cfg, self.schedule
        log.info(
            "pretrain (%s): %d images, %d steps/epoch, %d epochs, backbone %s (%d-d), device %s",
            c.method,
            len(self.data),
            s.steps_per_epoch,
            c.train.epochs,
            c.model.backbone,
            self.embed_dim,
            self.device,
        )
        return step

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        """Real uint8 images at ``idx`` on the compute device (stage 3's partners)."""
        return self.resident[idx.to(self.device)] if self.resident is not None else self.data.batch(idx).to(self.device)

    def batches(self, batches: list[torch.Tensor]):
        """(indices, uint8 images on the device) of each batch, decoded ahead by workers when not resident."""
        return zip(
            batches,
            iterate_batches(self.data, batches, self.device, self.cfg.data.num_workers, self.resident),
            strict=False,
        )  # one item per batch; strict would pull the iterator once more at a stop

    def step(self, step: int, epoch: int, batch) -> float | None:
        idx, images = batch
        tc, oc, s = self.cfg.train, self.cfg.optim, self.schedule
        lr = cosine_schedule(step, s.total_steps, self.lr_base, oc.min_lr, oc.warmup_epochs * s.steps_per_epoch)
        wd = cosine_schedule(step, s.total_steps, oc.weight_decay, oc.weight_decay_end)
        momentum = cosine_schedule(step, s.total_steps, self.model.momentum_start or 0.0, 1.0)
        set_lr_wd(self.optimizer, lr, wd)
        torch.manual_seed(tc.seed * 1_000_003 + step)  # drop-path and other module randomness
        views, dis, gen_views = self.views(images, idx, step)
        weights = self.quality(views[0], views[1]) if self.quality is not None else None
        with autocast(self.device, tc.precision):
            loss, student_emb = self.forward(views, epoch, dis, weights)
        self.loop.check_finite(loss, f"step {step} (epoch {epoch})", "lower optim.lr or check the data")
        self.optimize(loss, epoch, momentum)
        if (step + 1) % tc.log_every == 0 or step + 1 == s.last_step:
            return self.log(
                step + 1, epoch, loss, student_emb, gen_views, weights, lr=lr, weight_decay=wd, momentum=momentum
            )
        return None

    def views(self, images: torch.Tensor, idx: torch.Tensor, step: int):
        """The step's crops: stage 1's multi-crop, or stage 3's (real, generated) pairs and
        disentanglement inputs; under DDP each rank keeps its slice of the global batch."""
        gen = step_generator(self.cfg.train.seed, step)
        gen_views = self.stage3(images, idx, gen) if self.stage3 is not None else None
        views = gen_views.views if gen_views is not None else self.augment(images, gen)
        dis = gen_views.dis if gen_views is not None else None
        if self.info.enabled:  # every rank drew the global batch's views; each keeps its slice
            share = self.info.local_slice(images.shape[0])
            views = [v[share] for v in views]
            dis = dis.narrow(share) if dis is not None else None
        if self.device.type == "cuda" and self.cfg.train.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views, dis, gen_views

    def optimize(self, loss: torch.Tensor, epoch: int, momentum: float) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.clip_grad > 0:
            clip_gradients_per_param(self.student, self.cfg.optim.clip_grad)
        self.model.after_backward(epoch)
        self.optimizer.step()
        self.model.update_teacher(momentum)

    def log(self, step: int, epoch: int, loss, student_emb, gen_views, weights, **schedules: float) -> float:
        """Metrics of this step to metrics.jsonl (rank 0); returns the global batch's loss (every rank)."""
        parts = distributed.mean({"loss": loss.detach(), **self.model.loss_parts}, self.info)  # over ranks
        if not self.info.is_main:
            return parts["loss"]
        emb = torch.nn.functional.normalize(student_emb.detach().float(), dim=-1)
        momentum = schedules.pop("momentum")
        metrics = {
            "step": step,
            "epoch": epoch,
            "loss": parts.pop("loss"),
            **schedules,
            **({"teacher_momentum": momentum} if self.model.momentum_start is not None else {}),
            **self.model.log_values(epoch),
            # Collapse signal: ~1/sqrt(D) when healthy, -> 0 when all embeddings coincide.
            "embedding_std": emb.std(dim=0).mean().item(),
            "images_per_s": self.loop.images_per_s(step),
            "data_wait": self.loop.data_wait.share(),  # of the wall time since the last record
        }
        if weights is not None:  # how far the quality weights are from uniform
            metrics["quality_weight_std"] = weights.float().std().item()
        if gen_views is not None or self.cfg.method != "dino":
            metrics.update(parts)
        if gen_views is not None:
            metrics["generated_fraction"] = gen_views.generated.float().mean().item()
        self.run.log_metrics(metrics)
        self.metrics = metrics
        return metrics["loss"]

    def end_of_epoch(self, step: int) -> None:
        tc, s = self.cfg.train, self.schedule
        finished_epoch = step // s.steps_per_epoch
        m = self.metrics  # the last logged loss, with its step: "nan" here once read as a diverged run
        said = (
            f"loss {m['loss']:.4f} at step {m['step']}"
            if "loss" in m
            else f"no loss logged yet (train.log_every={tc.log_every})"
        )
        log.info("step %d epoch %d: %s", step, finished_epoch, said)
        knn_due = tc.knn_every > 0 and step % s.steps_per_epoch == 0 and finished_epoch % tc.knn_every == 0
        if self.info.is_main and self.eval_data is not None and (knn_due or step == s.total_steps):
            self.metrics.update(
                _online_knn(
                    self.model, self.data, self.eval_data, self.cfg, self.device, step, finished_epoch, self.run
                )
            )

    def save(self, step: int) -> None:
        save_pretrain_state(self.run, self.model, self.optimizer, step, self.cfg)

    def finish(self, step: int) -> PretrainResult:
        if self.info.is_main:
            export_encoder(
                self.run.exported_encoder, self.model.teacher_encoder, _export_meta(self.cfg, step, self.generated)
            )
            log.info("exported teacher encoder to %s", self.run.exported_encoder)
        distributed.barrier(self.info)
        return PretrainResult(self.run.root, self.run.exported_encoder, step, self.metrics)


@dataclass(frozen=True)
class _Inputs:
    """What run_pretrain read and checked before the run folder exists."""

    data: ImageData
    eval_data: ImageData | None = None
    generated: Any = None  # stage 3's generated views (train/view_sources.py), None in stage 1
    init: dict | None = None  # init_from's weights (weights only, not a resume)
    quality_encoder: Any = None  # GenView's frozen quality encoder


def _train(job: Job[PretrainConfig], inputs: _Inputs) -> PretrainResult:
    trainer = _Trainer(job, inputs)
    step = trainer.loop.run_steps(trainer.start(job.resume), trainer.step, trainer.batches, trainer.end_of_epoch)
    return trainer.finish(step)


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
    kw = dict(
        mean=cfg.augment.mean,
        std=cfg.augment.std,
        batch_size=cfg.train.batch_size,
        device=device,
        precision=cfg.train.precision,
    )
    encoder = model.teacher_encoder
    labels = align_labels(data, eval_data)  # by class name
    train_f = extract_features(encoder, data, **kw)
    test_f = extract_features(encoder, eval_data.subset(labels.keep), **kw)
    ks = knn_ks_used((20, 200), len(data), data.source, warn=epoch <= cfg.train.knn_every)  # said once
    acc = knn_accuracy(
        train_f, labels.train, test_f, labels.test, k=ks, temperature=0.07, num_classes=labels.num_classes
    )
    record = {"step": step, "epoch": epoch, **{f"knn_top1_k{k}": acc[k] for k in ks}}
    run.log_metrics(record)
    log.info("online kNN after epoch %d: %s", epoch, ", ".join(f"k={k} {acc[k]:.2f}%" for k in ks))
    return {k: v for k, v in record.items() if k.startswith("knn")}
