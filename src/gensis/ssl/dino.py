"""DINO: self-distillation with no labels (Caron et al. 2021, arXiv 2104.14294).

Student and teacher share the architecture (backbone + ``DINOHead``). The student is trained
on all crops, the teacher sees the two global crops and follows the student by an exponential
moving average of the parameters with a momentum cosine-scheduled from
``momentum_teacher`` to 1. As in the reference code both networks stay in train mode (batch
statistics in BatchNorm) and only parameters, not BatchNorm buffers, are averaged.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from gensis.config.schema import DINOConfig
from gensis.models.backbones import Encoder
from gensis.runtime.distributed import unwrap
from gensis.runtime.ema import ema_update_
from gensis.ssl.heads import DINOHead
from gensis.ssl.losses.dino_loss import DINOLoss
from gensis.ssl.losses.disentangle_loss import DisentanglementLoss, mixed_teacher_logits, target_entropy


@dataclass
class DisentangleViews:
    """Inputs of the Gen-SIS disentanglement task for a batch of source images I1."""

    interpolated: torch.Tensor  # student input: augmented G(SLERP(e1, e2, alpha))
    partner: torch.Tensor  # teacher input: augmented I2
    alpha: torch.Tensor  # (B,) share of I1
    real_slot: torch.Tensor  # (B,) long: which global view (0 or 1) is the real I1 for the teacher

    def narrow(self, rows: slice) -> DisentangleViews:
        """The same inputs for a slice of the batch (one rank's share)."""
        return DisentangleViews(self.interpolated[rows], self.partner[rows], self.alpha[rows], self.real_slot[rows])


class MultiCropNet(nn.Module):
    """Backbone + head over a list of crops.

    On a GPU, crops of equal size run through the backbone as one batch (fewer, larger
    launches). On the CPU each crop runs on its own: a smaller working set is faster there
    (ResNet-18, 2 x 128 crops of 32 px: 5.2 s per step instead of 7.3 s on 2 cores).
    """

    def __init__(self, backbone: Encoder, head: DINOHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Returns the head output per view and the backbone embeddings of the first view."""
        if not views[0].is_cuda:
            embeddings = [self.backbone(v) for v in views]
            return [self.head(e) for e in embeddings], embeddings[0]
        groups: list[torch.Tensor] = []
        start = 0
        while start < len(views):
            end = start + 1
            while end < len(views) and views[end].shape[-1] == views[start].shape[-1]:
                end += 1
            groups.append(self.backbone(torch.cat(list(views[start:end]))))
            start = end
        emb = torch.cat(groups)
        logits = self.head(emb)
        return list(logits.chunk(len(views))), emb[: views[0].shape[0]]


class DINO(nn.Module):
    """DINO; with ``lambda_dis > 0`` also Gen-SIS's disentanglement loss (Gen-DINO)."""

    def __init__(
        self, encoder: Encoder, cfg: DINOConfig, lambda_dis: float = 0.0, dis_update_center: bool = False
    ) -> None:
        super().__init__()
        self.cfg = cfg
        head = DINOHead(
            encoder.embed_dim,
            cfg.out_dim,
            hidden_dim=cfg.hidden_dim,
            bottleneck_dim=cfg.bottleneck_dim,
            n_layers=cfg.head_layers,
            batch_norm=cfg.head_batch_norm,
            norm_last_layer=cfg.norm_last_layer,
        )
        student = MultiCropNet(encoder, head)
        self.student: nn.Module = student  # train/pretrain.py may wrap it in DDP
        self.teacher = copy.deepcopy(student)
        for p in self.teacher.parameters():
            p.requires_grad = False
        self.criterion = DINOLoss(
            cfg.out_dim,
            warmup_teacher_temp=cfg.warmup_teacher_temp,
            teacher_temp=cfg.teacher_temp,
            warmup_teacher_temp_epochs=cfg.warmup_teacher_temp_epochs,
            student_temp=cfg.student_temp,
            center_momentum=cfg.center_momentum,
        )
        self.dis_criterion = DisentanglementLoss(student_temp=cfg.student_temp)
        self.lambda_dis = lambda_dis
        self.dis_update_center = dis_update_center
        self.loss_parts: dict[str, torch.Tensor] = {}

    def forward(
        self,
        views: Sequence[torch.Tensor],
        epoch: int = 0,
        dis: DisentangleViews | None = None,
        weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """DINO loss on ``views`` = [global1, global2, *locals] (+ lambda_dis * disentanglement).

        ``weights`` (B,) re-weight each image's crop pairs (GenView's quality loss applied to
        DINO). Returns the loss and the student embeddings of the first view; the terms are
        left in ``self.loss_parts`` for logging.
        """
        with torch.no_grad():
            teacher_out, _ = self.teacher(views[:2])
        if not self.lambda_dis > 0:
            dis = None  # the disentanglement task is off
        # One student call per step (DDP needs exactly one forward per backward).
        student_out, student_emb = self.student(list(views) + ([dis.interpolated] if dis is not None else []))
        # Both targets use this step's center; it moves only after both are built.
        loss = self.criterion(teacher_out, student_out[: len(views)], epoch, update_center=False, weights=weights)
        self.loss_parts = {"loss_dino": loss.detach()}
        center_logits = [t.detach() for t in teacher_out]
        if dis is not None:
            with torch.no_grad():
                (t2,), _ = self.teacher([dis.partner])
            t1 = torch.where(dis.real_slot.view(-1, 1).bool(), teacher_out[1], teacher_out[0])
            s_int = student_out[-1]
            q = self.dis_criterion.target(t1, t2, dis.alpha, self.criterion.center, self.criterion.teacher_temp(epoch))
            dis_loss = self.dis_criterion.from_target(q, [s_int])
            loss = loss + self.lambda_dis * dis_loss
            self.loss_parts["loss_dis"] = dis_loss.detach()
            self.loss_parts["loss_dis_floor"] = target_entropy(q)  # the loss's minimum; ln K is its uniform value
            if self.dis_update_center:
                center_logits.append(mixed_teacher_logits(t1, t2, dis.alpha).detach())
        self.criterion.update_center(torch.cat(center_logits))
        return loss, student_emb

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        ema_update_(self.teacher.parameters(), unwrap(self.student).parameters(), momentum)

    @property
    def teacher_encoder(self) -> Encoder:
        """The teacher backbone: DINO evaluates and exports this one."""
        return self.teacher.backbone

    # The rest of SSLMethod, the contract the training loop relies on (ssl/methods.py).
    @property
    def momentum_start(self) -> float:
        return self.cfg.momentum_teacher

    def after_backward(self, epoch: int) -> None:
        if epoch < self.cfg.freeze_last_layer_epochs:
            cast(MultiCropNet, unwrap(self.student)).head.cancel_last_layer_gradients()

    def extra_state(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "center": self.criterion.center.detach().cpu()}

    def load_extra_state(self, state: dict) -> None:
        self.teacher.load_state_dict(state["teacher"])
        self.criterion.center.copy_(state["center"])

    def log_values(self, epoch: int) -> dict[str, float]:
        return {"teacher_temp": self.criterion.teacher_temp(epoch)}
