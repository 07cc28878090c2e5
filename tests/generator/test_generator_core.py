"""Stage-2 generator core: SLERP, conditioning, guidance, UNet, samplers, training loss."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from gensis.errors import ConfigError
from gensis.generator import (
    PRESETS,
    EmbeddingConditionedUNet,
    EmbeddingConditioner,
    guided,
    make_scheduler,
    sample,
    slerp,
    training_loss,
    unet_spec,
)

EMBED = PRESETS["tiny"].embed_dim


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny() -> EmbeddingConditionedUNet:
    torch.manual_seed(0)
    return EmbeddingConditionedUNet(PRESETS["tiny"]).eval()


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------- SLERP


def test_slerp_endpoints_and_midpoint() -> None:
    g = torch.Generator().manual_seed(0)
    e1, e2 = torch.randn(5, 7, generator=g) * 3, torch.randn(5, 7, generator=g)
    assert torch.allclose(slerp(e1, e2, 1.0), _unit(e1), atol=1e-6)
    assert torch.allclose(slerp(e1, e2, 0.0), _unit(e2), atol=1e-6)
    assert torch.allclose(slerp(e1, e2, 0.5), _unit(_unit(e1) + _unit(e2)), atol=1e-6)
    out = slerp(e1, e2, 0.3)
    assert torch.allclose(out.norm(dim=-1), torch.ones(5), atol=1e-6)


def test_slerp_hand_computed_2d() -> None:
    # W = pi/2, alpha = 1/3: sin(pi/6) e1 + sin(pi/3) e2 = (1/2, sqrt(3)/2).
    out = slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 1 / 3)
    assert torch.allclose(out, torch.tensor([0.5, math.sqrt(3) / 2]), atol=1e-6)
    assert out.shape == (2,)


def test_slerp_degenerate_angles() -> None:
    e = torch.tensor([[0.6, 0.8, 0.0]])
    same = slerp(e, e.clone(), 0.37)
    assert torch.isfinite(same).all() and torch.allclose(same, e, atol=1e-6)
    tiny_angle = slerp(e, e + torch.tensor([[0.0, 0.0, 1e-6]]), 0.5)
    assert torch.isfinite(tiny_angle).all() and torch.allclose(tiny_angle, e, atol=1e-5)
    opposite = slerp(e, -e, torch.tensor([0.0, 0.25, 0.5, 1.0]))
    assert torch.isfinite(opposite).all()
    assert torch.allclose(opposite.norm(dim=-1), torch.ones(4), atol=1e-6)
    assert torch.allclose(opposite[0], -e[0], atol=1e-6) and torch.allclose(opposite[3], e[0], atol=1e-6)
    # Halfway between antipodes: a unit vector orthogonal to both.
    assert abs(float(opposite[2] @ e[0])) < 1e-6


def test_slerp_batched_alpha_matches_per_row() -> None:
    g = torch.Generator().manual_seed(1)
    e1, e2 = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    alpha = torch.tensor([0.0, 0.2, 0.7, 1.0])
    out = slerp(e1, e2, alpha)
    for i in range(4):
        assert torch.allclose(out[i], slerp(e1[i], e2[i], float(alpha[i])), atol=1e-6)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), torch.tensor([0.5, 1.01])])
def test_slerp_alpha_out_of_range(alpha: float | torch.Tensor) -> None:
    with pytest.raises(ConfigError, match=r"alpha must lie in \[0, 1\]"):
        slerp(torch.ones(2, 3), torch.zeros(2, 3) + 0.5, alpha)


# ---------------------------------------------------------------- conditioning, guidance


def test_conditioner_dropout_rate_and_null_rows() -> None:
    torch.manual_seed(0)
    cond = EmbeddingConditioner(embed_dim=4, cond_dim=8, p_uncond=0.1).train()
    emb = torch.randn(10_000, 4)
    with torch.no_grad():
        out = cond(emb, generator=torch.Generator().manual_seed(0))
        null = cond.unconditional(1)
        dropped = (out == null).all(dim=-1)
        assert abs(dropped.float().mean().item() - 0.1) < 0.01
        # Dropped rows are the null projection bit for bit; kept rows are not.
        assert torch.equal(out[dropped], null.expand(int(dropped.sum()), -1))
        assert torch.equal(out[~dropped], cond(emb, drop=torch.zeros(10_000, dtype=torch.bool))[~dropped])
        cond.eval()
        assert not (cond(emb) == null).all(dim=-1).any()


def test_conditioner_explicit_drop_and_null_gradient() -> None:
    torch.manual_seed(0)
    cond = EmbeddingConditioner(embed_dim=4, cond_dim=8).eval()
    emb = torch.randn(3, 4)
    drop = torch.tensor([True, False, True])
    out = cond(emb, drop=drop)
    assert torch.equal(out[0], cond.unconditional(2)[1]) and torch.equal(out[2], out[0])
    out.sum().backward()
    assert cond.null_embedding.grad is not None and cond.null_embedding.grad.abs().sum() > 0
    cond.zero_grad(set_to_none=True)
    cond(emb, drop=torch.zeros(3, dtype=torch.bool)).sum().backward()
    assert cond.null_embedding.grad is None or cond.null_embedding.grad.abs().sum() == 0


def test_conditioner_wrong_dimension() -> None:
    cond = EmbeddingConditioner(embed_dim=16, cond_dim=8)
    with pytest.raises(ConfigError, match="embedding has dimension 5, the generator expects 16"):
        cond(torch.randn(2, 5))


def test_guided_endpoints() -> None:
    c, u = torch.randn(2, 3), torch.randn(2, 3)
    assert guided(c, u, 1.0) is c
    assert torch.equal(guided(c, u, 0.0), u)
    assert torch.allclose(guided(c, u, 3.0), u + 3.0 * (c - u))


# ---------------------------------------------------------------- UNet


def test_unet_shape_and_embedding_matters(tiny: EmbeddingConditionedUNet) -> None:
    assert tiny.conditioner.cond_dim == PRESETS["tiny"].time_embed_dim == 32 * 4
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    t = torch.tensor([10, 700])
    with torch.no_grad():
        a = tiny(x, t, torch.randn(2, EMBED, generator=g))
        b = tiny(x, t, torch.randn(2, EMBED, generator=g))
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert (a - b).abs().max() > 1e-4


def test_forward_cfg_matches_separate_calls(tiny: EmbeddingConditionedUNet) -> None:
    g = torch.Generator().manual_seed(1)
    x, emb = torch.randn(3, 3, 8, 8, generator=g), torch.randn(3, EMBED, generator=g)
    t = torch.tensor([5, 500, 999])
    keep, drop = torch.zeros(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool)
    with torch.no_grad():
        cond, uncond = tiny(x, t, emb, drop=keep), tiny(x, t, emb, drop=drop)
        assert torch.equal(tiny.forward_cfg(x, t, emb, 1.0), cond)
        assert torch.allclose(tiny.forward_cfg(x, t, emb, 0.0), uncond, atol=1e-5)
        manual = uncond + 2.5 * (cond - uncond)
        assert torch.allclose(tiny.forward_cfg(x, t, emb, 2.5), manual, atol=1e-5)
        # A scalar timestep is broadcast over both halves.
        assert torch.allclose(tiny.forward_cfg(x, torch.tensor(500), emb, 2.5)[1], manual[1], atol=1e-5)


def test_unet_spec_validation() -> None:
    assert unet_spec("pixel32", embed_dim=384).embed_dim == 384
    with pytest.raises(ConfigError, match="unknown generator preset"):
        unet_spec("pixel64")
    with pytest.raises(ConfigError, match="attention_resolutions"):
        unet_spec("tiny", attention_resolutions=(2,))
    # 32 channels with 64-channel heads: no head (diffusers would divide by zero in the first step).
    with pytest.raises(ConfigError, match="block_out_channels 32 .* attention_head_dim 64"):
        unet_spec("latent", block_out_channels=(32, 32, 32))
    assert unet_spec("latent", block_out_channels=(32, 64, 64)).block_out_channels == (32, 64, 64)


# ---------------------------------------------------------------- sampling, loss


@pytest.mark.parametrize("name", ["ddim", "dpmsolver++"])
def test_sample_shape_range_determinism(tiny: EmbeddingConditionedUNet, name: str) -> None:
    emb = torch.randn(2, EMBED, generator=torch.Generator().manual_seed(2))
    sched = make_scheduler(name)

    def run(seed: int, scale: float = 1.0) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return sample(tiny, sched, emb, steps=4, guidance_scale=scale, generator=gen)

    a, b, c = run(0), run(0), run(1)
    assert a.shape == (2, 3, 8, 8)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    guided_a = run(0, scale=3.0)
    assert torch.equal(guided_a, run(0, scale=3.0)) and not torch.allclose(guided_a, a)


def test_sample_ddim_eta_and_mode_restored(tiny: EmbeddingConditionedUNet) -> None:
    emb = torch.randn(1, EMBED)
    sched = make_scheduler("ddim", beta_schedule="linear")
    tiny.train()
    try:
        a, b = (
            sample(tiny, sched, emb, steps=3, eta=1.0, generator=torch.Generator().manual_seed(0)) for _ in range(2)
        )
        assert tiny.training and torch.equal(a, b)
    finally:
        tiny.eval()
    with pytest.raises(ConfigError, match="eta only applies"):
        sample(tiny, make_scheduler("dpmsolver++"), emb, steps=3, eta=0.5)


def test_training_loss_decreases() -> None:
    torch.manual_seed(0)
    model = EmbeddingConditionedUNet(PRESETS["tiny"]).train()
    sched = make_scheduler("ddpm")
    g = torch.Generator().manual_seed(0)
    # 16 smooth 8-px images in [-1, 1]: horizontal/vertical ramps with random colours.
    ramp = torch.linspace(-1, 1, 8)
    colour = torch.rand(16, 3, 1, 1, generator=g) * 2 - 1
    even = torch.arange(16).view(16, 1, 1, 1) % 2 == 0
    x0 = torch.where(even, ramp.view(1, 1, 1, 8), ramp.view(1, 1, 8, 1))
    x0 = (0.5 * x0 + 0.5 * colour).expand(16, 3, 8, 8).contiguous()
    emb = torch.randn(16, EMBED, generator=g)

    def fixed_loss() -> float:
        with torch.no_grad():
            return training_loss(model, sched, x0, emb, torch.Generator().manual_seed(123)).item()

    loss = training_loss(model, sched, x0, emb, g)
    assert loss.dim() == 0 and torch.isfinite(loss)
    before = fixed_loss()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(30):
        opt.zero_grad()
        training_loss(model, sched, x0, emb, g).backward()
        opt.step()
    assert fixed_loss() < 0.5 * before  # about 1.17 -> 0.20 here


def test_cross_attention_conditioning_uses_the_embedding_and_guidance() -> None:
    from gensis.generator import EmbeddingConditionedUNet, unet_spec

    torch.manual_seed(0)
    unet = EmbeddingConditionedUNet(unet_spec("tiny", conditioning="cross_attention")).eval()
    x = torch.randn(2, 3, 8, 8)
    t = torch.tensor([10, 500])
    e1, e2 = torch.randn(2, 16), torch.randn(2, 16)
    with torch.no_grad():
        out1, out2 = unet(x, t, e1), unet(x, t, e2)
        assert out1.shape == x.shape and not torch.allclose(out1, out2)
        manual = unet(x, t, e1, drop=torch.ones(2, dtype=torch.bool))
        guided_out = unet.forward_cfg(x, t, e1, 2.0)
        assert torch.allclose(guided_out, manual + 2.0 * (out1 - manual), atol=1e-5)
