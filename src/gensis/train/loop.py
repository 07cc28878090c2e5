"""The loop skeleton every trainer shares (stages 1/3 in pretrain.py, stage 2 in generator.py, the autoencoder).

As facebookresearch/dino's ``train_one_epoch``, one readable loop: epochs of seeded batches
(the order of epoch ``e`` depends only on ``(seed, e)``, so a resumed run sees the batches the
interrupted one would have), a progress bar, a checkpoint at the end of every
``checkpoint_every``-th epoch and of the run, and a graceful stop: on SIGINT/SIGTERM the step
in flight finishes, every rank agrees to stop after the same step, rank 0 saves it and the run
ends with :class:`TrainingInterrupted` (``--resume`` continues it exactly). The stage supplies
one step and what it does at an epoch's end; the loop owns nothing else.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from gensis.data.batches import epoch_batches
from gensis.runtime import distributed
from gensis.runtime.data_wait import DataWait
from gensis.runtime.run_folder import RunFolder
from gensis.runtime.signals import GracefulStop, TrainingInterrupted


@dataclass(frozen=True)
class Schedule:
    """How many steps a run takes: whole epochs of full batches, cut at ``max_steps``."""

    n_images: int
    batch_size: int
    epochs: int
    seed: int
    max_steps: int | None = None

    @property
    def steps_per_epoch(self) -> int:
        return self.n_images // self.batch_size

    @property
    def total_steps(self) -> int:
        """The length the lr and momentum schedules are laid out over."""
        return self.epochs * self.steps_per_epoch

    @property
    def last_step(self) -> int:
        return min(self.total_steps, self.max_steps) if self.max_steps else self.total_steps


@dataclass
class Loop:
    """Runs ``step_fn`` over the remaining batches of ``schedule`` (see the module docstring)."""

    schedule: Schedule
    run: RunFolder
    save: Callable[[int], None]  # write checkpoints/last.pt at this step (rank 0 only calls it)
    checkpoint_every: int = 1
    progress: bool = True
    info: distributed.Dist = distributed.Dist()
    stop: GracefulStop | None = None
    data_wait: DataWait = field(default_factory=DataWait)  # stages log data_wait.share() with their metrics
    _epoch_start: tuple[int, float] = field(default=(0, 0.0), init=False, repr=False)  # (step, time)

    def images_per_s(self, done: int) -> float:
        """Images trained per second since this epoch began, ``done`` steps into the run (stages log it)."""
        first, t0 = self._epoch_start
        return (done - first) * self.schedule.batch_size / max(time.perf_counter() - t0, 1e-9)

    def check_finite(self, loss: torch.Tensor, where: str, hint: str) -> None:
        """A non-finite loss on any rank stops every rank, naming the step (and a checkpoint if one exists)."""
        if not distributed.all_finite(loss, self.info):
            raise self.run.non_finite_loss(loss.item(), where, hint)

    def run_steps(
        self,
        step: int,
        step_fn: Callable[[int, int, Any], float | None],
        fetch: Callable[[list[torch.Tensor]], Iterable[Any]] = lambda batches: batches,
        end_of_epoch: Callable[[int], None] | None = None,
    ) -> int:
        """From ``step`` to the last step. ``fetch`` turns the epoch's index batches into what
        ``step_fn(step, epoch, item)`` takes; ``step_fn`` returns a loss to show, or None.
        ``end_of_epoch(step)`` runs after each epoch's checkpoint. Returns the last step."""
        s = self.schedule
        while step < s.last_step:
            epoch = step // s.steps_per_epoch
            batches = epoch_batches(s.n_images, s.batch_size, s.seed, epoch)[step % s.steps_per_epoch :]
            batches = batches[: s.last_step - step]
            bar = tqdm(
                total=len(batches),
                desc=f"epoch {epoch + 1}/{s.epochs}",
                disable=not (self.progress and self.info.is_main),
                leave=False,
            )
            self._epoch_start = (step, time.perf_counter())
            for item in self.data_wait.timed(fetch(batches)):
                shown = step_fn(step, epoch, item)
                step += 1
                bar.update(1)
                if shown is not None:
                    bar.set_postfix(loss=f"{shown:.4g}", data_wait=f"{self.data_wait.share('bar'):.0%}")
                self._stop_if_asked(step, bar)
            bar.close()
            due = step % s.steps_per_epoch == 0 and (step // s.steps_per_epoch) % self.checkpoint_every == 0
            if self.info.is_main and (step >= s.last_step or due):
                self.save(step)
            if end_of_epoch is not None:
                end_of_epoch(step)
        return step

    def _stop_if_asked(self, step: int, bar) -> None:
        # Decided together, so that every rank stops after the same step.
        asked = self.stop is not None and self.stop.signal is not None
        if self.stop is None or not distributed.any_rank(asked, self.info) or step >= self.schedule.last_step:
            return
        bar.close()
        if self.info.is_main:
            self.save(step)
        raise TrainingInterrupted(self.stop.signal or signal.SIGTERM, step, self.run.last_checkpoint)
