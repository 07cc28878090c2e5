"""The order of the two sources, pinned from SLERP to the disentanglement target.

The convention of docs/stage2.md: alpha is the share of the FIRST image,
``SLERP(e1, e2, a) = sin(a W)/sin W e1 + sin((1-a) W)/sin W e2``, and the student, given
``G(SLERP(e_i, e_j, a))``, is trained on ``softmax((a t_i + (1-a) t_j - c) / tau)``. A swap of
source and partner, of alpha and 1 - alpha, or of the two teacher outputs anywhere between
``generate`` and the loss would still give a valid-looking bank and a finite loss; these tests
use alpha in [0.85, 0.95], far from 0.5, so that every such swap changes what is checked.

The generator's sampler is replaced by a fixed random projection of its condition into pixels,
so each stored image says which condition it was made from. Everything else (the bank, its
reader, the pair sampler, the stage-3 loop, the DINO model) is the real code.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from _synthetic import tiny_generator

import gensis
from gensis.bank import ViewBank
from gensis.data import load_images
from gensis.eval.features import encoder_embeddings
from gensis.runtime.checkpoint import load_encoder

ALPHA = (0.85, 0.95)
RES = 8


def readme_slerp(e1: torch.Tensor, e2: torch.Tensor, a: float) -> torch.Tensor:
    """docs/stage2.md's formula, written out (not gensis' implementation)."""
    e1, e2 = F.normalize(e1.double(), dim=-1), F.normalize(e2.double(), dim=-1)
    w = math.acos(float((e1 * e2).sum().clamp(-1, 1)))
    return (math.sin(a * w) * e1 + math.sin((1 - a) * w) * e2) / math.sin(w)


CENTER: list[torch.Tensor] = []  # the mean unit embedding of the data, set by the fixture


def condition_to_pixels(cond: torch.Tensor) -> torch.Tensor:
    """The stand-in sampler: uint8 (B, 3, R, R), a fixed smooth function of the condition.

    Untrained encoders give every image nearly the same direction, so the projection looks at
    the condition's offset from the data's mean direction, scaled to fill the grey levels."""
    proj = torch.randn(cond.shape[-1], 3 * RES * RES, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x = (F.normalize(cond.double(), dim=-1) - CENTER[0]) @ proj / CENTER[1]
    return (torch.sigmoid(x) * 255).round().to(torch.uint8).view(-1, 3, RES, RES)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("order")
    enc_path, data_path, gen = tiny_generator(root)
    emb = encoder_embeddings(load_encoder(enc_path, "cpu"), load_images(str(data_path), RES, cache_dir=None))
    images = load_images(str(data_path), RES, cache_dir=None).batch(torch.arange(12))
    unit = F.normalize(emb.double(), dim=-1)
    CENTER[:] = [unit.mean(0), (unit - unit.mean(0)).norm(dim=-1).mean()]
    return root, data_path, gen, emb, images


@pytest.fixture
def stand_in_sampler(monkeypatch):
    monkeypatch.setattr(
        "gensis.generator.synthesizer.Synthesizer.images", lambda self, cond, **kw: condition_to_pixels(cond)
    )


def _far(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a.int() - b.int()).abs().max())


@pytest.fixture
def bank(setting, stand_in_sampler, tmp_path):
    root, data_path, gen, emb, images = setting
    out = tmp_path / "bank"
    gensis.generate(
        {
            "generator": str(gen),
            "data_path": str(data_path),
            "out": str(out),
            "views_per_image": 1,
            "interpolations_per_image": 1,
            "alpha_range": list(ALPHA),
            "steps": 2,
            "progress": False,
            "cache_dir": None,
        }
    )
    return out


def test_the_bank_stores_slerp_of_source_and_partner_with_the_source_share(setting, bank) -> None:
    *_, emb, images = setting
    store = ViewBank(bank)
    for i in range(12):
        img, partner, alpha = store.interpolations_of(i)
        j, a = int(partner), float(alpha)
        assert j != i and ALPHA[0] <= a <= ALPHA[1]
        readme = condition_to_pixels(readme_slerp(emb[i], emb[j], a)[None])
        # within one grey level of the formula; the swapped pair or 1 - alpha is far from it
        assert _far(img, readme) <= 1, i
        assert _far(img, condition_to_pixels(readme_slerp(emb[j], emb[i], a)[None])) > 20, i
        assert _far(store.views_of(i), condition_to_pixels(emb[i][None])) <= 1, i


def test_the_student_is_trained_on_the_alpha_mix_of_source_and_partner(setting, bank, monkeypatch, tmp_path) -> None:
    """One real stage-3 step: every input of the disentanglement task and its target, by hand."""
    root, data_path, gen, emb, images = setting
    seen: dict = {}
    from gensis.ssl.dino import DINO
    from gensis.ssl.losses.disentangle_loss import DisentanglementLoss
    from gensis.train.gen_views import PairSampler

    sample, forward, target = PairSampler.__call__, DINO.forward, DisentanglementLoss.target

    def record_sample(self, imgs, indices, generator):
        out = sample(self, imgs, indices, generator)
        seen.setdefault("indices", indices.clone())
        seen.setdefault("views", out)
        return out

    def record_forward(self, views, epoch=0, dis=None, weights=None):
        seen.setdefault("teacher", copy.deepcopy(self.teacher))
        return forward(self, views, epoch, dis, weights)

    def record_target(self, t1, t2, alpha, center, teacher_temp):
        q = target(self, t1, t2, alpha, center, teacher_temp)
        seen.setdefault("target", (t1.clone(), t2.clone(), alpha.clone(), center.clone(), teacher_temp, q.clone()))
        return q

    monkeypatch.setattr(PairSampler, "__call__", record_sample)
    monkeypatch.setattr(DINO, "forward", record_forward)
    monkeypatch.setattr(DisentanglementLoss, "target", record_target)
    # no BatchNorm anywhere, so each image's teacher output does not depend on its batch
    gensis.pretrain(
        {
            "preset": "digits",
            "data.path": str(data_path),
            "data.resolution": RES,
            "data.cache_dir": None,
            "model.backbone": "vit_tiny_patch16_224",
            "model.backbone_kwargs.patch_size": 4,
            "model.cifar_stem": False,
            "dino.out_dim": 32,
            "dino.hidden_dim": 32,
            "dino.bottleneck_dim": 16,
            "dino.head_batch_norm": False,
            "train.batch_size": 12,
            "train.epochs": 1,
            "train.knn_every": 0,
            "train.progress": False,
            "gen.bank": str(bank),
            "gen.p_gen": 1.0,
            "gen.lambda_dis": 1.0,
            # the identity as augmentation: each view is its image / 255
            "augment.global_crop_size": RES,
            "augment.global_crop_scale": [1.0, 1.0],
            "augment.n_local_crops": 0,
            "augment.hflip_p": 0.0,
            "augment.color_jitter_p": 0.0,
            "augment.grayscale_p": 0.0,
            "augment.blur_p": [0.0, 0.0, 0.0],
            "augment.solarize_p": 0.0,
            "augment.mean": [0.0, 0.0, 0.0],
            "augment.std": [1.0, 1.0, 1.0],
            "out": str(tmp_path / "run"),
        }
    )

    src, pairs = seen["indices"], seen["views"]
    store = ViewBank(bank)
    recorded = [store.interpolations_of(int(i)) for i in src]
    partner = torch.tensor([int(p) for _, p, _ in recorded])
    alpha = torch.tensor([float(a) for _, _, a in recorded])
    as_view = lambda x: x.float() / 255  # noqa: E731
    dis = pairs.dis
    assert torch.equal(dis.partner, as_view(images[partner]))  # the teacher's second input is the partner
    assert torch.equal(dis.interpolated, as_view(torch.cat([img for img, _, _ in recorded])))
    assert torch.allclose(dis.alpha, alpha)
    # p_gen = 1: one global slot is the real source image, the other its generated view
    real_in_first = (pairs.views[0] == as_view(images[src])).flatten(1).all(1)
    real_in_second = (pairs.views[1] == as_view(images[src])).flatten(1).all(1)
    assert bool((real_in_first ^ real_in_second).all()) and real_in_first.any() and real_in_second.any()

    t1, t2, a, center, tau, q = seen["target"]
    teacher = seen["teacher"]
    with torch.no_grad():
        (own,), _ = teacher([as_view(images[src])])
        (other,), _ = teacher([as_view(images[partner])])
    assert torch.allclose(t1, own, atol=1e-5) and torch.allclose(t2, other, atol=1e-5)
    assert torch.allclose(a, alpha)
    by_hand = torch.softmax((alpha[:, None] * own + (1 - alpha[:, None]) * other - center) / tau, dim=-1)
    swapped = torch.softmax(((1 - alpha[:, None]) * own + alpha[:, None] * other - center) / tau, dim=-1)
    assert torch.allclose(q, by_hand, rtol=0, atol=1e-6)
    # the teacher tells the two sources apart, so a swap anywhere would move the target by more
    # than 100 times the tolerance above
    assert float((own - other).abs().amax(-1).min()) > 1e-2
    assert float((by_hand - swapped).abs().amax(-1).min()) > 1e-4


def test_show_goes_from_the_left_source_to_the_right_one(setting, stand_in_sampler, monkeypatch, tmp_path) -> None:
    root, data_path, gen, emb, images = setting
    grids = {}
    monkeypatch.setattr(
        "gensis.generator.show.save_view_grid", lambda path, rows, tile: grids.__setitem__(path.name, rows)
    )
    gensis.show(
        {
            "generator": str(gen),
            "data_path": str(data_path),
            "out": str(tmp_path / "show"),
            "rows": 3,
            "views": 1,
            "alphas": 5,
            "steps": 2,
            "cache_dir": None,
        }
    )
    which = lambda img: next(k for k in range(12) if torch.equal(images[k], img))  # noqa: E731
    rows = grids["interpolations.png"]
    assert len(rows) == 3
    for (left,), mixed, (right,) in rows:
        i, j = which(left), which(right)
        assert i != j
        for a, img in zip((1.0, 0.75, 0.5, 0.25, 0.0), mixed, strict=True):
            cond = emb[i] if a == 1 else emb[j] if a == 0 else readme_slerp(emb[i], emb[j], a)
            assert _far(img, condition_to_pixels(cond[None])[0]) <= 1, (i, j, a)
        assert _far(mixed[1], condition_to_pixels(readme_slerp(emb[j], emb[i], 0.75)[None])[0]) > 20
