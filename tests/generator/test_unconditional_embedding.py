"""The conditioner's unconditional embedding (classifier-free guidance).

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

import pytest
import torch

from gensis.errors import ConfigError
from gensis.generator.conditioning import EmbeddingConditioner


def test_the_unconditional_embedding_is_the_null_vectors_projection_repeated() -> None:
    torch.manual_seed(0)
    cond = EmbeddingConditioner(embed_dim=4, cond_dim=3)
    with torch.no_grad():
        cond.null_embedding.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0]))
        out = cond.unconditional(5)
        lin1, lin2 = cond.proj[0], cond.proj[2]
        h = torch.nn.functional.silu(cond.null_embedding @ lin1.weight.T + lin1.bias)
        expected = h @ lin2.weight.T + lin2.bias
    assert out.shape == (5, 3) and torch.allclose(out, expected.expand(5, 3))
    assert cond.unconditional(2, device="cpu").device.type == "cpu"


def test_the_unconditional_embedding_lands_on_the_device_asked_for() -> None:
    # "meta" stands for a GPU here: the null embedding must follow the batch it is sampled with.
    cond = EmbeddingConditioner(embed_dim=4, cond_dim=3)
    assert cond.unconditional(2, device="meta").device.type == "meta"
    assert cond.unconditional(2, device="meta").shape == (2, 3)
    assert cond.unconditional(2).device.type == "cpu"  # no device: where the conditioner lives


def test_dropped_conditions_are_drawn_with_the_generator_on_its_device_or_else_on_the_device_asked_for() -> None:
    cond = EmbeddingConditioner(embed_dim=4, cond_dim=3, p_uncond=0.5)
    expected = torch.rand(16, generator=torch.Generator().manual_seed(0)) < 0.5
    assert torch.equal(cond.sample_drop(16, "cpu", torch.Generator().manual_seed(0)), expected)
    # a CPU generator draws on the CPU, then the result moves ("meta" stands for a GPU)
    assert cond.sample_drop(16, "meta", torch.Generator().manual_seed(0)).device.type == "meta"
    torch.manual_seed(0)
    assert torch.equal(cond.sample_drop(16, "cpu"), expected)  # no generator: the global stream
    # no generator and another device: drawn there, so the CPU's global stream is left as it was
    torch.manual_seed(0)
    assert cond.sample_drop(16, "meta").device.type == "meta"
    assert torch.equal(torch.rand(16) < 0.5, expected)


def test_the_condition_is_the_projection_of_the_unit_embedding_scaled_to_norm_sqrt_d() -> None:
    torch.manual_seed(0)
    emb = torch.tensor([[3.0, 0.0, 4.0, 0.0]])  # norm 5: unit (0.6, 0, 0.8, 0), times sqrt(4) = 2
    for standardize, scaled in ((True, [[1.2, 0.0, 1.6, 0.0]]), (False, [[0.6, 0.0, 0.8, 0.0]])):
        cond = EmbeddingConditioner(embed_dim=4, cond_dim=3, standardize=standardize).eval()
        lin1, lin2 = cond.proj[0], cond.proj[2]
        with torch.no_grad():
            expected = (
                torch.nn.functional.silu(torch.tensor(scaled) @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias
            )
            assert torch.allclose(cond(emb), expected, atol=1e-6)
    nine = EmbeddingConditioner(embed_dim=9, cond_dim=3)
    assert (nine.embed_dim, nine.cond_dim, nine.scale) == (9, 3, 3.0)  # standardized by default: sqrt(9)
    for p_uncond in (0.0, 1.0):  # both ends of [0, 1] allowed, anything outside named
        assert EmbeddingConditioner(embed_dim=4, cond_dim=3, p_uncond=p_uncond).p_uncond == p_uncond
    for p_uncond in (-0.1, 1.5):
        with pytest.raises(ConfigError, match=rf"^p_uncond must lie in \[0, 1\], got {p_uncond}$"):
            EmbeddingConditioner(embed_dim=4, cond_dim=3, p_uncond=p_uncond)


def test_the_condition_drops_rows_only_in_training_and_names_a_wrong_embedding() -> None:
    torch.manual_seed(0)
    emb = torch.randn(6, 4)
    cond = EmbeddingConditioner(embed_dim=4, cond_dim=3, p_uncond=1.0)
    null = cond.unconditional(6)
    cond.train()
    assert torch.equal(cond(emb), null)  # training, no drop given: drawn, every row dropped at p = 1
    cond.eval()
    conditional = cond(emb)
    assert not torch.allclose(conditional, null)  # evaluation: nothing drawn, nothing dropped
    given = torch.tensor([True, False, True, False, False, False])
    assert torch.equal(cond(emb, drop=given), torch.where(given.unsqueeze(-1), null, conditional))
    assert torch.equal(cond(emb, drop=given.int()), cond(emb, drop=given))  # 0/1 flags read as booleans
    never = EmbeddingConditioner(embed_dim=4, cond_dim=3, p_uncond=0.0).train()
    g = torch.Generator().manual_seed(0)
    never(emb, generator=g)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(0)))  # no draw
    with pytest.raises(ConfigError, match=r"^embedding has dimension 5, the generator expects 4$"):
        cond(torch.zeros(6, 5))
    with pytest.raises(ConfigError, match=r"^embeddings must have shape \(batch, 4\), got \(4,\)$"):
        cond(torch.zeros(4))  # one embedding without its batch axis
    with pytest.raises(ConfigError, match=r"^drop must have shape \(6,\), got \(5,\)$"):
        cond(emb, drop=torch.zeros(5, dtype=torch.bool))


def test_the_condition_draws_its_drops_from_the_generator_given_and_takes_any_float_embedding() -> None:
    torch.manual_seed(0)
    emb = torch.randn(16, 4)
    cond = EmbeddingConditioner(embed_dim=4, cond_dim=3, p_uncond=0.5).train()
    drop = torch.rand(16, generator=torch.Generator().manual_seed(1)) < 0.5
    expected = torch.where(
        drop.unsqueeze(-1), cond.unconditional(16), cond(emb, drop=torch.zeros(16, dtype=torch.bool))
    )
    torch.manual_seed(2)  # the global stream plays no part
    assert torch.equal(cond(emb, generator=torch.Generator().manual_seed(1)), expected) and 0 < drop.sum() < 16
    cond.eval()  # a float64 embedding is conditioned as its float32 copy
    assert torch.allclose(cond(emb.double()), cond(emb), atol=1e-6) and cond(emb.double()).dtype == torch.float32


@pytest.mark.gpu
def test_dropped_conditions_for_a_gpu_batch_from_a_cpu_generator_are_the_cpu_draws_and_a_gpu_one_draws_there() -> None:
    assert torch.cuda.is_available(), "pytest -m gpu needs a CUDA device"
    cond = EmbeddingConditioner(embed_dim=4, cond_dim=3, p_uncond=0.5)
    expected = torch.rand(16, generator=torch.Generator().manual_seed(0)) < 0.5
    drop = cond.sample_drop(16, "cuda", torch.Generator().manual_seed(0))
    assert drop.device.type == "cuda" and torch.equal(drop.cpu(), expected)
    assert cond.sample_drop(16, "cuda", torch.Generator("cuda").manual_seed(0)).device.type == "cuda"
    on_gpu = EmbeddingConditioner(embed_dim=4, cond_dim=3).cuda().eval()  # a CPU drop for a GPU batch
    drop = torch.tensor([True, False])
    out = on_gpu(torch.randn(2, 4, device="cuda"), drop=drop)
    assert out.device.type == "cuda" and torch.equal(out[0], on_gpu.unconditional(1)[0])
