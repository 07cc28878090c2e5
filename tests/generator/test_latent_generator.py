"""Latent space: a tiny random AutoencoderKL saved by the test stands in for a pretrained VAE."""

from __future__ import annotations

import pytest
import torch
from _synthetic import write_npz
from diffusers import AutoencoderKL

import gensis
from gensis.bank import ViewBank
from gensis.config.schema import ModelConfig
from gensis.errors import GensisError
from gensis.models.backbones import build_encoder
from gensis.runtime.checkpoint import export_encoder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent")
    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
    )
    vae.save_pretrained(root / "vae")
    enc = root / "encoder.safetensors"
    export_encoder(
        enc,
        build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 16),
        {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"},
    )
    return root, enc, write_npz(root / "images.npz", 12, size=16)


def test_latent_generator_trains_generates_and_shows(tmp_path, setup) -> None:
    root, enc, data = setup
    gen = gensis.train_generator(
        {
            "model.spec": "tiny",
            "model.space": "latent",
            "model.vae": str(root / "vae"),
            "encoder": str(enc),
            "data.path": str(data),
            "out": str(tmp_path / "g"),
            "train.batch_size": 6,
            "train.epochs": 2,
            "train.progress": False,
            "data.cache_dir": None,
        }
    )
    assert gen.steps == 4 and gen.final_loss == gen.final_loss
    result = gensis.generate(
        generator=str(gen.out),
        data_path=str(data),
        out=str(tmp_path / "bank"),
        views_per_image=2,
        interpolations_per_image=1,
        steps=2,
        progress=False,
        cache_dir=None,
    )
    bank = ViewBank(tmp_path / "bank")
    assert bank.index.resolution == 16 and bank.views_of(0).shape == (2, 3, 16, 16)
    assert result.quality["views"] == 24
    pics = gensis.show(
        generator=str(gen.out),
        data_path=str(data),
        out=str(tmp_path / "pics"),
        rows=2,
        views=2,
        alphas=3,
        steps=2,
        tile_px=16,
        cache_dir=None,
    )
    assert len(pics) == 2


def test_latent_space_needs_a_loadable_vae(tmp_path, setup) -> None:
    root, enc, data = setup
    base = {
        "model.spec": "tiny",
        "encoder": str(enc),
        "data.path": str(data),
        "train.progress": False,
        "data.cache_dir": None,
    }
    with pytest.raises(GensisError, match="model.vae: an AutoencoderKL folder or hub id is required"):
        gensis.train_generator({**base, "model.space": "latent", "out": str(tmp_path / "a")})
    with pytest.raises(GensisError, match="model.vae: cannot load an AutoencoderKL from"):
        gensis.train_generator(
            {**base, "model.space": "latent", "model.vae": str(tmp_path / "novae"), "out": str(tmp_path / "b")}
        )
    with pytest.raises(GensisError, match="use model.space=latent"):
        gensis.train_generator({**base, "data.resolution": 128, "out": str(tmp_path / "c")})
