"""DINO loss (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
Transformers", arXiv 2104.14294, Eq. 1-2 and Alg. 1; facebookresearch/dino ``DINOLoss``).

The teacher's outputs are centered (a running mean over batches) and sharpened with a low
temperature; every student view predicts every teacher view except the same crop. The
center is updated after the loss with momentum ``center_momentum``; with ``gather_distributed``
the batch mean is all-reduced so that every rank holds the same center.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from gensis.ssl.losses.quality_weights import weighted_mean
from gensis.ssl.schedules import teacher_temperature


class DINOLoss(nn.Module):
    center: torch.Tensor  # a buffer (register_buffer)

    def __init__(
        self,
        out_dim: int,
        warmup_teacher_temp: float = 0.04,
        teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 30,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp_final = teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.gather_distributed = gather_distributed
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_temp(self, epoch: int) -> float:
        return teacher_temperature(
            epoch, self.warmup_teacher_temp, self.teacher_temp_final, self.warmup_teacher_temp_epochs
        )

    def teacher_probs(self, teacher_logits: torch.Tensor, epoch: int) -> torch.Tensor:
        """Centered, sharpened teacher distribution (also the target of later pretext tasks)."""
        temp = self.teacher_temp(epoch)
        return F.softmax((teacher_logits.float() - self.center) / temp, dim=-1).detach()

    def forward(
        self,
        teacher_out: Sequence[torch.Tensor],
        student_out: Sequence[torch.Tensor],
        epoch: int,
        update_center: bool = True,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Cross-entropy between each teacher view and each *other* student view.

        Args:
            teacher_out: teacher head outputs, one (B, K) tensor per global view.
            student_out: student head outputs, one (B, K) tensor per view; the first
                ``len(teacher_out)`` views are the same crops as the teacher's.
            epoch: current epoch, for the teacher-temperature warm-up.
            weights: optional (B,) per-image weights of mean 1 (GenView's quality weights,
                applied to every crop pair of an image); None is the plain mean.
        """
        targets = [self.teacher_probs(t, epoch) for t in teacher_out]
        log_preds = [F.log_softmax(s.float() / self.student_temp, dim=-1) for s in student_out]
        total = torch.zeros((), device=log_preds[0].device)
        n_terms = 0
        for iq, q in enumerate(targets):
            for v, log_p in enumerate(log_preds):
                if v == iq:
                    continue
                total = total + weighted_mean(torch.sum(-q * log_p, dim=-1), weights)
                n_terms += 1
        if n_terms == 0:
            raise ValueError("DINO loss needs at least two views")
        if update_center:
            self.update_center(torch.cat([t.detach() for t in teacher_out]))
        return total / n_terms

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        batch_sum = teacher_logits.float().sum(dim=0, keepdim=True)
        count = torch.tensor(float(teacher_logits.shape[0]), device=batch_sum.device)
        if self.gather_distributed and dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_sum)
            dist.all_reduce(count)
        batch_center = batch_sum / count
        self.center.mul_(self.center_momentum).add_(batch_center * (1 - self.center_momentum))
