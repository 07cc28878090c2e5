"""DINO loss, centering, temperatures and schedules against hand-computed references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gensis.runtime.schedules import cosine_schedule
from gensis.ssl.heads import DINOHead
from gensis.ssl.losses import DINOLoss
from gensis.ssl.schedules import teacher_temperature


def test_dino_loss_hand_computed_value() -> None:
    # Uniform student logits: every cross-entropy term equals log(2), whatever the teacher says.
    loss_fn = DINOLoss(
        out_dim=2, warmup_teacher_temp=1.0, teacher_temp=1.0, warmup_teacher_temp_epochs=0, student_temp=1.0
    )
    t = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    s = [torch.zeros(1, 2), torch.zeros(1, 2)]
    loss = loss_fn(t, s, epoch=0)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    # Center after one update: 0.9 * 0 + 0.1 * mean of the teacher outputs [0.5, 0.5].
    assert torch.allclose(loss_fn.center, torch.tensor([[0.05, 0.05]]))


def test_dino_loss_two_by_two_by_hand() -> None:
    # One teacher view that matters per student view (2 globals): q1 = softmax([2,0]/1),
    # student 2 logits [0, ln 3] -> p2 = [1/4, 3/4]; term(q1, p2) = -(a ln(1/4) + b ln(3/4)).
    loss_fn = DINOLoss(
        out_dim=2, warmup_teacher_temp=1.0, teacher_temp=1.0, warmup_teacher_temp_epochs=0, student_temp=1.0
    )
    t = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])]
    s = [torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, math.log(3.0)]])]
    a = math.exp(2) / (math.exp(2) + 1)
    b = 1 - a
    term_q1_s2 = -(a * math.log(0.25) + b * math.log(0.75))
    term_q2_s1 = math.log(2)  # uniform teacher vs uniform student
    assert loss_fn(t, s, epoch=0).item() == pytest.approx((term_q1_s2 + term_q2_s1) / 2, abs=1e-6)


def _numpy_reference(t_views, s_views, center, tt, ts):
    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    total, n = 0.0, 0
    for i, t in enumerate(t_views):
        q = softmax((t - center) / tt)
        for v, s in enumerate(s_views):
            if v == i:
                continue
            logp = np.log(softmax(s / ts))
            total += (-(q * logp).sum(-1)).mean()
            n += 1
    return total / n


def test_dino_loss_matches_numpy_reference_with_center_and_locals() -> None:
    g = torch.Generator().manual_seed(0)
    B, K = 5, 7
    t = [torch.randn(B, K, generator=g) for _ in range(2)]
    s = [torch.randn(B, K, generator=g) for _ in range(4)]  # 2 global + 2 local views
    loss_fn = DINOLoss(out_dim=K, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=10)
    loss_fn.center.copy_(torch.randn(1, K, generator=g))
    center_before = loss_fn.center.clone()
    tt = loss_fn.teacher_temp(3)
    expected = _numpy_reference([x.numpy() for x in t], [x.numpy() for x in s], center_before.numpy(), tt, 0.1)
    assert loss_fn(t, s, epoch=3).item() == pytest.approx(expected, rel=1e-5)
    batch_mean = torch.cat(t).mean(0, keepdim=True)
    assert torch.allclose(loss_fn.center, 0.9 * center_before + 0.1 * batch_mean, atol=1e-6)


def test_center_not_updated_on_request_and_gradient_only_to_student() -> None:
    loss_fn = DINOLoss(out_dim=4)
    t = [torch.randn(3, 4, requires_grad=True) for _ in range(2)]
    s = [torch.randn(3, 4, requires_grad=True) for _ in range(2)]
    loss_fn(t, s, epoch=0, update_center=False).backward()
    assert torch.count_nonzero(loss_fn.center) == 0
    assert all(x.grad is None for x in t) and all(x.grad is not None for x in s)


def test_teacher_temperature_warmup_matches_linspace() -> None:
    ref = np.concatenate([np.linspace(0.04, 0.07, 30), np.ones(70) * 0.07])
    got = [teacher_temperature(e, 0.04, 0.07, 30) for e in range(100)]
    assert np.allclose(got, ref)
    for n in (1, 2, 3):  # short warm-ups: np.linspace(0.04, 0.07, n), then 0.07
        want = [*np.linspace(0.04, 0.07, n), 0.07]
        assert np.allclose([teacher_temperature(e, 0.04, 0.07, n) for e in range(n + 1)], want), n


def _dino_cosine_scheduler(base, final, epochs, niter, warmup_epochs=0, start_warmup=0.0):
    # facebookresearch/dino utils.cosine_scheduler, rewritten for the test.
    warmup_iters = warmup_epochs * niter
    warm = np.linspace(start_warmup, base, warmup_iters) if warmup_epochs > 0 else np.array([])
    iters = np.arange(epochs * niter - warmup_iters)
    sched = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / len(iters)))
    return np.concatenate((warm, sched))


@pytest.mark.parametrize("warmup", [0, 1, 3])
def test_cosine_schedule_matches_dino_reference(warmup: int) -> None:
    ref = _dino_cosine_scheduler(0.5, 1e-6, 10, 7, warmup)
    got = [cosine_schedule(i, 70, 0.5, 1e-6, warmup * 7) for i in range(70)]
    assert np.allclose(got, ref, rtol=1e-12, atol=1e-12)
    assert cosine_schedule(500, 70, 0.5, 1e-6, warmup * 7) == pytest.approx(ref[-1])


@pytest.mark.parametrize("warmup", [1, 2, 3])
def test_cosine_schedule_warms_up_from_its_start_value_as_dino_does(warmup: int) -> None:
    """One iteration an epoch, a warm-up from 0.2: DINO's np.linspace(0.2, 0.5, n), so one warm-up
    step is 0.2 (linspace's first point), two are 0.2 then 0.5."""
    ref = _dino_cosine_scheduler(0.5, 0.1, 6, 1, warmup, start_warmup=0.2)
    got = [cosine_schedule(i, 6, 0.5, 0.1, warmup, 0.2) for i in range(6)]
    assert np.allclose(got, ref, rtol=1e-12, atol=1e-12)
    assert got[0] == 0.2


def test_cosine_schedule_refuses_no_steps() -> None:
    for total in (0, -3):
        with pytest.raises(ValueError) as refused:
            cosine_schedule(0, total, 0.5, 0.1)
        assert str(refused.value) == "total_steps must be positive"


def test_dino_head_prototypes_frozen_norm_and_shape() -> None:
    head = DINOHead(16, 32, hidden_dim=8, bottleneck_dim=4, n_layers=3, batch_norm=True)
    out = head(torch.randn(5, 16))
    assert out.shape == (5, 32)
    g = head.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.all(g == 1)
    w = head.last_layer.weight
    assert torch.allclose(w.norm(dim=1), torch.ones(32), atol=1e-5)
    out.sum().backward()
    head.cancel_last_layer_gradients()
    assert all(p.grad is None for p in head.last_layer.parameters())


def test_warmup_cosine_of_stage_2_and_the_autoencoder() -> None:
    """A linear ramp that reaches ``base`` at the last warm-up step, then a half cosine to 0 over the
    rest (hand-computed: 0.5 * (1 + cos(pi * i / 4)) for i = 0..3), or ``base`` held."""
    from gensis.runtime.schedules import warmup_cosine

    got = [warmup_cosine(s, 8, 1.0, 4) for s in range(8)]
    want = [0.25, 0.5, 0.75, 1.0, 1.0, 0.8535533905932737, 0.5, 0.14644660940672627]
    assert got == pytest.approx(want, abs=1e-12)
    assert [warmup_cosine(s, 8, 2.0, 4, cosine=False) for s in (0, 3, 4, 7)] == [0.5, 2.0, 2.0, 2.0]
    assert warmup_cosine(0, 1, 3.0, 0) == 3.0  # no warm-up, one step: the cosine's first value is base


def _tiny_dino(**cfg):
    from gensis.config.schema import DINOConfig, ModelConfig
    from gensis.models.backbones import build_encoder
    from gensis.ssl.dino import DINO

    head = {"out_dim": 32, "hidden_dim": 32, "bottleneck_dim": 16, "warmup_teacher_temp_epochs": 0}
    return DINO(build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8), DINOConfig(**{**head, **cfg}))


def test_prototypes_get_no_gradient_during_the_first_freeze_last_layer_epochs_only() -> None:
    """DINO's freeze_last_layer: epochs 0 .. n-1 drop the last layer's gradients; epoch n keeps them."""
    dino = _tiny_dino(freeze_last_layer_epochs=2)
    last = list(dino.student.head.last_layer.parameters())
    for epoch, kept in ((0, False), (1, False), (2, True), (3, True)):
        for p in last:
            p.grad = torch.ones_like(p)
        dino.after_backward(epoch)
        assert all((p.grad is not None) == kept for p in last), epoch


def test_on_the_cpu_each_crop_runs_through_the_backbone_alone() -> None:
    """In training mode a batch-norm backbone sees each crop's batch on its own on the CPU (batch
    statistics per crop), so crops of one size are not joined; the embeddings returned are the first crop's."""
    torch.manual_seed(0)
    net = _tiny_dino().student.train()
    views = [torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8) + 3.0, torch.randn(4, 3, 4, 4)]
    out, emb = net(views)
    with torch.no_grad():
        alone = [net.backbone(v) for v in views]
        joined = net.backbone(torch.cat(views[:2]))[:4]
    assert len(out) == 3 and torch.allclose(emb, alone[0], atol=1e-6)
    assert not torch.allclose(emb, joined, atol=1e-3)  # batch statistics of both crops differ from one's
    for o, e in zip(out, alone, strict=True):
        assert torch.allclose(o, net.head(e), atol=1e-6)


@pytest.mark.gpu
def test_on_a_gpu_crops_of_one_size_run_as_one_batch_in_their_order() -> None:
    """Runs of equal-size crops are joined (batch statistics over the run), in order: sizes 8, 8, 4, 4, 8
    give the batches [v0, v1], [v2, v3], [v4]; the head sees the embeddings in the views' order."""
    assert torch.cuda.is_available(), "pytest -m gpu needs a CUDA device"
    torch.manual_seed(0)
    net = _tiny_dino().student.cuda().train()
    sizes = (8, 8, 4, 4, 8)
    views = [torch.randn(2, 3, s, s, device="cuda") + k for k, s in enumerate(sizes)]
    out, emb = net(views)
    with torch.no_grad():
        runs = [net.backbone(torch.cat(views[a:b])) for a, b in ((0, 2), (2, 4), (4, 5))]
    expected = torch.cat(runs)
    assert len(out) == 5 and torch.allclose(emb, expected[:2], atol=1e-4)
    for k, o in enumerate(out):
        assert torch.allclose(o, net.head(expected[2 * k : 2 * k + 2]), atol=1e-4)


def test_dino_builds_student_teacher_and_losses_from_its_config() -> None:
    """Every DINOConfig field reaches its part: the head's sizes, layers, batch norm and prototype
    norm; the loss's temperatures and center momentum; the disentanglement loss's student temperature.
    The teacher starts as a frozen copy of the student; the disentanglement task is off by default."""
    cfg = {
        "out_dim": 24,
        "hidden_dim": 20,
        "bottleneck_dim": 12,
        "head_layers": 2,
        "head_batch_norm": True,
        "norm_last_layer": False,
        "warmup_teacher_temp": 0.03,
        "teacher_temp": 0.06,
        "warmup_teacher_temp_epochs": 7,
        "student_temp": 0.2,
        "center_momentum": 0.8,
    }
    from gensis.config.schema import DINOConfig, ModelConfig
    from gensis.models.backbones import build_encoder
    from gensis.ssl.dino import DINO

    encoder = build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8)
    dino = DINO(encoder, DINOConfig(**cfg))
    assert (dino.lambda_dis, dino.dis_update_center) == (0.0, False) and dino.student.backbone is encoder
    linears = [m for m in dino.student.head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(encoder.embed_dim, 20), (20, 12)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in dino.student.head.mlp) == 1
    assert dino.student.head.last_layer.weight.shape == (24, 12)
    assert dino.student.head.last_layer.parametrizations.weight.original0.requires_grad  # norm_last_layer=False
    loss = dino.criterion
    assert (loss.warmup_teacher_temp, loss.teacher_temp_final, loss.warmup_teacher_temp_epochs) == (0.03, 0.06, 7)
    assert (loss.student_temp, loss.center_momentum, loss.center.shape) == (0.2, 0.8, (1, 24))
    assert dino.dis_criterion.student_temp == 0.2
    student, teacher = dict(dino.student.named_parameters()), dict(dino.teacher.named_parameters())
    assert student.keys() == teacher.keys()
    for name, p in teacher.items():
        assert not p.requires_grad and torch.equal(p, student[name]) and p.data_ptr() != student[name].data_ptr()
    assert all(p.requires_grad for p in student.values())
    gen = DINO(build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8), DINOConfig(**cfg), 0.5, True)
    assert (gen.lambda_dis, gen.dis_update_center) == (0.5, True) and gen.loss_parts == {}
    published = _tiny_dino()  # norm_last_layer by default: the prototypes' norm stays 1
    assert not published.student.head.last_layer.parametrizations.weight.original0.requires_grad


def _ce(q: torch.Tensor, s: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Per-image cross-entropy -sum q log softmax(s / tau_s), written out."""
    log_p = s / tau_s - torch.logsumexp(s / tau_s, dim=-1, keepdim=True)
    return -(q * log_p).sum(dim=-1)


@pytest.mark.parametrize("dis_update_center", [False, True])
def test_gen_dino_forward_against_the_published_formulas(dis_update_center: bool) -> None:
    """DINO.forward on [g1, g2, local] with a disentanglement batch, against Caron et al.'s loss and
    Gen-SIS's, written out from the parts' outputs (eval mode: batch norm does not depend on batching):
    q_i = softmax((T_i - c) / tau_t) over the 2 teacher views, CE against every other student view,
    4 pairs, each image weighted; the disentanglement target softmax((a T_real + (1-a) T_partner - c) / tau_t)
    for the student's view of the interpolation; lambda_dis times it added; the center moved once, by
    the teacher's global views (and the mixed logits when asked)."""
    torch.manual_seed(0)
    from gensis.ssl.dino import DisentangleViews

    dino = _tiny_dino(warmup_teacher_temp=0.02, teacher_temp=0.06, warmup_teacher_temp_epochs=4, student_temp=0.2)
    dino.lambda_dis, dino.dis_update_center = 0.7, dis_update_center
    with torch.no_grad():
        for p in dino.teacher.parameters():  # a teacher that differs from the student
            p.add_(0.05 * torch.randn_like(p))
    dino.criterion.center.copy_(torch.randn(1, 32))
    dino.eval()
    views = [torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), torch.randn(4, 3, 4, 4)]
    dis = DisentangleViews(
        torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), torch.tensor([0.2, 0.5, 0.9, 1.0]), torch.tensor([0, 1, 1, 0])
    )
    weights = torch.tensor([0.5, 1.5, 1.0, 1.0])
    c = dino.criterion.center.clone()
    with torch.no_grad():
        t = [dino.teacher.head(dino.teacher.backbone(v)) for v in views[:2]]
        t_partner = dino.teacher.head(dino.teacher.backbone(dis.partner))
        s = [dino.student.head(dino.student.backbone(v)) for v in [*views, dis.interpolated]]
        emb = dino.student.backbone(views[0])
    tau_t = 0.02 + 0.04 * 2 / 3  # np.linspace(0.02, 0.06, 4)[2]
    q = [torch.softmax((ti - c) / tau_t, dim=-1) for ti in t]
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2)]
    dino_loss = sum((_ce(q[i], s[v], 0.2) * weights).mean() for i, v in pairs) / 4
    real = torch.stack([t[slot][b] for b, slot in enumerate(dis.real_slot.tolist())])
    mixed = dis.alpha.view(-1, 1) * real + (1 - dis.alpha.view(-1, 1)) * t_partner
    q_dis = torch.softmax((mixed - c) / tau_t, dim=-1)
    dis_loss = _ce(q_dis, s[3], 0.2).mean()

    loss, got_emb = dino(views, 2, dis, weights)
    assert loss.item() == pytest.approx((dino_loss + 0.7 * dis_loss).item(), rel=1e-5)
    assert dino.loss_parts["loss_dino"].item() == pytest.approx(dino_loss.item(), rel=1e-5)
    assert dino.loss_parts["loss_dis"].item() == pytest.approx(dis_loss.item(), rel=1e-5)
    floor = -torch.special.xlogy(q_dis, q_dis).sum(dim=-1).mean()  # 0 log 0 = 0
    assert dino.loss_parts["loss_dis_floor"].item() == pytest.approx(floor.item(), rel=1e-5)
    assert torch.allclose(got_emb, emb, atol=1e-5)
    seen = torch.cat(t + ([mixed] if dis_update_center else []))
    assert torch.allclose(dino.criterion.center, 0.9 * c + 0.1 * seen.mean(dim=0, keepdim=True), atol=1e-5)


def test_dino_forward_without_the_disentanglement_task() -> None:
    """lambda_dis = 0 ignores a disentanglement batch (no term logged, the student sees only the
    views); epoch 0 by default (the warm-up's first teacher temperature)."""
    torch.manual_seed(1)
    from gensis.ssl.dino import DisentangleViews

    dino = _tiny_dino(warmup_teacher_temp=0.02, teacher_temp=0.06, warmup_teacher_temp_epochs=4).eval()
    views = [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)]
    dis = DisentangleViews(torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.full((2,), 0.5), torch.zeros(2))
    c = dino.criterion.center.clone()
    with torch.no_grad():
        t = [dino.teacher.head(dino.teacher.backbone(v)) for v in views]
        s = [dino.student.head(dino.student.backbone(v)) for v in views]
    q = [torch.softmax((ti - c) / 0.02, dim=-1) for ti in t]
    expected = (_ce(q[0], s[1], 0.1).mean() + _ce(q[1], s[0], 0.1).mean()) / 2
    loss, _ = dino(views, dis=dis)
    assert set(dino.loss_parts) == {"loss_dino"}
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_dino_loss_defaults_are_the_configs_and_it_needs_a_pair_of_views() -> None:
    """DINOLoss built without arguments is the loss DINOConfig describes, gathering the center over
    ranks; one teacher view against one other student view is one term; no pair at all is refused."""
    from gensis.config.schema import DINOConfig

    cfg, loss = DINOConfig(), DINOLoss(8)
    assert (loss.warmup_teacher_temp, loss.teacher_temp_final) == (cfg.warmup_teacher_temp, cfg.teacher_temp)
    assert loss.warmup_teacher_temp_epochs == cfg.warmup_teacher_temp_epochs
    assert (loss.student_temp, loss.center_momentum) == (cfg.student_temp, cfg.center_momentum)
    assert loss.gather_distributed is True
    t, s = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    one = DINOLoss(2, warmup_teacher_temp_epochs=0, teacher_temp=0.5, student_temp=1.0)
    q = torch.softmax(torch.tensor([2.0, 0.0]), dim=0)  # (t - 0) / 0.5
    expected = -(q * torch.log_softmax(torch.tensor([0.0, 2.0]), dim=0)).sum()
    assert one([t], [t, s], 0).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError) as refused:
        one([t], [t], 0)
    assert str(refused.value) == "DINO loss needs at least two views"
