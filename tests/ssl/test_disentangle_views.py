"""A rank's share of the disentanglement inputs.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

import torch

from gensis.ssl.dino import DisentangleViews


def test_a_ranks_share_of_the_disentanglement_inputs() -> None:
    views = DisentangleViews(
        torch.arange(4.0).view(4, 1),
        torch.arange(10.0, 14.0).view(4, 1),
        torch.tensor([0.1, 0.2, 0.3, 0.4]),
        torch.tensor([0, 1, 1, 0]),
    )
    part = views.narrow(slice(1, 3))
    assert part.interpolated.flatten().tolist() == [1.0, 2.0]
    assert part.partner.flatten().tolist() == [11.0, 12.0]
    assert torch.allclose(part.alpha, torch.tensor([0.2, 0.3]))
    assert part.real_slot.tolist() == [1, 1]
