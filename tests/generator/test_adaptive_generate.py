"""GenView's adaptive view generation in gensis generate, and gensis foreground."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _synthetic import tiny_generator, write_npz
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import gensis
import gensis.api
from gensis.bank import ViewBank
from gensis.cli import main
from gensis.config.schema import ForegroundConfig, GenerateConfig, ModelConfig
from gensis.errors import ConfigError
from gensis.foreground import ForegroundPCA
from gensis.generator import adaptive_noise
from gensis.models.backbones import build_encoder
from gensis.runtime.checkpoint import export_encoder, load_encoder

EDGES, LEVELS = [0.5, 1.0], [0.0, 0.5]  # 1x1 feature maps: every ratio is 0 or 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return tiny_generator(tmp_path_factory.mktemp("adaptive"))


def _generate(trained, out, **extra):
    _, data, gen = trained
    settings = {
        "generator": str(gen),
        "data_path": str(data),
        "out": str(out),
        "views_per_image": 2,
        "interpolations_per_image": 1,
        "shard_size": 5,
        "steps": 2,
        "batch_size": 7,
        "progress": False,
        "cache_dir": None,
        "quality_sources": 4,
        **extra,
    }
    return gensis.generate(settings)


ADAPTIVE = {"adaptive_noise": True, "noise_edges": EDGES, "noise_levels": LEVELS, "foreground.fit_images": 8}


def test_adaptive_views_follow_the_foreground_levels(tmp_path, trained) -> None:
    _generate(trained, tmp_path / "plain")
    _generate(trained, tmp_path / "ada", **ADAPTIVE)
    fg = load_file(str(tmp_path / "ada" / "foreground.safetensors"))
    ratio, level = fg["ratio"], fg["level"]
    assert ratio.shape == level.shape == (12,)
    pca = ForegroundPCA.load(tmp_path / "ada" / "foreground_pca.safetensors")
    assert pca.quantile == pytest.approx(0.65)
    # By hand: an 8-px image gives a 1x1 feature map, the encoder's pooled feature itself; it is
    # foreground (ratio 1) when its signed projection on the saved component passes the saved
    # threshold. Edges [0.5, 1.0] are right-inclusive: ratio 0 -> level 0.0, ratio 1 -> level 0.5.
    enc_path, data, _ = trained
    encoder = load_encoder(enc_path)
    images = torch.from_numpy(np.load(data)["images"]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        feats = encoder((images - 0.5) / 0.5)  # the encoder's recorded mean and std: 0.5
    fg_by_hand = ((feats - pca.mean) @ pca.component) * pca.sign > pca.threshold
    assert torch.equal(ratio, fg_by_hand.float())
    assert torch.equal(level, torch.where(fg_by_hand, 0.5, 0.0))
    assert {0.0, 0.5} <= set(level.tolist())  # both bins used: the comparison below means something

    plain, ada = ViewBank(tmp_path / "plain"), ViewBank(tmp_path / "ada")
    assert plain.index.settings.get("adaptive_noise") is None  # off: the settings of older banks
    s = ada.index.settings
    assert s["adaptive_noise"] is True and s["noise_edges"] == EDGES and s["noise_levels"] == LEVELS
    assert (s["foreground_quantile"], s["foreground_sign"], s["foreground_fit_images"]) == (0.65, "auto", 8)
    for i in range(12):
        a, b = plain.entries(i), ada.entries(i)
        assert torch.equal(a["partner"], b["partner"]) and torch.equal(a["alpha"], b["alpha"])
        view = a["partner"] < 0
        # Interpolations are not perturbed and the sampling noise is untouched by the perturbation.
        assert torch.equal(a["images"][~view], b["images"][~view])
        if level[i] == 0:
            assert torch.equal(a["images"][view], b["images"][view]), i
        else:
            assert not torch.equal(a["images"][view], b["images"][view]), i


def test_adaptive_bank_resumes_with_the_saved_levels(tmp_path, trained, monkeypatch) -> None:
    _generate(trained, tmp_path / "one", **ADAPTIVE)
    _generate(trained, tmp_path / "two", shards=[1], **ADAPTIVE)
    before = (tmp_path / "two" / "foreground.safetensors").read_bytes()

    def no_refit(*args, **kwargs):
        raise AssertionError("the levels of a started bank are read back, not recomputed")

    monkeypatch.setattr("gensis.generator.adaptive.foreground_noise_levels", no_refit)
    assert _generate(trained, tmp_path / "two", **ADAPTIVE).n_images == 5 * 3 + 2 * 3  # shards 0 and 2
    assert (tmp_path / "two" / "foreground.safetensors").read_bytes() == before
    one, two = ViewBank(tmp_path / "one"), ViewBank(tmp_path / "two")
    for i in range(12):
        a, b = one.entries(i), two.entries(i)
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="other settings"):  # adaptive settings are part of the bank
        _generate(trained, tmp_path / "two", **{**ADAPTIVE, "noise_levels": [0.0, 0.3]})
    with pytest.raises(ConfigError, match="other settings"):
        _generate(trained, tmp_path / "two")


def test_generate_config_of_adaptive_noise_and_external() -> None:
    base = {"generator": "g", "data_path": "d", "out": "o"}
    cfg = GenerateConfig(**base)
    assert cfg.noise_edges == adaptive_noise.DEFAULT_EDGES and cfg.noise_levels == adaptive_noise.DEFAULT_LEVELS
    assert cfg.adaptive_noise is False and cfg.foreground.quantile == 0.65
    for bad, match in [
        ({"noise_levels": [0.0, 0.1]}, "one level per bin"),
        ({"noise_edges": [0.5, 0.4, 0.6, 0.8, 1.0]}, "increase strictly"),
        ({"noise_edges": [0.2, 0.4, 0.6, 0.8, 0.9]}, "end at >= 1"),
        ({"noise_levels": [0.0, -0.1, 0.2, 0.3, 0.4]}, ">= 0"),
        ({"external": "pipe", "encoder": "e"}, "exactly one"),
        ({"generator": None}, "exactly one"),
        ({"generator": None, "external": "pipe"}, "needs encoder="),
    ]:
        with pytest.raises(ValueError, match=match):
            GenerateConfig(**{**base, **bad})


def test_foreground_command_writes_pca_ratios_and_picture(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    enc = tmp_path / "encoder.safetensors"  # 32 px: 4x4 feature maps
    export_encoder(
        enc,
        build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 32),
        {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"},
    )
    data = write_npz(tmp_path / "images.npz", 10, size=32)
    out = tmp_path / "fg"
    code = main(
        [
            "foreground",
            f"encoder={enc}",
            f"data_path={data}",
            f"out={out}",
            "rows=4",
            "fit_images=6",
            "progress=false",
            "device=cpu",
            "cache_dir=null",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    for name in ("foreground_pca.safetensors", "foreground.safetensors", "foreground.png"):
        assert (out / name).is_file() and name in printed
    ratio = load_file(str(out / "foreground.safetensors"))["ratio"]
    assert ratio.shape == (10,) and bool(((ratio >= 0) & (ratio <= 1)).all())
    with safe_open(str(out / "foreground.safetensors"), framework="pt") as f:
        assert len(json.loads(f.metadata()["ids"])) == 10
    with Image.open(out / "foreground.png") as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]
    pca = ForegroundPCA.load(out / "foreground_pca.safetensors")
    assert pca.mean.shape == pca.component.shape == (512,)
    assert ForegroundConfig(encoder="e", data_path="d", out="o").quantile == 0.65
    flipped = gensis.api.foreground(
        encoder=str(enc),
        data_path=str(data),
        out=str(tmp_path / "neg"),
        rows=2,
        sign="negative",
        progress=False,
        device="cpu",
        cache_dir=None,
    )
    assert ForegroundPCA.load(flipped[0]).sign == -1
