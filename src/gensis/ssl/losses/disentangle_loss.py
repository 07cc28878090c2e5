"""Disentanglement loss of Gen-SIS (Belagali et al. 2024, arXiv 2412.01672, Sec. 3.3).

An interpolated image ``I_int = G(SLERP(e1, e2, alpha))`` mixes two source images. The student
sees an augmented ``I_int`` and must predict the alpha-mix of the teacher's outputs on
augmented views of the two sources. The teacher's *raw* head outputs are mixed first, then
centered and sharpened exactly like a DINO target::

    t = softmax((alpha * t1 + (1 - alpha) * t2 - center) / tau_t)
    loss = mean_i  CE(t_i, softmax(s_i / tau_s))

With ``alpha = 1`` the target is the DINO target on ``I1``. Mixing before the softmax keeps the
target a sharpened distribution; mixing the two sharpened distributions instead would give a
bimodal target that the student can match only by hedging between the two sources.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def mixed_teacher_logits(t1: torch.Tensor, t2: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """alpha * t1 + (1 - alpha) * t2, per sample; ``alpha`` is the share of the first source."""
    a = alpha.to(t1.dtype).view(-1, *([1] * (t1.dim() - 1)))
    return a * t1 + (1.0 - a) * t2


def target_entropy(target: torch.Tensor) -> torch.Tensor:
    """Mean entropy of a (B, K) target distribution: the lowest value its cross-entropy can reach.

    Logged beside the loss so its curve can be read between two marks: ln K (a student that
    predicts nothing) and this floor (a student that predicts the mixed target exactly).
    """
    return -(target * target.clamp_min(1e-12).log()).sum(dim=-1).mean()


class DisentanglementLoss(nn.Module):
    def __init__(self, student_temp: float = 0.1) -> None:
        super().__init__()
        self.student_temp = student_temp

    def target(
        self,
        teacher_1: torch.Tensor,
        teacher_2: torch.Tensor,
        alpha: torch.Tensor,
        center: torch.Tensor,
        teacher_temp: float,
    ) -> torch.Tensor:
        """The mixed, centered, sharpened teacher distribution (B, K), detached."""
        mixed = mixed_teacher_logits(teacher_1.float(), teacher_2.float(), alpha)
        return F.softmax((mixed - center) / teacher_temp, dim=-1).detach()

    def forward(
        self,
        teacher_1: torch.Tensor,
        teacher_2: torch.Tensor,
        alpha: torch.Tensor,
        student_out: Sequence[torch.Tensor],
        center: torch.Tensor,
        teacher_temp: float,
    ) -> torch.Tensor:
        """Cross-entropy of every student view of ``I_int`` against the mixed target.

        Args:
            teacher_1, teacher_2: raw teacher head outputs (B, K) on views of the two sources.
            alpha: (B,) share of source 1 in the interpolation.
            student_out: student head outputs (B, K), one per augmented view of ``I_int``.
            center: the DINO center (1, K), the same one the DINO target used this step.
            teacher_temp: the DINO teacher temperature of this epoch.
        """
        if len(student_out) == 0:
            raise ValueError("disentanglement loss needs at least one student view")
        return self.from_target(self.target(teacher_1, teacher_2, alpha, center, teacher_temp), student_out)

    def from_target(self, q: torch.Tensor, student_out: Sequence[torch.Tensor]) -> torch.Tensor:
        """The loss against a target already built by :meth:`target` (the caller may reuse it)."""
        terms = [
            torch.sum(-q * F.log_softmax(s.float() / self.student_temp, dim=-1), dim=-1).mean() for s in student_out
        ]
        return torch.stack(terms).mean()
