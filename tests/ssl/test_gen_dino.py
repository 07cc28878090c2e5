"""Stage 3: Gen-DINO pairs, the disentanglement loss and pretraining from a view bank."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _synthetic import write_bank, write_npz
from safetensors import safe_open

import gensis
from gensis.augment import MultiCropAugment
from gensis.config.schema import AugmentConfig, DINOConfig, GenViewsConfig, ModelConfig
from gensis.errors import ConfigError
from gensis.models.backbones import build_encoder
from gensis.ssl.dino import DINO, DisentangleViews
from gensis.ssl.losses.dino_loss import DINOLoss
from gensis.ssl.losses.disentangle_loss import DisentanglementLoss, target_entropy
from gensis.train.gen_views import PairSampler
from gensis.train.view_sources import BankViews, Interpolations

PLAIN = AugmentConfig(
    global_crop_size=8,
    local_crop_size=4,
    n_local_crops=2,
    global_crop_scale=(1.0, 1.0),
    color_jitter_p=0.0,
    grayscale_p=0.0,
    blur_p=(0.0, 0.0, 0.0),
    solarize_p=0.0,
    hflip_p=0.0,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
)


# ------------------------------------------------------------------ the loss
def test_disentanglement_target_with_alpha_one_is_the_dino_target() -> None:
    torch.manual_seed(0)
    t1, t2, center = torch.randn(5, 16), torch.randn(5, 16), torch.randn(1, 16)
    dino = DINOLoss(16, warmup_teacher_temp_epochs=0, teacher_temp=0.07)
    dino.center.copy_(center)
    target = DisentanglementLoss().target(t1, t2, torch.ones(5), center, 0.07)
    assert torch.allclose(target, dino.teacher_probs(t1, epoch=0), atol=1e-6)


def test_disentanglement_loss_against_a_hand_computed_example() -> None:
    t1 = torch.tensor([[2.0, 0.0, 0.0]])
    t2 = torch.tensor([[0.0, 4.0, 0.0]])
    center = torch.tensor([[0.5, 0.5, 0.5]])
    s = torch.tensor([[1.0, 0.0, -1.0]])
    # mixed logits with alpha 0.25: [0.5, 3.0, 0.0]; minus center: [0, 2.5, -0.5]; / tau_t = 0.5
    q = torch.softmax(torch.tensor([0.0, 5.0, -1.0]), dim=0)
    log_p = torch.log_softmax(torch.tensor([10.0, 0.0, -10.0]), dim=0)  # s / tau_s = 0.1
    expected = -(q * log_p).sum()
    got = DisentanglementLoss(student_temp=0.1)(t1, t2, torch.tensor([0.25]), [s], center, 0.5)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_target_entropy_is_the_floor_of_the_loss() -> None:
    torch.manual_seed(2)
    t1, t2, center = torch.randn(6, 10), torch.randn(6, 10), torch.zeros(1, 10)
    loss = DisentanglementLoss(student_temp=0.1)
    q = loss.target(t1, t2, torch.full((6,), 0.4), center, 0.1)
    exact = [torch.log(q) * 0.1]  # a student that outputs the target itself reaches the floor
    assert loss(t1, t2, torch.full((6,), 0.4), exact, center, 0.1).item() == pytest.approx(
        target_entropy(q).item(), rel=1e-5
    )
    uniform = torch.full((6, 10), 0.1)
    assert target_entropy(uniform).item() == pytest.approx(math.log(10), rel=1e-6)


def _tiny_dino(**kw) -> DINO:
    torch.manual_seed(0)
    cfg = DINOConfig(out_dim=32, hidden_dim=32, bottleneck_dim=16, warmup_teacher_temp_epochs=0)
    return DINO(build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8), cfg, **kw)


def test_center_ignores_mixed_logits_unless_asked() -> None:
    torch.manual_seed(1)
    views = [torch.randn(4, 3, 8, 8) for _ in range(2)]
    dis = DisentangleViews(
        torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), torch.full((4,), 0.5), torch.tensor([0, 1, 0, 1])
    )
    plain = _tiny_dino()
    plain(views, 0)
    gen = _tiny_dino(lambda_dis=1.0)
    loss, _ = gen(views, 0, dis)
    assert torch.equal(plain.criterion.center, gen.criterion.center)
    assert set(gen.loss_parts) == {"loss_dino", "loss_dis", "loss_dis_floor"}
    assert loss.item() == pytest.approx((gen.loss_parts["loss_dino"] + gen.loss_parts["loss_dis"]).item(), rel=1e-6)
    # the floor (the target's entropy) lies between 0 and the loss itself
    assert 0 <= gen.loss_parts["loss_dis_floor"].item() <= gen.loss_parts["loss_dis"].item()
    mixed = _tiny_dino(lambda_dis=1.0, dis_update_center=True)
    mixed(views, 0, dis)
    assert not torch.equal(plain.criterion.center, mixed.criterion.center)


# ------------------------------------------------------------------ the pair sampler
class _WhiteViews:
    """Every generated view is white, every interpolation grey; real images are black."""

    has_interpolations = True

    def __init__(self) -> None:
        self.asked: list[int] = []

    def views(self, indices, generator):
        self.asked += indices.tolist()
        return torch.full((len(indices), 3, 8, 8), 255, dtype=torch.uint8)

    def interpolations(self, indices, generator):
        n = len(indices)
        return Interpolations(
            torch.full((n, 3, 8, 8), 128, dtype=torch.uint8), (indices + 1) % 64, torch.full((n,), 0.4)
        )


def _sampler(p_gen: float, **kw) -> tuple[PairSampler, _WhiteViews]:
    source = _WhiteViews()
    cfg = GenViewsConfig(bank="unused", p_gen=p_gen, **kw)
    fetch = lambda idx: torch.zeros(len(idx), 3, 8, 8, dtype=torch.uint8)  # noqa: E731
    return PairSampler(cfg, source, MultiCropAugment(PLAIN), fetch), source


@pytest.mark.parametrize("p_gen", [0.0, 0.3, 1.0])
def test_pair_sampler_honours_p_gen(p_gen: float) -> None:
    sampler, source = _sampler(p_gen, lambda_dis=0.0)
    images = torch.zeros(64, 3, 8, 8, dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    fractions, slots = [], []
    for _ in range(20):
        out = sampler(images, torch.arange(64), g)
        bright = [v.mean(dim=(1, 2, 3)) > 0.5 for v in out.views[:2]]
        # exactly the generated pairs hold one (and only one) generated global view
        assert torch.equal(bright[0] | bright[1], out.generated)
        assert not (bright[0] & bright[1]).any()
        assert all((v == 0).all() for v in out.views[2:])  # locals from the real image by default
        fractions.append(out.generated.float().mean().item())
        slots.append(bright[0][out.generated].float())
        assert out.dis is None
    mean = sum(fractions) / len(fractions)
    assert mean == pytest.approx(p_gen, abs=0.04)
    if p_gen == 1.0:  # the generated image goes to either global slot
        assert torch.cat(slots).mean().item() == pytest.approx(0.5, abs=0.08)
    assert len(source.asked) == round(mean * 64 * 20)


def test_local_crops_from_generated_images_and_disentanglement_inputs() -> None:
    sampler, _ = _sampler(1.0, local_source="generated", lambda_dis=0.5)
    out = sampler(torch.zeros(16, 3, 8, 8, dtype=torch.uint8), torch.arange(16), torch.Generator().manual_seed(0))
    assert all((v == 1).all() for v in out.views[2:])
    assert out.dis is not None
    assert torch.allclose(out.dis.interpolated, torch.full_like(out.dis.interpolated, 128 / 255))
    assert (out.dis.partner == 0).all() and torch.allclose(out.dis.alpha, torch.full((16,), 0.4))
    white_first = out.views[0].mean(dim=(1, 2, 3)) > 0.5
    assert torch.equal(out.dis.real_slot.bool(), white_first)  # the teacher's I1 is the real slot


def test_same_seed_same_pairs() -> None:
    a, _ = _sampler(0.5)
    b, _ = _sampler(0.5)
    images = torch.randint(0, 255, (8, 3, 8, 8), dtype=torch.uint8)
    va = a(images, torch.arange(8), torch.Generator().manual_seed(3))
    vb = b(images, torch.arange(8), torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(va.views, vb.views, strict=True))


# ------------------------------------------------------------------ bank -> Gen-DINO run


def test_bank_views_in_memory_match_the_bank(tmp_path) -> None:
    write_bank(tmp_path / "bank", 90, 8, k=3, m=2)
    views = BankViews(str(tmp_path / "bank"), 90, 8, views_per_image=2)
    g = torch.Generator().manual_seed(0)
    idx = torch.tensor([0, 41, 89, 41])
    got = views.views(idx, g)[:, 0, 0, 0].long()
    assert all(int(v) in {(i + 7 * k) % 256 for k in range(2)} for i, v in zip(idx.tolist(), got.tolist(), strict=True))
    interp = views.interpolations(idx, g)
    assert torch.equal(interp.partner, (idx + 1) % 90) and torch.allclose(interp.alpha, torch.full((4,), 0.6))
    with pytest.raises(ConfigError, match="generated from 90 images"):
        BankViews(str(tmp_path / "bank"), 91, 8)
    with pytest.raises(ConfigError, match="8-px"):
        BankViews(str(tmp_path / "bank"), 90, 16)


TINY = {
    "preset": "digits",
    "data.cache_dir": None,
    "data.resolution": 16,
    "model.backbone": "resnet10t",
    "dino.out_dim": 64,
    "dino.hidden_dim": 64,
    "dino.bottleneck_dim": 32,
    "train.batch_size": 32,
    "train.epochs": 2,
    "train.log_every": 1,
    "train.knn_every": 0,
    "train.progress": False,
}


def test_gen_dino_pretrain_from_a_bank_resumes_exactly(tmp_path) -> None:
    data = write_npz(tmp_path / "train.npz", 96, size=16)
    write_bank(tmp_path / "bank", 96, 16)
    gen = {**TINY, "data.path": str(data), "gen.bank": str(tmp_path / "bank"), "gen.lambda_dis": 0.5}
    gen["model.cifar_stem"] = False  # exactness does not depend on the feature maps' size; 3x faster
    full = gensis.pretrain({**gen, "out": str(tmp_path / "full")})
    records = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert all("loss_dis" in r and "loss_dino" in r and 0 <= r["generated_fraction"] <= 1 for r in records)
    last = records[-1]
    assert last["loss"] == pytest.approx(last["loss_dino"] + 0.5 * last["loss_dis"], rel=1e-4)
    with safe_open(str(full.encoder_path), framework="pt") as f:
        assert f.metadata()["method"] == "gen-dino"

    gensis.pretrain({**gen, "out": str(tmp_path / "cut"), "train.max_steps": 4})
    resumed = gensis.pretrain({**gen, "out": str(tmp_path / "cut")}, resume=True)
    assert resumed.steps == full.steps == 6
    from safetensors.torch import load_file

    a, b = load_file(str(full.encoder_path)), load_file(str(resumed.encoder_path))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gen_dino_rejects_a_bank_of_other_images(tmp_path) -> None:
    data = write_npz(tmp_path / "train.npz", 64, size=16)
    write_bank(tmp_path / "bank", 96, 16)
    with pytest.raises(ConfigError, match="generated from 96 images"):
        gensis.pretrain(
            {**TINY, "data.path": str(data), "gen.bank": str(tmp_path / "bank"), "out": str(tmp_path / "r")}
        )
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="not both"):
        gensis.pretrain({**TINY, "gen.bank": "a", "gen.generator": "b"})
