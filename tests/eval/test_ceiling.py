"""The real-view ceiling and the chance figures of the generator report (``ceiling_and_chance``),
checked against figures computed here by brute force from views built here by hand.

The encoder records a stage-1 augmentation whose global view is deterministic: the whole
image (crop scale 1), always mirrored, always grayscale, no jitter, blur or solarization. So
the ceiling's views are gray(mirror(image)), the crop ceiling's (geometric part only) are
mirror(image), and every figure has one right value.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from _synthetic import shapes_dataset

from gensis.config.schema import ModelConfig
from gensis.data import ImageData
from gensis.eval.faithfulness import ceiling_and_chance
from gensis.models.backbones import build_encoder
from gensis.models.metadata import EncoderInfo

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
AUGMENT = {
    "global_crop_scale": [1.0, 1.0],
    "hflip_p": 1.0,
    "vflip_p": 0.0,
    "rot90_p": 0.0,
    "color_jitter_p": 0.0,
    "grayscale_p": 1.0,
    "blur_p": [0.0, 0.0, 0.0],
    "solarize_p": 0.0,
    "mean": list(MEAN),
    "std": list(STD),
}


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8).eval()
    encoder.info = EncoderInfo.parse(
        "mem.safetensors",
        {
            **encoder.metadata(),
            "mean": json.dumps(list(MEAN)),
            "std": json.dumps(list(STD)),
            "augment": json.dumps(AUGMENT),
        },
    )
    images, labels = shapes_dataset(20, size=8, n_classes=3, seed=3)  # 7, 7, 6 images per class
    real = ImageData(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        labels=torch.from_numpy(labels),
        class_names=["a", "b", "c"],
        ids=[str(i) for i in range(20)],
        source="mem",
        resolution=8,
    )
    return encoder, real


def _embed(encoder, images: torch.Tensor) -> torch.Tensor:
    """By hand: uint8 -> [0, 1] -> (x - mean) / std -> encoder -> unit length."""
    x = (images.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return F.normalize(encoder(x).float(), dim=-1)


def _gray(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, as torchvision's rgb_to_grayscale, repeated to three channels."""
    x = images.float() / 255
    y = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).clamp(0, 1)
    return (y * 255).round().to(torch.uint8)[:, None].repeat(1, 3, 1, 1)


def _expected(view_emb, view_images, sources, real_emb, labels, originals) -> dict:
    """Every figure by loops over the views (one view per source here: two identical views)."""
    n = len(real_emb)
    ranks, agree = [], []
    for v, s in zip(view_emb, sources.tolist(), strict=True):
        sims = [float(v @ real_emb[j]) for j in range(n)]
        ranks.append(sum(1 for j in range(n) if sims[j] > sims[s]))  # 0 = the source is nearest
        nearest = sorted(range(n), key=lambda j: -sims[j])[:10]
        votes = [sum(1 for j in nearest if labels[j] == c) for c in range(3)]
        agree.append(votes.index(max(votes)) == labels[s])
    ranks_sorted = sorted(ranks)
    rmse = [
        float(((a.float() - b.float()) / 255).square().mean().sqrt())
        for a, b in zip(view_images, originals, strict=True)
    ]
    return {
        "retrieval_top1": 100 * sum(r == 0 for r in ranks) / len(ranks),
        "retrieval_top5": 100 * sum(r < 5 for r in ranks) / len(ranks),
        "retrieval_median_rank": ranks_sorted[(len(ranks) - 1) // 2] + 1,
        "class_consistency": 100 * sum(agree) / len(agree),
        "source_pixel_rmse": sum(rmse) / len(rmse),
    }


def _check(figures: dict, expected: dict) -> None:
    for key in ("retrieval_top1", "retrieval_top5", "class_consistency"):
        assert figures[key] == pytest.approx(expected[key], abs=0.01), key
    assert figures["retrieval_median_rank"] == expected["retrieval_median_rank"]
    assert figures["source_pixel_rmse"] == pytest.approx(expected["source_pixel_rmse"], abs=1e-4)
    assert figures["diversity_cosine"] == pytest.approx(0.0, abs=1e-4)  # the two views of a source are one image
    assert figures["diversity_pixel_rmse"] == 0.0


def test_ceiling_figures_are_those_of_the_recorded_stage1_views(setup) -> None:
    encoder, real = setup
    sources = torch.tensor([0, 2, 3, 5, 8, 9, 11, 13, 14, 17, 19])
    real_emb = _embed(encoder, real.images)
    out = ceiling_and_chance(encoder, real, sources, real_emb, views=2)

    originals = real.images[sources]
    mirrored = originals.flip(-1)
    labels = real.labels.tolist()
    crop = _expected(_embed(encoder, mirrored), mirrored, sources, real_emb, labels, originals)
    full = _expected(_embed(encoder, _gray(mirrored)), _gray(mirrored), sources, real_emb, labels, originals)
    assert crop != full  # the colour step changes the figures: the two ceilings are told apart
    assert out["ceiling"]["augment"] == "stage 1 (recorded in the encoder)"
    _check(out["ceiling"], full)
    _check(out["ceiling_crop"], crop)


def test_chance_figures(setup) -> None:
    encoder, real = setup
    real_emb = _embed(encoder, real.images)
    chance = ceiling_and_chance(encoder, real, torch.tensor([1, 4]), real_emb, views=2)["chance"]
    # A random image among 20: its source is first with p = 1/20, in the top 5 with p = 5/20, and
    # its median rank is the middle one; its nearest images carry class c with p = share(c),
    # so it agrees with its source's class with p = sum over c of share(c)^2.
    assert chance == {
        "images": 20,
        "retrieval_top1": 5.0,
        "retrieval_top5": 25.0,
        "retrieval_median_rank": 10,
        "class_consistency": round(100 * ((7 / 20) ** 2 + (7 / 20) ** 2 + (6 / 20) ** 2), 2),
    }
    few = ceiling_and_chance(
        encoder,
        ImageData(
            images=real.images[:3], labels=None, class_names=None, ids=["0", "1", "2"], source="mem", resolution=8
        ),
        torch.tensor([0]),
        real_emb[:3],
        views=2,
    )["chance"]
    assert few == {"images": 3, "retrieval_top1": 33.333, "retrieval_top5": 100.0, "retrieval_median_rank": 2}
