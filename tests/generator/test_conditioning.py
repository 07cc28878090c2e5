"""Stage 2 follows its condition: the design, the target flips, the monitor, the faithfulness figures."""

from __future__ import annotations

import json
import logging
import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gensis.augment import eval_transform
from gensis.config.overrides import build_config
from gensis.config.schema import GeneratorTrainConfig, PretrainConfig
from gensis.errors import ConfigError
from gensis.eval.faithfulness import (
    ceiling_augment,
    class_consistency,
    faithfulness_table,
    real_views,
    retrieval,
    versus_ceiling,
    view_figures,
)
from gensis.generator.checkpoint import load_generator
from gensis.generator.conditioning import guided
from gensis.generator.monitor import ConditioningMonitor, holdout_split
from gensis.generator.sampling import make_scheduler, min_snr_weights, predict_x0, regression_target, training_loss
from gensis.generator.target_augment import TargetAugment, resolve_target_augment
from gensis.generator.unet import EmbeddingConditionedUNet, unet_spec
from gensis.models.metadata import recorded_augment
from gensis.train.pretrain import _export_meta


def _level_effects(**spec) -> dict[str, float]:
    """Relative change of every UNet block's output when the embedding changes (untrained model)."""
    torch.manual_seed(0)
    model = EmbeddingConditionedUNet(unet_spec("tiny", embed_dim=512, **spec)).eval()
    unet = model.unet
    blocks = {
        **{f"down{i}": b for i, b in enumerate(unet.down_blocks)},
        "mid": unet.mid_block,
        **{f"up{i}": b for i, b in enumerate(unet.up_blocks)},
    }
    acts: dict[str, list[torch.Tensor]] = {}
    for name, block in blocks.items():
        block.register_forward_hook(
            lambda mod, inp, out, name=name: acts.setdefault(name, []).append(out[0] if isinstance(out, tuple) else out)
        )
    x, t = torch.randn(8, 3, 8, 8), torch.full((8,), 500)
    keep = torch.zeros(8, dtype=torch.bool)
    with torch.no_grad():
        model(x, t, torch.randn(8, 512), drop=keep)
        model(x, t, torch.randn(8, 512), drop=keep)
    return {k: float((a - b).norm() / a.norm()) for k, (a, b) in acts.items()}


def test_condition_reaches_every_unet_level_from_the_start() -> None:
    new, old = _level_effects(), _level_effects(scale_shift=False, standardize=False)
    assert set(new) == {"down0", "down1", "mid", "up0", "up1"}
    for level, effect in new.items():
        # Measured: 5-17 % with the new design, 0.4-1.5 % with the old one (512-d embeddings).
        assert effect > 0.03, (level, effect)
        assert effect > 4 * old[level], (level, effect, old[level])
    assert all(v == 0 for v in _level_effects(zero_init=True).values())  # zero_init: enters gradually


def test_old_generators_load_as_the_design_they_were_trained_in(tmp_path) -> None:
    spec = unet_spec("tiny", scale_shift=False, standardize=False)
    model = EmbeddingConditionedUNet(spec)
    fields = {
        k: v
        for k, v in json.loads(json.dumps(spec.__dict__)).items()
        if k not in ("scale_shift", "standardize", "zero_init")
    }  # as written before these existed
    meta = {
        "format": "gensis.generator/1",
        "spec": json.dumps(fields),
        "space": "pixel",
        "vae": "",
        "scheduler": json.dumps(
            {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "epsilon"}
        ),
        "encoder_sha256": "0" * 64,
        "encoder": "/e",
    }
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)
    loaded, _ = load_generator(path)
    assert not loaded.spec.scale_shift and not loaded.spec.standardize
    x, t, e = torch.randn(2, 3, 8, 8), torch.tensor([10, 900]), torch.randn(2, 16)
    keep = torch.zeros(2, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, e, drop=keep), model.eval()(x, t, e, drop=keep))


def test_min_snr_weights_hand_computed() -> None:
    for prediction, implied in (("epsilon", lambda snr: snr), ("v_prediction", lambda snr: snr + 1)):
        sch = make_scheduler("ddpm", prediction_type=prediction)
        t = torch.tensor([0, 300, 700, 999])
        ac = sch.alphas_cumprod[t]
        snr = ac / (1 - ac)
        expected = torch.minimum(snr, torch.tensor(5.0)) / implied(snr)
        assert torch.allclose(min_snr_weights(sch, t, 5.0), expected, rtol=1e-5)
    sch = make_scheduler("ddpm", prediction_type="v_prediction")
    x0, noise, t = torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4), torch.tensor([5, 500, 990])
    x_t = sch.add_noise(x0, noise, t)
    assert torch.allclose(predict_x0(sch, x_t, t, regression_target(sch, x0, noise, t)), x0, atol=1e-4)


class _HalfModel(torch.nn.Module):
    """Predicts 0.5 everywhere, so the loss is known from the draws alone; keeps the timesteps and
    the dropped conditions it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.conditioner = SimpleNamespace(
            check_embedding=lambda emb: None,
            sample_drop=lambda b, device, g: (torch.rand(b, generator=g, device=g.device) < 0.5).to(device),
        )

    def forward(self, x_t, t, emb, drop):
        self.seen.append((t, drop))
        return torch.full_like(x_t, 0.5)


def _draws(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training loss's draws from a generator seeded 0, in its order: timesteps, noise, dropped conditions."""
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 1000, (4,), generator=g)
    noise = torch.randn(4, 3, 2, 2, generator=g, dtype=dtype)
    return t, noise, torch.rand(4, generator=g) < 0.5


def test_the_training_loss_is_the_plain_mse_by_default_and_min_snr_weighted_per_sample_when_asked() -> None:
    sch = make_scheduler("ddpm")  # epsilon: the target is the noise
    x0, emb = torch.zeros(4, 3, 2, 2), torch.zeros(4, 8)
    t, noise, drop = _draws()
    assert t.tolist() == [44, 239, 933, 760] and 0 < drop.sum() < 4

    def loss(x0: torch.Tensor = x0, **kw) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        model = _HalfModel()
        return training_loss(model, sch, x0, emb, torch.Generator().manual_seed(0), **kw), model.seen[0]

    plain, (seen_t, seen_drop) = loss()
    assert torch.allclose(plain, (0.5 - noise).square().mean(), rtol=1e-6)
    assert torch.equal(seen_t, t) and torch.equal(seen_drop, drop)
    ac = sch.alphas_cumprod[t]
    snr = ac / (1 - ac)  # 149, 6.0, 0.011, 0.15
    for gamma in (5.0, 0.5):
        expected = ((0.5 - noise).square().mean(dim=(1, 2, 3)) * torch.clamp(snr, max=gamma) / snr).mean()
        weighted, _ = loss(min_snr_gamma=gamma)
        assert torch.allclose(weighted, expected.float(), rtol=1e-5)
        assert not torch.allclose(weighted, plain, rtol=1e-3)
    # rows (data-parallel): this process's slice of the whole batch's draws
    part, (seen_t, seen_drop) = loss(rows=slice(1, 3))
    assert torch.allclose(part, (0.5 - noise[1:3]).square().mean(), rtol=1e-6)
    assert torch.equal(seen_t, t[1:3]) and torch.equal(seen_drop, drop[1:3])
    # the noise is drawn in the images' dtype (float64 draws other values than float32)
    _, noise64, _ = _draws(torch.float64)
    assert torch.allclose(loss(x0.double())[0], (0.5 - noise64).square().mean().float(), rtol=1e-6)


def test_the_training_loss_names_a_count_mismatch_of_images_and_embeddings() -> None:
    with pytest.raises(ConfigError, match="^4 images but 3 embeddings$"):
        training_loss(_HalfModel(), make_scheduler("ddpm"), torch.zeros(4, 3, 2, 2), torch.zeros(3, 8))


@pytest.mark.gpu
def test_the_training_loss_on_cuda_draws_where_its_generator_lives() -> None:
    """A CPU generator draws on the CPU, a CUDA one on the GPU; either way the model sees its
    timesteps and dropped conditions on the images' device, the loss lands there, and the CPU
    generator's loss equals the same draws on the CPU."""
    assert torch.cuda.is_available(), "pytest -m gpu needs a CUDA device"
    sch = make_scheduler("ddpm")
    x0, emb = torch.zeros(4, 3, 2, 2), torch.zeros(4, 8)
    on_cpu = training_loss(_HalfModel(), sch, x0, emb, torch.Generator().manual_seed(0), min_snr_gamma=5.0)
    for g in (torch.Generator().manual_seed(0), torch.Generator("cuda").manual_seed(0)):
        model = _HalfModel()
        on_gpu = training_loss(model, sch, x0.cuda(), emb.cuda(), g, min_snr_gamma=5.0)
        assert on_gpu.device.type == "cuda" and torch.isfinite(on_gpu)
        assert [v.device.type for v in model.seen[0]] == ["cuda", "cuda"]
        if g.device.type == "cpu":
            assert torch.allclose(on_gpu.cpu(), on_cpu, rtol=1e-5)


def test_predict_x0_hand_computed_for_both_targets() -> None:
    # alphas_cumprod 0.36 and 0.64: sqrt(ac) = 0.6, 0.8 and sqrt(1 - ac) = 0.8, 0.6; x_t = 1, model output 0.5.
    sch = SimpleNamespace(
        alphas_cumprod=torch.tensor([0.36, 0.64], dtype=torch.float64),
        config=SimpleNamespace(prediction_type="epsilon"),
    )
    x_t, out, t = torch.ones(2, 1, 1, 1), torch.full((2, 1, 1, 1), 0.5), torch.tensor([0, 1])
    # epsilon: (x_t - s * eps) / a = (1 - 0.4) / 0.6 = 1.0 and (1 - 0.3) / 0.8 = 0.875
    assert torch.allclose(predict_x0(sch, x_t, t, out).flatten(), torch.tensor([1.0, 0.875]), atol=1e-6)
    sch.config.prediction_type = "v_prediction"  # a * x_t - s * v = 0.6 - 0.4 and 0.8 - 0.3
    assert torch.allclose(predict_x0(sch, x_t, t, out).flatten(), torch.tensor([0.2, 0.5]), atol=1e-6)


def test_predict_x0_follows_the_samples_device() -> None:
    # The scheduler's table lives on the CPU; "meta" stands for the GPU the samples are on.
    sch = make_scheduler("ddpm", prediction_type="epsilon")
    x_t, t = torch.zeros(2, 3, 4, 4, device="meta"), torch.tensor([5, 500], device="meta")
    assert predict_x0(sch, x_t, t, torch.zeros(2, 3, 4, 4, device="meta")).device.type == "meta"


def test_guidance_on_hand_made_model_outputs() -> None:
    cond, uncond = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
    assert guided(cond, uncond, 3.0).tolist() == [2.0, 8.0]  # u + 3 (c - u) = (0.5 + 1.5, -1 + 9)
    assert guided(cond, uncond, 2.0).tolist() == [1.5, 5.0]  # 2 c - u
    assert guided(cond, uncond, 0.0).tolist() == [0.5, -1.0]  # scale 0: the unconditional model
    # scale 1 is the conditional model bit for bit, even where u + (c - u) loses c in float32 (0.1 - 1e8 = -1e8)
    c1, u1 = torch.tensor([0.1]), torch.tensor([1e8])
    assert torch.equal(guided(c1, u1, 1.0), c1)


def test_target_flips_follow_the_stage1_augmentation() -> None:
    for preset, expected in (
        ("digits", (0.0, 0.0, 0.0)),
        ("cifar10", (0.5, 0.0, 0.0)),
        ("histology", (0.5, 0.5, 0.75)),
    ):
        cfg = build_config(PretrainConfig, {"preset": preset})
        recorded = recorded_augment(_export_meta(cfg, 1))
        aug = resolve_target_augment(GeneratorTrainConfig(), recorded)
        assert (aug.hflip_p, aug.vflip_p, aug.rot90_p) == expected, preset
    assert resolve_target_augment(GeneratorTrainConfig(hflip_p=0.3), recorded).hflip_p == 0.3  # explicit wins
    assert (
        resolve_target_augment(GeneratorTrainConfig(), recorded_augment({"mean": "[0.5, 0.5, 0.5]"})) == TargetAugment()
    )
    assert recorded_augment({"augment": "not json"}) is None and recorded_augment({"augment": "[1]"}) is None
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    assert torch.equal(TargetAugment()(x, torch.Generator().manual_seed(0)), x)
    flipped = TargetAugment(hflip_p=1.0)(x, torch.Generator().manual_seed(0))
    assert torch.equal(flipped, x.flip(-1))


def test_the_target_flips_draw_from_their_generator_only_what_is_enabled() -> None:
    x = torch.arange(16 * 4 * 4, dtype=torch.float32).view(16, 1, 4, 4)

    def flipped(aug: TargetAugment) -> tuple[torch.Tensor, float]:
        g = torch.Generator().manual_seed(0)
        return aug(x, g), torch.rand(1, generator=g).item()  # the output, the stream's next draw

    ref = torch.Generator().manual_seed(0)
    u = torch.rand(16, generator=ref)  # the horizontal flip's 16 draws, always made
    after_hflip = torch.rand(1, generator=ref).item()
    out, next_draw = flipped(TargetAugment(hflip_p=0.5))
    assert torch.equal(out, torch.where((u < 0.5).view(16, 1, 1, 1), x.flip(-1), x)) and 0 < (u < 0.5).sum() < 16
    assert next_draw == after_hflip  # the vertical flip and the rotation, off, drew nothing
    out, next_draw = flipped(TargetAugment(vflip_p=1.0))
    assert torch.equal(out, x.flip(-2)) and next_draw != after_hflip
    torch.manual_seed(1)
    turned, _ = flipped(TargetAugment(rot90_p=1.0))
    torch.manual_seed(2)
    assert torch.equal(flipped(TargetAugment(rot90_p=1.0))[0], turned)  # the global stream plays no part
    turns = [[k for k in (1, 2, 3) if torch.equal(turned[i], x[i].rot90(k, dims=(-2, -1)))] for i in range(16)]
    assert all(len(k) == 1 for k in turns) and len({k[0] for k in turns}) == 3  # each turned 1, 2 or 3 times


def test_the_schedulers_by_name_with_the_settings_training_and_sampling_share() -> None:
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    def settings(s) -> tuple:
        return s.config.num_train_timesteps, s.config.beta_schedule, s.config.prediction_type

    ddpm = make_scheduler("ddpm")
    assert type(ddpm) is DDPMScheduler and settings(ddpm) == (1000, "squaredcos_cap_v2", "epsilon")
    assert settings(make_scheduler("ddpm", 2)) == (2, "squaredcos_cap_v2", "epsilon")  # the fewest allowed
    ddim = make_scheduler("ddim", 50, "linear", "v_prediction")
    assert type(ddim) is DDIMScheduler and settings(ddim) == (50, "linear", "v_prediction")
    assert ddim.config.timestep_spacing == "trailing" and ddim.config.clip_sample is True
    assert make_scheduler("ddim", clip=False).config.clip_sample is False
    dpm = make_scheduler("dpmsolver++", 50)
    assert type(dpm) is DPMSolverMultistepScheduler and settings(dpm) == (50, "squaredcos_cap_v2", "epsilon")
    assert (dpm.config.algorithm_type, dpm.config.solver_order, dpm.config.thresholding) == ("dpmsolver++", 2, True)
    assert dpm.config.sample_max_value == 1.0 and dpm.config.lambda_min_clipped == -5.1
    linear = make_scheduler("dpmsolver++", beta_schedule="linear", clip=False)
    assert linear.config.thresholding is False and linear.config.lambda_min_clipped == -float("inf")
    for kw, message in (
        ({"beta_schedule": "cosine"}, "beta_schedule must be 'squaredcos_cap_v2' or 'linear', got 'cosine'"),
        ({"prediction_type": "sample"}, "prediction_type must be 'epsilon' or 'v_prediction', got 'sample'"),
        ({"num_train_timesteps": 1}, "num_train_timesteps must be >= 2, got 1"),
    ):
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            make_scheduler("ddpm", **kw)
    with pytest.raises(ConfigError, match="^unknown scheduler 'euler'; choose 'ddim', 'dpmsolver\\+\\+' or 'ddpm'$"):
        make_scheduler("euler")


def test_the_regression_target_is_the_noise_or_the_velocity_and_nothing_else() -> None:
    x0, noise, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.tensor([10, 600])
    assert regression_target(make_scheduler("ddpm"), x0, noise, t) is noise
    v = make_scheduler("ddpm", prediction_type="v_prediction")
    ac = v.alphas_cumprod[t].view(2, 1, 1, 1)
    assert torch.allclose(regression_target(v, x0, noise, t), ac.sqrt() * noise - (1 - ac).sqrt() * x0, atol=1e-6)
    other = SimpleNamespace(config=SimpleNamespace(prediction_type="sample"))
    with pytest.raises(ConfigError, match="^unsupported prediction_type 'sample'$"):
        regression_target(other, x0, noise, t)


def test_the_draws_are_made_on_the_generators_device_or_else_on_the_cpu() -> None:
    from gensis.generator.sampling import _draw_device

    assert _draw_device(None) == torch.device("cpu")
    assert _draw_device(torch.Generator().manual_seed(0)) == torch.device("cpu")
    meta = SimpleNamespace(device=torch.device("meta"))  # stands for a CUDA generator
    assert _draw_device(meta) == torch.device("meta")


class _Oracle(torch.nn.Module):
    """Knows every image: returns the exact target of the image whose embedding it is given."""

    def __init__(self, x0: torch.Tensor, emb: torch.Tensor, scheduler, noise: torch.Tensor | None = None) -> None:
        super().__init__()
        self.x0, self.emb, self.scheduler = x0, emb, scheduler
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x_t, t, emb, drop=None):
        which = (emb @ self.emb.T).argmax(1)
        x0 = self.x0[which]
        ac = self.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        noise = (x_t - ac.sqrt() * x0) / (1 - ac).sqrt()  # the noise that makes x_t from that image
        return regression_target(self.scheduler, x0, noise, t)


class _Ignores(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x_t, t, emb, drop=None):
        return torch.full_like(x_t, 0.5)


class _FlattenEncoder(torch.nn.Module):
    """Embedding = the normalized image itself, so a perfect reconstruction finds its source."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x.flatten(1)


def test_monitor_on_constructed_models(caplog) -> None:
    torch.manual_seed(0)
    u8 = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    all_emb = F.normalize(eval_transform(u8, (0.5,) * 3, (0.5,) * 3).flatten(1), dim=-1)
    held = torch.arange(0, 40, 4)
    x0 = u8[held].float() / 127.5 - 1
    sch = make_scheduler("ddpm", prediction_type="v_prediction")
    monitor = ConditioningMonitor(x0, all_emb[held], held, all_emb, sch, encoder=_FlattenEncoder(), seed=1)
    good = monitor.measure(_Oracle(x0, all_emb[held], sch))
    assert all(good[f"cond_gap_{b}"] > 90 for b in ("low", "mid", "high")), good
    assert good["monitor_top1"] == 100.0 and good["monitor_median_rank"] == 1
    assert good["monitor_top1_shuffled"] == 0.0  # the wrong image is reconstructed, not the source
    bad = monitor.measure(_Ignores())
    assert all(bad[f"cond_gap_{b}"] == 0 for b in ("low", "mid", "high"))
    with caplog.at_level(logging.WARNING, logger="gensis.generator"):
        monitor.check(bad, step=100, total_steps=10_000)  # too early to tell
        assert not caplog.records
        monitor.check(good, step=5000, total_steps=10_000)
        assert not caplog.records
        monitor.check(bad, step=5000, total_steps=10_000)
        monitor.check(bad, step=6000, total_steps=10_000)
    assert len(caplog.records) == 1 and "not following its condition" in caplog.records[0].getMessage()


def test_holdout_split() -> None:
    train, held = holdout_split(1000, 64, 128, seed=0)
    assert len(held) == 64 and len(train) == 936 and not set(train.tolist()) & set(held.tolist())
    assert torch.equal(holdout_split(1000, 64, 128, seed=0)[1], held)  # fixed by the seed
    assert len(holdout_split(1000, 500, 128, seed=0)[1]) == 100  # at most 10 %
    train, held = holdout_split(50, 64, 8, seed=0)  # 5 would be too few to read
    assert len(held) == 0 and len(train) == 50


def test_faithfulness_figures_on_constructed_embeddings() -> None:
    real = torch.eye(4)  # four orthogonal "images"
    labels = torch.tensor([0, 0, 1, 1])
    views = F.normalize(torch.tensor([[1.0, 0.2, 0, 0], [0.1, 1.0, 0, 0], [0, 0, 0.2, 1.0], [0, 0, 0.1, 1.0]]), dim=-1)
    src = torch.tensor([0, 1, 2, 3])
    r = retrieval(views, src, real)  # views 0, 1, 3 find their source; view 2 finds image 3 first
    assert r == {"retrieval_top1": 75.0, "retrieval_top5": 100.0, "retrieval_median_rank": 1}
    assert retrieval(views[:3], src[:3], real)["retrieval_top1"] == 66.67  # 2 of 3, to two decimals
    # Top-5 among 8 images, so that a source can miss it: the sources of views 0..3 have
    # 0, 1, 5 and 4 other images nearer (ranks 0, 1, 5, 4).
    e = torch.eye(8)
    ranked = F.normalize(
        torch.stack([e[0], 0.5 * e[1] + 0.6 * e[2], 0.3 * e[2] + 0.5 * e[3:].sum(0), 0.3 * e[3] + 0.5 * e[4:].sum(0)]),
        dim=-1,
    )
    assert retrieval(ranked, torch.arange(4), e) == {
        "retrieval_top1": 25.0,
        "retrieval_top5": 75.0,
        "retrieval_median_rank": 2,
    }  # lower median of 0, 1, 4, 5, plus 1
    assert retrieval(ranked[:3], torch.arange(3), e)["retrieval_top5"] == 66.67  # ranks 0, 1, 5: 2 of 3
    assert class_consistency(views, src, real, labels, k=1) == 100.0  # image 3 has view 2's label
    figures = view_figures(views, torch.zeros(4, 1, 3, 2, 2, dtype=torch.uint8), src, real, labels)
    assert "diversity_cosine" not in figures  # one view per source
    two = torch.stack([torch.zeros(3, 2, 2), torch.full((3, 2, 2), 255.0)]).to(torch.uint8)
    figures = view_figures(torch.eye(4)[[0, 1]], two[None], src[:1], real, None)
    assert figures["diversity_cosine"] == 1.0 and figures["diversity_pixel_rmse"] == 1.0
    assert versus_ceiling(
        {"retrieval_top1": 20.0, "class_consistency": 45.0}, {"retrieval_top1": 40.0, "class_consistency": 90.0}
    ) == {"retrieval_top1": 0.5, "class_consistency": 0.5}
    header, rows = faithfulness_table(
        {
            "retrieval_top1": 20.0,
            "ceiling": {"retrieval_top1": 40.0},
            "chance": {"retrieval_top1": 0.1},
            "versus_ceiling": {"retrieval_top1": 0.5},
        }
    )
    assert rows == [["source retrieval top-1 (%)", "20.0", "40.0", "-", "0.1", "0.5"]]


def test_the_faithfulness_table_header_and_a_report_without_chance_or_top1() -> None:
    header, rows = faithfulness_table(
        {"retrieval_top5": 60.0, "ceiling": {"retrieval_top5": 80.0}, "ceiling_crop": {"retrieval_top5": 90.0}}
    )
    assert header == [
        "figure",
        "generated views",
        "real stage-1 views (ceiling)",
        "real stage-1 crops",
        "chance",
        "generated / ceiling",
    ]
    # top-1 missing does not end the table; no chance and no ratio figures: "-"
    assert rows == [["source retrieval top-5 (%)", "60.0", "80.0", "90.0", "-", "-"]]


def test_ceiling_views_use_the_recorded_stage1_augmentation() -> None:
    cfg = build_config(PretrainConfig, {"preset": "digits"})
    aug, where = ceiling_augment(recorded_augment(_export_meta(cfg, 1)), 16)
    assert where.startswith("stage 1") and aug.global_crop_scale == (0.5, 1.0) and aug.hflip_p == 0.0
    _, where = ceiling_augment(None, 16)
    assert where.startswith("defaults")
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    views = real_views(images, aug, views=2)
    assert views.shape == (5, 2, 3, 16, 16) and views.dtype == torch.uint8
    assert not torch.equal(views[:, 0], views[:, 1])  # two different crops
