"""Batched DINO multi-crop augmentation (gensis.augment)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torchvision.transforms.functional as TF

from gensis import augment as A
from gensis.augment import MultiCropAugment, eval_transform
from gensis.config.schema import AugmentConfig

TOL = 1 / 255


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uint8_images(b: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=gen(seed))


def float_images(b: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=gen(seed))


def plain_cfg(**kw: object) -> AugmentConfig:
    """Every random op off and no normalization; tests switch on what they need."""
    off = dict(
        hflip_p=0.0,
        color_jitter_p=0.0,
        grayscale_p=0.0,
        blur_p=(0.0, 0.0, 0.0),
        solarize_p=0.0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )
    return AugmentConfig(**(off | kw))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- MultiCropAugment
@pytest.mark.parametrize(
    ("res", "gsize", "lsize", "n_local", "b"), [(32, 32, 16, 6, 8), (96, 96, 48, 2, 2), (224, 224, 96, 2, 2)]
)
def test_view_shapes_and_dtypes(res: int, gsize: int, lsize: int, n_local: int, b: int) -> None:
    cfg = AugmentConfig(global_crop_size=gsize, local_crop_size=lsize, n_local_crops=n_local)
    aug = MultiCropAugment(cfg)
    views = aug(uint8_images(b, res), gen())
    assert aug.n_views == len(views) == 2 + n_local
    for i, v in enumerate(views):
        s = gsize if i < 2 else lsize
        assert v.shape == (b, 3, s, s) and v.dtype == torch.float32
        assert torch.isfinite(v).all()
    globals_only = aug.global_views(uint8_images(b, res), gen())
    assert [v.shape for v in globals_only] == [(b, 3, gsize, gsize)] * 2


def test_values_in_unit_range_before_normalization() -> None:
    cfg = plain_cfg(
        n_local_crops=2,
        hflip_p=0.5,
        color_jitter_p=1.0,
        grayscale_p=0.5,
        blur_p=(1.0, 1.0, 1.0),
        solarize_p=1.0,
        brightness=1.0,
        contrast=1.0,
        saturation=1.0,
        hue=0.5,
    )
    for v in MultiCropAugment(cfg)(uint8_images(16), gen()):
        assert v.min() >= 0.0 and v.max() <= 1.0


def test_per_sample_randomness() -> None:
    images = uint8_images(1).expand(4, -1, -1, -1).contiguous()
    for v in MultiCropAugment(AugmentConfig(n_local_crops=2))(images, gen()):
        assert not torch.equal(v[0], v[1])
    same = float_images(1).expand(4, -1, -1, -1)
    jittered = A.color_jitter(same, 0.4, 0.4, 0.2, 0.1, 1.0, gen())
    assert not torch.equal(jittered[0], jittered[1])


def test_determinism_under_seed() -> None:
    aug = MultiCropAugment(AugmentConfig(n_local_crops=2))
    images = uint8_images(4)
    a, b, c = aug(images, gen(1)), aug(images, gen(1)), aug(images, gen(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(not torch.equal(x, y) for x, y in zip(a, c, strict=True))
    # Globals are drawn first, so global_views continues the same random stream.
    globals_only = aug.global_views(images, gen(1))
    assert all(torch.equal(x, y) for x, y in zip(globals_only, a[:2], strict=True))
    # Memory format does not matter.
    cl = aug(images.contiguous(memory_format=torch.channels_last), gen(1))
    assert all(torch.equal(x, y) for x, y in zip(a, cl, strict=True))


def test_full_crop_without_ops_is_exact_and_normalized() -> None:
    images = uint8_images(3)
    x = images.float() / 255
    aug = MultiCropAugment(plain_cfg(global_crop_scale=(1.0, 1.0)))
    assert torch.equal(aug.view(images, "global1", gen()), x)  # roi_align identity is exact
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    aug = MultiCropAugment(plain_cfg(global_crop_scale=(1.0, 1.0), mean=mean, std=std))
    expect = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(aug.view(images, "global2", gen()), expect)
    torch.testing.assert_close(eval_transform(images, mean, std), expect)


def test_solarize_only_on_second_global_view() -> None:
    images = uint8_images(3)
    x = images.float() / 255
    aug = MultiCropAugment(plain_cfg(global_crop_scale=(1.0, 1.0), solarize_p=1.0))
    g1, g2 = aug.global_views(images, gen())
    assert torch.equal(g1, x)
    assert torch.equal(g2, torch.where(x >= 0.5, 1 - x, x))
    assert torch.equal(aug.view(images, "global2", gen()), g2)
    assert aug.view(images, "local", gen()).shape == (3, 3, 16, 16)
    with pytest.raises(ValueError, match="unknown view kind"):
        aug.view(images, "global3", gen())  # type: ignore[arg-type]


def test_rejects_float_images() -> None:
    with pytest.raises(ValueError, match="uint8"):
        MultiCropAugment(AugmentConfig())(torch.rand(2, 3, 32, 32), gen())


@pytest.mark.parametrize("b", [0, 1])
def test_tiny_batches(b: int) -> None:
    cfg = AugmentConfig(n_local_crops=2, vflip_p=0.5, rot90_p=0.5)
    views = MultiCropAugment(cfg)(uint8_images(b), gen())
    assert [v.shape for v in views] == [(b, 3, 32, 32)] * 2 + [(b, 3, 16, 16)] * 2
    x = float_images(b)
    for op in _random_ops():
        assert op(x, 1.0).shape == x.shape


# ----------------------------------------------------------------------------- functional ops
def _random_ops() -> list[Callable[[torch.Tensor, float], torch.Tensor]]:
    return [
        lambda x, p: A.random_hflip(x, p, gen()),
        lambda x, p: A.random_vflip(x, p, gen()),
        lambda x, p: A.random_rot90(x, p, gen()),
        lambda x, p: A.color_jitter(x, 0.4, 0.4, 0.2, 0.1, p, gen()),
        lambda x, p: A.random_grayscale(x, p, gen()),
        lambda x, p: A.gaussian_blur(x, p, (0.1, 2.0), gen()),
        lambda x, p: A.random_solarize(x, p, 0.5, gen()),
    ]


def test_zero_probability_is_identity_and_unselected_samples_are_untouched() -> None:
    x = float_images(8)
    keep = torch.tensor([1.0, 0.0] * 4)  # per-sample probabilities: odd samples never
    for op in _random_ops():
        assert torch.equal(op(x, 0.0), x)
        out = op(x, keep)  # type: ignore[arg-type]
        assert torch.equal(out[1::2], x[1::2])
        assert not torch.equal(out[0::2], x[0::2])


def test_flips_and_rot90() -> None:
    x = float_images(16)
    assert torch.equal(A.random_hflip(x, 1.0, gen()), x.flip(-1))
    assert torch.equal(A.random_vflip(x, 1.0, gen()), x.flip(-2))
    rotated = A.random_rot90(x, 1.0, gen())
    ks = []
    for i in range(16):
        k = [k for k in (1, 2, 3) if torch.equal(rotated[i], x[i].rot90(k, (-2, -1)))]
        assert len(k) == 1
        ks.append(k[0])
    assert len(set(ks)) > 1  # k is drawn per sample
    with pytest.raises(ValueError, match="square"):
        A.random_rot90(torch.rand(2, 3, 8, 10), 1.0, gen())


def test_solarize_matches_hand_computation() -> None:
    x = torch.tensor([0.0, 0.25, 0.49, 0.5, 0.75, 1.0]).view(1, 1, 1, 6).expand(2, 3, 1, 6)
    expect = torch.tensor([0.0, 0.25, 0.49, 0.5, 0.25, 0.0]).view(1, 1, 1, 6).expand(2, 3, 1, 6)
    torch.testing.assert_close(A.random_solarize(x, 1.0, 0.5, gen()), expect, atol=1e-7, rtol=0)


def test_grayscale_luma() -> None:
    x = float_images(4)
    y = A.random_grayscale(x, 1.0, gen())
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        torch.testing.assert_close(y[:, c], luma)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])


def test_blur() -> None:
    x = float_images(4)
    torch.testing.assert_close(A.gaussian_blur(x, 1.0, (1e-3, 1e-3), gen()), x, atol=1e-6, rtol=0)
    const = torch.full((2, 3, 16, 16), 0.3)
    torch.testing.assert_close(A.gaussian_blur(const, 1.0, (1.5, 2.0), gen()), const)
    blurred = A.gaussian_blur(x, 1.0, (1.5, 2.0), gen())
    assert blurred.std() < x.std() / 2
    torch.testing.assert_close(blurred.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.02, rtol=0)


def test_blur_matches_torchvision() -> None:
    x = float_images(3, 20)
    sigma = torch.tensor([0.5, 1.0, 2.0])
    y = A.gaussian_blur_sigma(x, sigma, radius=6)
    for i in range(3):
        ref = TF.gaussian_blur(x[i], [13, 13], [float(sigma[i])] * 2)
        torch.testing.assert_close(y[i], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("h", "w", "scale"), [(224, 224, (0.05, 0.4)), (224, 224, (0.4, 1.0)), (100, 180, (0.2, 1.0))])
def test_crop_boxes_in_image_and_scale(h: int, w: int, scale: tuple[float, float]) -> None:
    boxes = A.sample_crop_boxes(500, h, w, scale, generator=gen())
    x0, y0, x1, y1 = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= w).all() and (y1 <= h).all()
    bw, bh = x1 - x0, y1 - y0
    assert (bw >= 1).all() and (bh >= 1).all()
    # Sides are rounded: some real sides within 0.5 px must give an area in `scale`.
    assert ((bw - 0.5) * (bh - 0.5) / (h * w) <= scale[1]).all()
    assert ((bw + 0.5) * (bh + 0.5) / (h * w) >= scale[0]).all()
    assert len({tuple(b.tolist()) for b in boxes}) > 400


def test_crop_boxes_fall_back_to_center_crop() -> None:
    # An aspect ratio of 2..3 never fits a full-area crop of a square image.
    boxes = A.sample_crop_boxes(4, 32, 32, (1.0, 1.0), (2.0, 3.0), generator=gen())
    assert torch.equal(boxes, torch.tensor([[0.0, 8.0, 32.0, 24.0]]).expand(4, 4))


def test_random_resized_crop_shape_and_identity() -> None:
    x = float_images(3, 20)
    assert A.random_resized_crop(x, 12, (0.1, 0.5), generator=gen()).shape == (3, 3, 12, 12)
    full = torch.tensor([[0.0, 0.0, 20.0, 20.0]]).expand(3, 4)
    assert torch.equal(A.resized_crop(x, full, 20), x)


def test_hue_identity_and_red_to_cyan() -> None:
    x = float_images(4)
    torch.testing.assert_close(A.adjust_hue(x, 0.0), x, atol=1e-6, rtol=0)
    red = torch.zeros(2, 3, 4, 4)
    red[:, 0] = 1.0
    cyan = torch.ones(2, 3, 4, 4)
    cyan[:, 0] = 0.0
    shifted = A.adjust_hue(red, torch.tensor([0.5, -0.5]))
    torch.testing.assert_close(shifted, cyan, atol=1e-6, rtol=0)


def _test_image(b: int) -> torch.Tensor:
    x = float_images(b, 12, seed=3)
    x[0, :, :3] = 0.5  # gray pixels (no hue)
    x[1, :, :2] = torch.tensor([0.9, 0.9, 0.1]).view(3, 1, 1)  # red/green tie
    return x


@pytest.mark.parametrize(
    ("ours", "theirs", "factors"),
    [
        (A.adjust_brightness, TF.adjust_brightness, [0.6, 1.0, 1.4, 0.0, 2.0]),
        (A.adjust_contrast, TF.adjust_contrast, [0.6, 1.0, 1.4, 0.0, 2.0]),
        (A.adjust_saturation, TF.adjust_saturation, [0.8, 1.0, 1.2, 0.0, 2.0]),
        (A.adjust_hue, TF.adjust_hue, [-0.1, 0.0, 0.1, 0.5, -0.37]),
    ],
)
def test_color_ops_match_torchvision(ours: Callable, theirs: Callable, factors: list) -> None:
    x = _test_image(len(factors))
    y = ours(x, torch.tensor(factors))
    for i, f in enumerate(factors):
        torch.testing.assert_close(y[i], theirs(x[i], f), atol=TOL, rtol=0)
    # A plain float factor means the same factor for every sample.
    same = torch.full((len(factors),), factors[0])
    torch.testing.assert_close(ours(x, factors[0]), ours(x, same))


def test_color_jitter_order_matches_torchvision() -> None:
    x = _test_image(4)
    factors = torch.tensor([[1.3, 0.7, 1.2, 0.08], [0.7, 1.3, 0.8, -0.1]] * 2)
    order = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]])
    fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    y = A.apply_color_jitter(x, factors, order)
    for i in range(4):
        ref = x[i]
        for op in order[i].tolist():
            ref = fns[op](ref, float(factors[i, op]))
        torch.testing.assert_close(y[i], ref, atol=TOL, rtol=0)
    # The order matters, so this is a real check of the per-sample permutation.
    in_order = A.apply_color_jitter(x[1:2], factors[1:2], order[:1])[0]
    assert not torch.allclose(y[1], in_order, atol=TOL)


def test_color_jitter_ranges() -> None:
    x = float_images(4)
    assert torch.equal(A.color_jitter(x, 0.0, 0.0, 0.0, 0.0, 1.0, gen()), x)  # all inactive
    bright = A.color_jitter(x, (1.5, 1.5), 0.0, 0.0, 0.0, 1.0, gen())
    torch.testing.assert_close(bright, (x * 1.5).clamp(0, 1))


@pytest.mark.gpu
def test_cpu_and_cuda_give_the_same_views() -> None:
    assert torch.cuda.is_available(), "pytest -m gpu needs a CUDA device"
    cfg = AugmentConfig(n_local_crops=2, solarize_p=0.5, vflip_p=0.5, rot90_p=0.5)
    aug = MultiCropAugment(cfg)
    images = uint8_images(16)
    cpu = aug(images, gen(5))
    cuda = aug(images.cuda(), gen(5))
    for a, b in zip(cpu, cuda, strict=True):
        assert b.is_cuda
        diff = (a - b.cpu()).abs()
        # TF32 convs and threshold ties (solarize, hue sextants) allow rare larger pixels.
        assert diff.mean() < 1e-3 and (diff > 0.05).float().mean() < 1e-3
