"""The conditioner's unconditional embedding (classifier-free guidance).

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

import torch

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
