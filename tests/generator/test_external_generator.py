"""gensis generate external=: a local diffusers image-variation pipeline fills the view bank.

The pipelines are tiny and randomly initialized, built and saved here: nothing is downloaded.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers  # noqa: F401  (the tiny CLIP parts; the test extra installs it)
from _synthetic import random_encoder, write_npz

import gensis
from gensis.bank import ViewBank
from gensis.cli import main
from gensis.errors import CheckpointError, ConfigError
from gensis.generator.external import pipeline_sha256
from gensis.runtime.io import file_sha256  # noqa: E402

EMBED = 16  # CLIP projection size


def _parts():
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[32, 32],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
    )
    vision = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=16,
            projection_dim=EMBED,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=16,
            patch_size=8,
        )
    )
    processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)
    unet_kw = dict(
        block_out_channels=(32, 32),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=4,
    )
    return vae, vision, processor, scheduler, unet_kw, UNet2DConditionModel


def _variation_pipeline(folder):
    """StableDiffusionImageVariationPipeline: conditioned on images only (16 px output)."""
    from diffusers import StableDiffusionImageVariationPipeline

    vae, vision, processor, scheduler, unet_kw, unet_cls = _parts()
    unet = unet_cls(**unet_kw, cross_attention_dim=EMBED)
    pipe = StableDiffusionImageVariationPipeline(
        vae=vae,
        image_encoder=vision,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=processor,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def _unclip_pipeline(folder):
    """StableUnCLIPImg2ImgPipeline: takes image embeddings, so it can interpolate."""
    from diffusers import DDPMScheduler, StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vae, vision, processor, scheduler, unet_kw, unet_cls = _parts()
    vocab = folder.parent / "vocab"
    vocab.mkdir()
    (vocab / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}))
    (vocab / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        vocab_file=str(vocab / "vocab.json"), merges_file=str(vocab / "merges.txt"), model_max_length=8
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=3,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=8,
            projection_dim=EMBED,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = unet_cls(
        **unet_kw,
        cross_attention_dim=16,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * EMBED,
    )
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=processor,
        image_encoder=vision,
        image_normalizer=StableUnCLIPImageNormalizer(EMBED),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tokenizer,
        text_encoder=text,
        unet=unet,
        scheduler=scheduler,
        vae=vae,
    )
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    return random_encoder(root / "encoder.safetensors"), write_npz(root / "images.npz", 5, size=8)


def _settings(sources, pipe, out, **extra):
    enc, data = sources
    return {
        "external": str(pipe),
        "encoder": str(enc),
        "data_path": str(data),
        "out": str(out),
        "views_per_image": 2,
        "interpolations_per_image": 0,
        "shard_size": 3,
        "steps": 2,
        "batch_size": 4,
        "progress": False,
        "cache_dir": None,
        "quality_sources": 5,
        "device": "cpu",
        **extra,
    }


def test_image_variation_pipeline_fills_the_bank(tmp_path, sources, capsys) -> None:
    pipe = _variation_pipeline(tmp_path / "pipe")
    out = tmp_path / "bank"
    args = [f"{k}={'null' if v is None else v}" for k, v in _settings(sources, pipe, out).items()]
    assert main(["generate", *args]) == 0
    assert "10 new images" in capsys.readouterr().out
    bank = ViewBank(out)
    assert bank.complete and bank.index.n_shards == 2 and bank.index.resolution == 8
    assert bank.index.generator_sha256 == pipeline_sha256(pipe)
    assert bank.index.encoder_sha256 == file_sha256(sources[0])
    assert bank.index.views_per_image == 2 and bank.index.interpolations_per_image == 0
    for i in range(5):
        e = bank.entries(i)
        assert e["images"].shape == (2, 3, 8, 8) and e["images"].dtype == torch.uint8
        assert torch.equal(e["partner"], torch.tensor([-1, -1])) and torch.equal(e["source"], torch.tensor([i, i]))
    assert not torch.equal(bank.views_of(0)[0], bank.views_of(0)[1])  # two draws, two views
    assert json.loads((out / "quality.json").read_text())["sources"] == 5
    again = gensis.generate(_settings(sources, pipe, tmp_path / "again"))  # same seed, same bank
    assert all(torch.equal(bank.views_of(i), ViewBank(again.bank).views_of(i)) for i in range(5))
    with pytest.raises(ConfigError, match="interpolations_per_image: .* takes no image embeddings"):
        gensis.generate(_settings(sources, pipe, tmp_path / "b2", interpolations_per_image=1))
    with pytest.raises(ConfigError, match="adaptive_noise"):
        gensis.generate(_settings(sources, pipe, tmp_path / "b3", adaptive_noise=True))
    with pytest.raises(CheckpointError, match="no model_index.json"):
        gensis.generate(_settings(sources, tmp_path / "bank", tmp_path / "b4"))  # a folder, but no pipeline


def test_unclip_pipeline_interpolates_on_its_image_embeddings(tmp_path, sources) -> None:
    pipe = _unclip_pipeline(tmp_path / "pipe")
    result = gensis.generate(
        _settings(sources, pipe, tmp_path / "bank", views_per_image=1, interpolations_per_image=1, sampler="ddim")
    )
    assert result.n_images == 10
    bank = ViewBank(tmp_path / "bank")
    assert bank.index.generator_sha256 == pipeline_sha256(pipe)
    for i in range(5):
        images, partner, alpha = bank.interpolations_of(i)
        assert images.shape == (1, 3, 8, 8) and images.dtype == torch.uint8
        assert partner.item() != i and 0 <= partner.item() < 5 and 0.3 <= alpha.item() <= 0.7
        assert bank.views_of(i).shape == (1, 3, 8, 8)
