"""SLERP of two embeddings.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

import math

import pytest
import torch

from gensis.errors import ConfigError
from gensis.generator.slerp import slerp


@pytest.mark.parametrize("alpha", [1.5, -0.25, 1 + 1e-9, [0.5, 1 + 1e-9], torch.tensor([0.0, 1.5]), float("nan")])
def test_slerp_refuses_an_alpha_outside_0_1_even_by_a_hair(alpha) -> None:
    # 1 + 1e-9 is 1.0 in float32: the check must read alpha in float64 to refuse it.
    e1, e2 = torch.eye(3)[:2], torch.eye(3)[1:]
    with pytest.raises(ConfigError, match=r"^alpha must lie in \[0, 1\]$"):
        slerp(e1, e2, alpha)


def test_slerp_on_a_quarter_circle_hand_computed() -> None:
    # e1 = x, e2 = y: W = pi / 2 and SLERP(e1, e2, a) = cos((1 - a) W) x + sin((1 - a) W) y.
    e1, e2 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64)
    third = slerp(e1, e2, 1 / 3)  # (1 - 1/3) pi / 2 = pi / 3: (cos, sin) = (0.5, sqrt(3) / 2)
    assert third.dtype == torch.float64
    assert torch.allclose(third, torch.tensor([0.5, 0.8660254037844386, 0.0], dtype=torch.float64), rtol=0, atol=1e-12)
    # alpha read in float64: 1 - 1e-12 still moves off e1 by about (pi / 2) * 1e-12 (float32 would round it to 1)
    near = slerp(e1, e2, 1 - 1e-12)
    assert near[0].item() == 1.0 and near[1].item() == pytest.approx(1.5707963e-12, rel=1e-3)
    rows = slerp(e1.expand(2, 3), e2.expand(2, 3), [0.0, 1 / 3])  # a Python list: one alpha per row
    assert torch.allclose(
        rows, torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.8660254037844386, 0.0]], dtype=torch.float64), rtol=0, atol=1e-12
    )


def test_slerp_between_opposite_points_turns_towards_the_least_aligned_axis() -> None:
    # e2 = -e1: W = pi, u = the axis least aligned with a = e1 / |e1|, orthogonalized and normalized.
    # a = (3, 2, 1) / sqrt(14): axis z; z - (1 / sqrt(14)) a = (-3, -2, 13) / 14 -> u = (-3, -2, 13) / sqrt(182).
    # a = (1, -4, 2) / sqrt(21): axis x; x - (1 / sqrt(21)) a = (20, 4, -2) / 21 -> u = (10, 2, -1) / sqrt(105).
    e1 = torch.tensor([[3.0, 2.0, 1.0], [1.0, -4.0, 2.0]], dtype=torch.float64)
    a = e1 / torch.tensor([[14.0], [21.0]], dtype=torch.float64).sqrt()
    u = (
        torch.tensor([[-3.0, -2.0, 13.0], [10.0, 2.0, -1.0]], dtype=torch.float64)
        / torch.tensor([[182.0], [105.0]], dtype=torch.float64).sqrt()
    )
    assert torch.allclose(slerp(e1, -2 * e1, 0.5), u, rtol=0, atol=1e-12)  # half way: theta = pi / 2, all u
    # alpha 0.25: theta = 3 pi / 4, cos(theta) a + sin(theta) u = (u - a) / sqrt(2)
    quarter = (u - a) / 2**0.5
    assert torch.allclose(slerp(e1, -e1, 0.25), quarter, rtol=0, atol=1e-12)
    assert torch.allclose(slerp(e1[0], -e1[0], 0.25), quarter[0], rtol=0, atol=1e-12)  # one (D,) vector
    assert torch.allclose(slerp(e1[1], -e1[1], 0.5), u[1], rtol=0, atol=1e-12)


def test_slerp_computes_in_float32_at_least_and_returns_the_inputs_dtype() -> None:
    """Half-precision inputs are normalized in float32, not in half (whose ~1e-4 rounding would show in a float32
    result), whichever side they come in on; the result has the promoted input dtype, half for two halves."""
    x16 = torch.tensor([3.0, 4.0], dtype=torch.float16)  # exact in half; x / |x| = (0.6, 0.8) is not
    y = torch.tensor([-4.0, 3.0])
    first = torch.tensor([0.6, 0.8])
    assert slerp(x16, y, 1.0).dtype == torch.float32
    assert torch.allclose(slerp(x16, y, 1.0), first, rtol=0, atol=1e-6)  # alpha 1: all e1
    assert torch.allclose(slerp(y, x16, 0.0), first, rtol=0, atol=1e-6)  # alpha 0: all e2
    assert slerp(x16, y.half(), 0.5).dtype == torch.float16


def test_slerp_below_the_small_angle_cutoff_still_moves_along_the_arc() -> None:
    """Below W = 1e-4 the normalized lerp alpha e1 + (1 - alpha) e2 stands in for SLERP (the same to O(W^3)):
    the point still lies at the angle (1 - alpha) W from e1, and e1 = e2 gives e1 back."""
    t = 2e-5
    e1, e2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, t], dtype=torch.float64)
    w = math.atan(t)  # the angle between e1 and e2
    for alpha in (0.25, 0.5):
        angle = (1 - alpha) * w
        expected = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
        assert torch.allclose(slerp(e1, e2, alpha), expected, rtol=0, atol=1e-12)
    same = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    assert torch.allclose(
        slerp(same, 2 * same, 0.3), torch.tensor([[0.6, 0.8]], dtype=torch.float64), rtol=0, atol=1e-12
    )


def test_slerp_makes_a_list_of_alphas_on_the_inputs_device() -> None:
    # "meta" stands for a GPU: one alpha per row, given as a list, must meet the embeddings on their device.
    e = torch.zeros(2, 3, device="meta")
    out = slerp(e, e, [0.5, 0.25])
    assert out.device.type == "meta" and out.shape == (2, 3)


def test_slerp_takes_one_alpha_per_row_of_a_grid_of_embeddings() -> None:
    """(2, 2, D) embeddings with a (2, 2) alpha: alpha[i, j] goes with row (i, j), as it does for (B, D) and (B,)."""
    x = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    alpha = torch.tensor([[0.0, 1.0], [0.5, 1 / 3]], dtype=torch.float64)
    # quarter circle from x to y: angle (1 - alpha) pi / 2 from x -> y, x, 45 degrees, 60 degrees
    r = 0.5**0.5
    expected = torch.tensor(
        [[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], [[r, r, 0.0], [0.5, 0.8660254037844386, 0.0]]], dtype=torch.float64
    )
    got = slerp(x.expand(2, 2, 3), y.expand(2, 2, 3), alpha)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


def test_slerp_takes_a_perpendicular_part_of_exactly_1e_minus_6_as_no_direction() -> None:
    """Near-opposite inputs turn towards e2's part orthogonal to e1 only when its norm is above 1e-6; at exactly
    1e-6 the fixed least-aligned axis is used, as for e2 = -e1. Pins the strict threshold."""
    x = torch.tensor([1.0, 0.0, 0.0])
    # In float32 |(-1, 0, h)| rounds to 1 for these h: e2 is unit as given and its orthogonal part is (0, 0, h).
    # W = pi - h, so alpha 0.5 turns by about pi / 2: the result is (about) the turning direction u.
    at = slerp(x, torch.tensor([-1.0, 0.0, 1e-6]), 0.5)  # u = x's least-aligned axis: y (the first zero entry)
    assert torch.allclose(at, torch.tensor([0.0, 1.0, 0.0]), rtol=0, atol=1e-5)
    above = slerp(x, torch.tensor([-1.0, 0.0, 2e-6]), 0.5)  # u = z, towards e2
    assert torch.allclose(above, torch.tensor([0.0, 0.0, 1.0]), rtol=0, atol=1e-5)
