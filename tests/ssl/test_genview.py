"""GenView building blocks: contrastive losses, quality weights, PCA foreground, adaptive noise,
SimCLR / MoCo v3 training steps, and the distributed gather of negatives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gensis.config.schema import ModelConfig
from gensis.foreground import ForegroundPCA, center_border_regions, spatial_features
from gensis.generator.adaptive_noise import noise_bin, noise_level_for_ratio, perturb_embedding
from gensis.models.backbones import build_encoder
from gensis.ssl.losses import (
    InfoNCELoss,
    NTXentLoss,
    foreground_background_pool,
    masked_pool,
    quality_scores,
    quality_weights,
    weighted_mean,
)
from gensis.ssl.moco_v3 import MoCoV3
from gensis.ssl.simclr import SimCLR

# ---------------------------------------------------------------- NT-Xent / InfoNCE


def _ntxent_reference(z0: np.ndarray, z1: np.ndarray, t: float) -> np.ndarray:
    """Per-pair NT-Xent by the paper's definition, one anchor at a time (float64)."""
    z = np.concatenate([z0, z1])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n, b = len(z), len(z0)
    per_anchor = np.zeros(n)
    for i in range(n):
        pos = (i + b) % n
        denom = sum(math.exp(z[i] @ z[k] / t) for k in range(n) if k != i)
        per_anchor[i] = -math.log(math.exp(z[i] @ z[pos] / t) / denom)
    return 0.5 * (per_anchor[:b] + per_anchor[b:])


def test_ntxent_matches_hand_written_reference() -> None:
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    loss = NTXentLoss(temperature=0.3)
    ref = _ntxent_reference(z0.double().numpy(), z1.double().numpy(), 0.3)
    per_pair = loss(z0, z1, reduction="none")
    assert per_pair.shape == (6,)
    np.testing.assert_allclose(per_pair.numpy(), ref, rtol=1e-5)
    assert loss(z0, z1).item() == pytest.approx(ref.mean(), rel=1e-5)


@pytest.mark.bench  # needs lightly, the [bench] extra: pytest -m bench
@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_ntxent_mean_matches_lightly(temperature: float) -> None:
    from lightly import loss as lightly_loss

    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    ours = NTXentLoss(temperature=temperature)(z0, z1)
    theirs = lightly_loss.NTXentLoss(temperature=temperature)(z0, z1)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_infonce_known_answer() -> None:
    # q = k = two orthonormal rows, tau = 1: logits [[1, 0], [0, 1]], each CE = log(1 + 1/e),
    # scaled by 2 tau = 2.
    q = torch.eye(2)
    per = InfoNCELoss(temperature=1.0)(q, q.clone(), reduction="none")
    assert torch.allclose(per, torch.full((2,), 2 * math.log(1 + math.exp(-1))), atol=1e-6)
    # tau = 0.5, key of row 0 opposite to its query: logits row 0 = [-2, 0] -> CE = log(1 + e^2).
    k = torch.tensor([[-1.0, 0.0], [0.0, 1.0]])
    per = InfoNCELoss(temperature=0.5)(q, k, reduction="none")
    assert per[0].item() == pytest.approx(1.0 * math.log(1 + math.exp(2)), rel=1e-6)
    assert per[1].item() == pytest.approx(1.0 * math.log(1 + math.exp(-2)), rel=1e-6)


def test_infonce_keys_get_no_gradient() -> None:
    q = torch.randn(4, 8, requires_grad=True)
    k = torch.randn(4, 8, requires_grad=True)
    InfoNCELoss()(q, k).backward()
    assert q.grad is not None and k.grad is None


# ---------------------------------------------------------------- quality weights


def test_quality_weights_mean_one_detached_and_ranked() -> None:
    g = torch.Generator().manual_seed(2)
    fg1, bg1 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    fg2, bg2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    fg2[3] = fg1[3]  # pair 3: same foreground in both views
    bg2[3] = -bg1[3]  # and different backgrounds: the best pair
    fg1.requires_grad_(True)
    w = quality_weights(fg1, fg2, bg1, bg2, gamma=2.0)
    assert not w.requires_grad and w.grad_fn is None
    assert w.mean().item() == pytest.approx(1.0, abs=1e-6)
    assert int(w.argmax()) == 3
    q = quality_scores(fg1, fg2, bg1, bg2)
    assert q[3].item() == pytest.approx(2.0, abs=1e-6)
    assert torch.allclose(quality_weights(fg1, fg2, bg1, bg2, gamma=0.0), torch.ones(5))


def test_weighted_mean() -> None:
    loss = torch.tensor([1.0, 3.0])
    assert weighted_mean(loss).item() == 2.0
    assert weighted_mean(loss, torch.tensor([0.5, 1.5])).item() == pytest.approx(2.5)
    with pytest.raises(ValueError):
        weighted_mean(loss, torch.ones(3))


def test_masked_pool_empty_full_and_resized_masks() -> None:
    fmap = torch.randn(2, 3, 4, 4)
    empty = masked_pool(fmap, torch.zeros(2, 1, 4, 4))
    assert torch.isfinite(empty).all() and empty.abs().max() < 1e-4
    full = masked_pool(fmap, torch.ones(2, 1, 16, 16))  # larger mask, resized to 4x4
    assert torch.allclose(full, fmap.mean(dim=(2, 3)), atol=1e-5)
    left = torch.zeros(2, 1, 8, 8)
    left[..., :4] = 1.0  # left half at 8x8 -> left two columns at 4x4
    assert torch.allclose(masked_pool(fmap, left), fmap[..., :2].mean(dim=(2, 3)), atol=1e-5)


# ---------------------------------------------------------------- PCA foreground


def _square_features(sides: list[int], size: int = 20, c: int = 16, flip: bool = False):
    """Features (N, C, size, size): a + noise in a centered square of each side, b + noise
    elsewhere; also the true masks (N, 1, size, size)."""
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(c, generator=g) * 2, torch.randn(c, generator=g) * 2
    if flip:
        a, b = b, a
    feats = torch.empty(len(sides), c, size, size)
    truth = torch.zeros(len(sides), 1, size, size, dtype=torch.bool)
    for i, s in enumerate(sides):
        lo = (size - s) // 2
        truth[i, 0, lo : lo + s, lo : lo + s] = True
    m = truth.float()
    feats = m * a.view(1, c, 1, 1) + (1 - m) * b.view(1, c, 1, 1)
    return feats + 0.1 * torch.randn(feats.shape, generator=g), truth


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("flip", [False, True])
def test_pca_recovers_square_foreground_with_automatic_sign(flip: bool) -> None:
    # Foreground shares 100/400, 144/400, 169/400 -> 34.4 % overall, just under 1 - 0.65.
    feats, truth = _square_features([10, 12, 13], flip=flip)
    pca = ForegroundPCA(quantile=0.65).fit(feats)
    masks = pca.masks(feats)
    for i in range(3):
        assert _iou(masks[i], truth[i]) > 0.9
    # One data-set threshold: the ratio follows each image's own foreground.
    true_ratio = truth.float().mean(dim=(1, 2, 3))
    assert torch.allclose(pca.foreground_ratio(feats), true_ratio, atol=0.03)
    soft = pca.maps(feats)
    assert soft.min() >= 0 and soft.max() <= 1
    assert soft[truth].mean() > 0.8 and soft[~truth].mean() < 0.2
    # Override with the opposite sign: the background becomes "foreground".
    flipped = ForegroundPCA(quantile=0.65, sign=-pca.sign).fit(feats)
    assert flipped.sign == -pca.sign
    assert _iou(flipped.masks(feats)[1], truth[1]) < 0.1


def test_pca_per_image_quantile_masks_and_round_trip(tmp_path) -> None:
    feats, truth = _square_features([12, 12])
    pca = ForegroundPCA().fit(feats)
    per_image = pca.masks(feats, per_image_quantile=0.64)  # 144 / 400 = 0.36 foreground
    assert _iou(per_image[0], truth[0]) > 0.9
    path = tmp_path / "fg_pca.safetensors"
    pca.save(path)
    loaded = ForegroundPCA.load(path)
    assert loaded.sign == pca.sign and loaded.threshold == pytest.approx(pca.threshold)
    assert torch.equal(loaded.masks(feats), pca.masks(feats))


def test_center_border_regions_small_map() -> None:
    center, border = center_border_regions(4, 4)
    assert center.sum() == 4 and center[1:3, 1:3].all()
    assert border.sum() == 12 and not (center & border).any()


def test_spatial_features_cnn_and_vit_grid() -> None:
    cnn = build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 16)
    cnn.train()
    out = spatial_features(cnn, torch.randn(2, 3, 16, 16))
    assert out.shape[:2] == (2, cnn.embed_dim) and out.dim() == 4
    assert cnn.training  # mode restored
    vit_cfg = ModelConfig(backbone="vit_tiny_patch16_224", backbone_kwargs={"patch_size": 8, "depth": 1})
    vit = build_encoder(vit_cfg, 32)
    out = spatial_features(vit, torch.randn(2, 3, 48, 32))  # non-square: 6 x 4 patches
    assert out.shape == (2, vit.embed_dim, 6, 4)


def test_foreground_chain_on_an_encoder_gives_weights() -> None:
    # features -> PCA -> soft maps -> fg/bg pooling of both views -> quality weights.
    enc = build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 16)
    f1, f2 = (spatial_features(enc, v) for v in _views())
    pca = ForegroundPCA().fit(torch.cat([f1, f2]))
    (fg1, bg1), (fg2, bg2) = (foreground_background_pool(f, pca.maps(f)) for f in (f1, f2))
    w = quality_weights(fg1, fg2, bg1, bg2)
    assert w.shape == (4,) and torch.isfinite(w).all()
    assert ((pca.foreground_ratio(f1) >= 0) & (pca.foreground_ratio(f1) <= 1)).all()


# ---------------------------------------------------------------- adaptive noise


def test_noise_bins_right_inclusive_and_clipped() -> None:
    r = torch.tensor([0.0, 0.2, 0.2001, 0.4, 0.59, 1.0, -0.3, 1.7])
    assert noise_bin(r).tolist() == [0, 0, 1, 1, 2, 4, 0, 4]
    levels = noise_level_for_ratio(r)
    assert torch.allclose(levels, torch.tensor([0.0, 0.0, 0.1, 0.1, 0.2, 0.4, 0.0, 0.4]))
    with pytest.raises(ValueError):
        noise_level_for_ratio(r, edges=(0.5, 1.0), levels=(0.0,))


def test_perturb_embedding_norm_identity_and_scale() -> None:
    g = torch.Generator().manual_seed(4)
    e = torch.randn(64, 512, generator=g) * 3
    assert torch.equal(perturb_embedding(e, 0.0), e)
    out = perturb_embedding(e, 0.4, generator=g)
    assert torch.allclose(out.norm(dim=-1), e.norm(dim=-1), rtol=1e-5)
    cos = torch.nn.functional.cosine_similarity(out, e, dim=-1)
    # Noise of relative norm 0.4, almost orthogonal in 512-D: cos ~ 1 / sqrt(1 + 0.16).
    assert cos.mean().item() == pytest.approx(1 / math.sqrt(1.16), abs=0.01)
    per_row = perturb_embedding(e[:2], torch.tensor([0.0, 0.3]), generator=g)
    assert torch.equal(per_row[0], e[0]) and not torch.equal(per_row[1], e[1])


# ---------------------------------------------------------------- methods


def _tiny_encoder():
    torch.manual_seed(0)
    return build_encoder(ModelConfig(backbone="resnet10t"), 16)


def _views(b: int = 4):
    g = torch.Generator().manual_seed(5)
    return [torch.randn(b, 3, 16, 16, generator=g) for _ in range(2)]


def _train_step(model, views):
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=0.1)
    loss, emb = model(views)
    assert torch.isfinite(loss) and emb.shape[0] == views[0].shape[0]
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, params, strict=True))


def _check_weights(model, views):
    plain, _ = model(views)
    ones, _ = model(views, weights=torch.ones(views[0].shape[0]))
    assert ones.item() == pytest.approx(plain.item(), rel=1e-6)
    skewed, _ = model(views, weights=torch.tensor([4.0, 0.0, 0.0, 0.0]))
    assert skewed.item() != pytest.approx(plain.item(), rel=1e-4)
    (unweighted,) = model.loss_parts.values()  # logged without the weights
    assert unweighted.item() == pytest.approx(plain.item(), rel=1e-6)


def test_simclr_training_step_and_weights() -> None:
    model = SimCLR(_tiny_encoder(), hidden_dim=32, out_dim=16)
    views = _views()
    _train_step(model, views)
    _check_weights(model, views)
    with pytest.raises(ValueError):
        model(views + views[:1])


def test_mocov3_training_step_weights_and_momentum() -> None:
    model = MoCoV3(_tiny_encoder(), hidden_dim=32, out_dim=16, predictor_hidden_dim=32)
    views = _views()
    momentum_before = [p.detach().clone() for p in model.momentum_projector.parameters()]
    _train_step(model, views)
    # Backprop does not touch the momentum network; the EMA moves it towards the online one.
    assert all(torch.equal(a, b) for a, b in zip(momentum_before, model.momentum_projector.parameters(), strict=True))
    model.update_momentum(0.5)
    for old, new, online in zip(
        momentum_before, model.momentum_projector.parameters(), model.projector.parameters(), strict=True
    ):
        assert torch.allclose(new, 0.5 * old + 0.5 * online.detach())
    _check_weights(model, views)


# ---------------------------------------------------------------- distributed gather


def _gloo_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        g = torch.Generator().manual_seed(6)
        z0, z1 = torch.randn(world * 3, 8, generator=g), torch.randn(world * 3, 8, generator=g)
        q, k = torch.randn(world * 3, 8, generator=g), torch.randn(world * 3, 8, generator=g)
        sl = slice(rank * 3, rank * 3 + 3)
        a0, a1 = z0[sl].clone().requires_grad_(True), z1[sl].clone().requires_grad_(True)
        per = NTXentLoss(temperature=0.2, gather_distributed=True)(a0, a1, reduction="none")
        per.mean().backward()
        ctr = InfoNCELoss(temperature=0.2)(q[sl], k[sl], reduction="none")
        torch.save({"per": per.detach(), "grad0": a0.grad, "ctr": ctr}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two fresh interpreters importing torch: 8-16 s on 2 shared cores
def test_ntxent_gather_two_processes_equals_single_process(tmp_path) -> None:
    world = 2
    mp.spawn(_gloo_worker, args=(world, str(tmp_path / "rdv"), str(tmp_path)), nprocs=world, join=True)
    g = torch.Generator().manual_seed(6)
    z0, z1 = torch.randn(world * 3, 8, generator=g), torch.randn(world * 3, 8, generator=g)
    q, k = torch.randn(world * 3, 8, generator=g), torch.randn(world * 3, 8, generator=g)
    z0.requires_grad_(True)
    full = NTXentLoss(temperature=0.2)(z0, z1, reduction="none")
    full.mean().backward()
    full_ctr = InfoNCELoss(temperature=0.2)(q, k, reduction="none")
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    assert torch.allclose(torch.cat([r["per"] for r in results]), full.detach(), atol=1e-6)
    assert torch.allclose(torch.cat([r["ctr"] for r in results]), full_ctr, atol=1e-6)
    # Each rank's gradient is that of the SUM of the rank losses; DDP's averaging over ranks
    # then gives the gradient of the global loss (the mean of the rank losses).
    grads = torch.cat([r["grad0"] for r in results])
    assert torch.allclose(grads, world * z0.grad, atol=1e-6)
