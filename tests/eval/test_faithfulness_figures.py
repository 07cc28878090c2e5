"""The generator's faithfulness figures, their units and rounding.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

import pytest
import torch

from gensis.eval.faithfulness import class_consistency, diversity, source_distance, versus_ceiling


def test_class_consistency_is_a_percentage_to_two_decimals() -> None:
    """Three views all nearest to image 0 (label 0), from sources of labels 0, 1, 2: one in three
    agrees, 100 / 3 % shown as 33.33 (two decimals, as every percentage in the report)."""
    real, labels = torch.eye(3), torch.tensor([0, 1, 2])
    assert class_consistency(torch.eye(3)[[0, 0, 0]], torch.tensor([0, 1, 2]), real, labels, k=1) == 33.33


def test_diversity_is_the_mean_over_pairs_of_distinct_views_to_four_decimals() -> None:
    """Views e0, e0, e1 of one source: of the six ordered pairs of distinct views four are orthogonal
    (cosine distance 1) and two identical (0), 4 / 6 = 0.6667; likewise in pixels for black, black,
    white (RMSE 1 on the 0-1 scale). Four decimals: neither 1 nor 0.66667."""
    images = torch.zeros(1, 3, 3, 2, 2, dtype=torch.uint8)
    images[0, 2] = 255
    assert diversity(torch.eye(2)[[0, 0, 1]][None], images) == {
        "diversity_cosine": 0.6667,
        "diversity_pixel_rmse": 0.6667,
    }


def test_source_distance_is_the_mean_view_rmse_to_four_decimals() -> None:
    """Two views of a source at 85 everywhere: itself (RMSE 0) and black (85 / 255 = 1/3), mean 1/6."""
    source = torch.full((1, 3, 2, 2), 85, dtype=torch.uint8)
    views = torch.stack([source, torch.zeros_like(source)], dim=1)
    assert source_distance(views, source) == 0.1667


def test_versus_ceiling_covers_every_figure_where_more_is_better_to_three_decimals() -> None:
    """Generated / ceiling for top-1, class consistency, both diversities and the distance to the
    source (three decimals); top-5 has no ratio, nor a figure whose ceiling is 0 or missing."""
    generated = {
        "retrieval_top1": 10.0,
        "retrieval_top5": 20.0,
        "class_consistency": 30.0,
        "diversity_cosine": 0.2,
        "diversity_pixel_rmse": 0.1,
        "source_pixel_rmse": 0.3,
    }
    ceiling = {
        "retrieval_top1": 30.0,
        "retrieval_top5": 40.0,
        "class_consistency": 60.0,
        "diversity_cosine": 0.4,
        "diversity_pixel_rmse": 0.05,
        "source_pixel_rmse": 0.9,
    }
    assert versus_ceiling(generated, ceiling) == {
        "retrieval_top1": 0.333,
        "class_consistency": 0.5,
        "diversity_cosine": 0.5,
        "diversity_pixel_rmse": 2.0,
        "source_pixel_rmse": 0.333,
    }
    assert versus_ceiling(generated, {"retrieval_top1": 0.0, "class_consistency": 60.0}) == {"class_consistency": 0.5}


def test_class_consistency_refuses_k_below_1() -> None:
    """With no neighbour there is no vote, so no figure: k = 0 is refused, not answered."""
    from gensis.eval.faithfulness import class_consistency

    emb = torch.eye(2)
    with pytest.raises(ValueError, match=r"^class_consistency: k must be >= 1, got 0$"):
        class_consistency(emb, torch.tensor([0, 1]), emb, torch.tensor([0, 1]), k=0)
    assert class_consistency(emb, torch.tensor([0, 1]), emb, torch.tensor([0, 1]), k=1) == 100.0
