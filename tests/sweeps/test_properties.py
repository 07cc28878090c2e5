"""Rules that hold for any input, not one example (issue 39), checked with hypothesis."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gensis.data.dataset import ImageData
from gensis.eval.knn import knn_predict
from gensis.eval.significance import mcnemar_exact, paired_seeds
from gensis.generator.slerp import slerp

bools = st.lists(st.booleans(), min_size=1, max_size=60)


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_mcnemar_p_is_a_probability_and_symmetric(data) -> None:
    a = data.draw(bools)
    b = data.draw(st.lists(st.booleans(), min_size=len(a), max_size=len(a)))
    ab, ba = mcnemar_exact(a, b), mcnemar_exact(b, a)
    assert 0.0 <= ab["p_value"] <= 1.0
    assert math.isclose(ab["p_value"], ba["p_value"], rel_tol=1e-12)
    assert (ab["only_a"], ab["only_b"]) == (ba["only_b"], ba["only_a"])


@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=8).filter(lambda d: max(d) - min(d) > 1e-3))
@settings(max_examples=60, deadline=None)
def test_the_paired_interval_shrinks_with_more_seeds_of_the_same_spread(diffs) -> None:
    one, two = paired_seeds(diffs), paired_seeds(diffs + diffs)  # same mean, about the same sd, twice the seeds
    assert two.half_width < one.half_width
    assert one.ci[0] <= one.mean <= one.ci[1]


@given(st.floats(0, 1), st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_slerp_at_alpha_and_one_minus_alpha_swaps_its_endpoints(alpha, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    e1, e2 = torch.randn(3, 8, generator=g, dtype=torch.float64), torch.randn(3, 8, generator=g, dtype=torch.float64)
    assert torch.allclose(slerp(e1, e2, alpha), slerp(e2, e1, 1 - alpha), atol=1e-9)
    assert torch.allclose(slerp(e1, e2, 1.0), torch.nn.functional.normalize(e1, dim=-1), atol=1e-9)


@given(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3), st.integers(0, 3), st.integers(1, 255))
@settings(max_examples=40, deadline=None)
def test_a_fingerprint_changes_when_any_pixel_changes(i, c, y, x, delta) -> None:
    images = torch.zeros(4, 3, 4, 4, dtype=torch.uint8)
    base = ImageData(
        images=images, labels=None, class_names=None, ids=[str(k) for k in range(4)], source="", resolution=4
    )
    changed = images.clone()
    changed[i, c, y, x] = delta
    other = ImageData(images=changed, labels=None, class_names=None, ids=base.ids, source="", resolution=4)
    assert base.fingerprint() != other.fingerprint()


@given(st.integers(2, 30), st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_knn_with_k_1_returns_the_nearest_label(n, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    train = torch.nn.functional.normalize(torch.randn(n, 6, generator=g), dim=-1)
    labels = torch.randint(0, 3, (n,), generator=g)
    test = torch.nn.functional.normalize(torch.randn(5, 6, generator=g), dim=-1)
    nearest = labels[(test @ train.T).argmax(dim=1)]
    assert torch.equal(knn_predict(train, labels, test, k=1, num_classes=3)[1], nearest)
