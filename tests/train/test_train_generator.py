"""Stage 2 end to end on tiny data: train-generator, its run folder, exact resume, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from _synthetic import write_npz
from safetensors import safe_open
from safetensors.torch import load_file

import gensis
from gensis.cli import main
from gensis.config.schema import ModelConfig
from gensis.errors import GensisError
from gensis.models.backbones import build_encoder
from gensis.runtime.checkpoint import export_encoder, load_state

TINY = {
    "model.spec": "tiny",
    "train.batch_size": 8,
    "train.epochs": 2,
    "train.warmup_steps": 2,
    "train.log_every": 1,
    "train.progress": False,
    "train.ema_decay": 0.9,
    "data.cache_dir": None,
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8)
    enc_path = root / "encoder.safetensors"
    export_encoder(enc_path, encoder, {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"})
    return enc_path, write_npz(root / "images.npz", 24, size=8)


def test_train_generator_run_folder_and_export(tmp_path, setup) -> None:
    enc, data = setup
    out = tmp_path / "g"
    result = gensis.train_generator({**TINY, "encoder": str(enc), "data.path": str(data), "out": str(out)})
    assert result.steps == 6 and result.final_loss is not None and result.final_loss == result.final_loss
    for rel in (
        "config.yaml",
        "metrics.jsonl",
        "train.log",
        "checkpoints/last.pt",
        "embeddings.safetensors",
        "exported/generator.safetensors",
    ):
        assert (out / rel).is_file(), rel
    emb = load_file(str(out / "embeddings.safetensors"))["embeddings"]
    assert emb.shape == (24, 512) and torch.allclose(emb.norm(dim=1), torch.ones(24), atol=1e-5)
    with safe_open(str(out / "exported" / "generator.safetensors"), framework="pt") as f:
        meta = f.metadata()
    spec = json.loads(meta["spec"])
    assert spec["embed_dim"] == 512 and spec["sample_size"] == 8 and meta["format"] == "gensis.generator/1"
    assert json.loads(meta["scheduler"])["num_train_timesteps"] == 1000


@pytest.mark.parametrize("extra", [{}, {"train.hflip_p": 0.5, "train.vflip_p": 0.5}], ids=["plain", "flips"])
def test_train_generator_resume_is_exact(tmp_path, setup, extra) -> None:
    enc, data = setup
    common = {**TINY, "encoder": str(enc), "data.path": str(data), "train.epochs": 3, **extra}
    gensis.train_generator({**common, "out": str(tmp_path / "full")})
    gensis.train_generator({**common, "out": str(tmp_path / "part"), "train.max_steps": 4})
    gensis.train_generator({**common, "out": str(tmp_path / "part")}, resume=True)
    a = load_state(tmp_path / "full" / "checkpoints" / "last.pt")
    b = load_state(tmp_path / "part" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 9
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(x, y) for x, y in zip(a["ema"], b["ema"], strict=True))


def test_train_generator_bad_input(tmp_path, setup, capsys) -> None:
    enc, data = setup
    with pytest.raises(GensisError, match="encoder not found"):
        gensis.train_generator(
            {**TINY, "encoder": str(tmp_path / "none"), "data.path": str(data), "out": str(tmp_path / "x")}
        )
    with pytest.raises(GensisError, match="<= 96 px"):
        gensis.train_generator(
            {**TINY, "encoder": str(enc), "data.path": str(data), "data.resolution": 128, "out": str(tmp_path / "y")}
        )
    code = main(["train-generator", f"data.path={data}", "model.spec=huge", f"encoder={enc}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "model.spec" in err[0]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_cross_attention_generator_round_trip(tmp_path, setup) -> None:
    from gensis.generator.synthesizer import Synthesizer

    enc, data = setup
    result = gensis.train_generator(
        {
            **TINY,
            "encoder": str(enc),
            "data.path": str(data),
            "out": str(tmp_path / "x"),
            "model.conditioning": "cross_attention",
            "train.epochs": 1,
        }
    )
    synth = Synthesizer(result.generator_path, torch.device("cpu"))
    assert synth.unet.spec.conditioning == "cross_attention"
    images = synth.images(
        torch.randn(3, 512), sampler="ddim", steps=2, guidance_scale=1.5, generator=torch.Generator().manual_seed(0)
    )
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.uint8


def test_ema_warms_up_so_short_runs_export_trained_weights(tmp_path, setup) -> None:
    from gensis.generator.synthesizer import Synthesizer
    from gensis.train.generator import ema_decay

    assert ema_decay(0.9999, 0) == pytest.approx(0.1) and ema_decay(0.9999, 10**7) == 0.9999
    enc, data = setup
    result = gensis.train_generator(
        {
            **TINY,
            "encoder": str(enc),
            "data.path": str(data),
            "out": str(tmp_path / "e"),
            "train.ema_decay": 0.9999,
            "train.epochs": 3,
        }
    )
    raw = load_state(tmp_path / "e" / "checkpoints" / "last.pt")["model"]
    exported = Synthesizer(result.generator_path, torch.device("cpu")).unet.state_dict()
    torch.manual_seed(0)  # the initial weights of this run
    from gensis.config.overrides import build_config
    from gensis.config.schema import TrainGeneratorConfig
    from gensis.generator.unet import build_unet

    cfg = build_config(TrainGeneratorConfig, {**TINY, "encoder": str(enc)})
    init = build_unet(cfg, 8, 3, 512).state_dict()
    key = "unet.conv_in.weight"
    # The exported EMA is much closer to the trained weights than to the initialization.
    assert (exported[key] - raw[key]).norm() < 0.5 * (exported[key] - init[key]).norm()


def test_a_moved_folder_finds_the_encoder_its_generator_records(tmp_path, setup) -> None:
    """issue 38: the generator records the encoder relative to itself too, so a moved run folder
    (its encoder inside) still samples; the sha256 check stays."""
    import shutil

    from gensis.generator.synthesizer import Synthesizer

    enc, data = setup
    before = tmp_path / "before"
    before.mkdir()
    shutil.copy(enc, before / "encoder.safetensors")
    gensis.train_generator(
        {
            **TINY,
            "encoder": str(before / "encoder.safetensors"),
            "data.path": str(data),
            "out": str(before / "g"),
            "train.epochs": 1,
        }
    )
    after = tmp_path / "after"
    before.rename(after)
    synth = Synthesizer(after / "g", "cpu")
    assert synth.encoder_path() == after / "encoder.safetensors"
