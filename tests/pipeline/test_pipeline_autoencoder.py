"""``gensis run`` with a latent generator and no outside VAE: the pipeline trains its own
autoencoder, and the stage is skipped, resumed and refused like every other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _synthetic import write_npz

import gensis
from gensis.errors import ConfigError

SMALL_DINO = {
    "model.backbone": "resnet10t",
    "dino.out_dim": 64,
    "dino.hidden_dim": 64,
    "dino.bottleneck_dim": 32,
    "train.batch_size": 32,
    "train.epochs": 1,
    "train.knn_every": 0,
    "train.log_every": 1,
}
AE = {
    "model.block_out_channels": [8, 16],
    "train.crop_size": 8,
    "train.batch_size": 8,
    "train.epochs": 1,
    "train.log_every": 1,
    "train.eval_every": 4,
}


@pytest.fixture(scope="module")
def latent_pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent-pipe")
    settings = {
        "out": str(root / "run"),
        "preset": "digits",
        "progress": False,
        "data.path": str(write_npz(root / "train.npz", 64, seed=0)),
        "data.cache_dir": None,
        "pretrain": SMALL_DINO,
        "autoencoder": AE,
        "control": False,
        "pictures": False,
        "generator": {"model.spec": "tiny", "model.space": "latent", "train.batch_size": 16, "train.epochs": 1},
        "generate": {"views_per_image": 1, "interpolations_per_image": 1, "steps": 2},
        "gen_dino": {"train.epochs": 1, "gen.lambda_dis": 0.5},
    }
    torch.manual_seed(0)
    return settings, gensis.run(settings)


def test_the_pipeline_trains_its_own_autoencoder_and_the_generator_uses_it(latent_pipeline) -> None:
    from safetensors import safe_open

    settings, result = latent_pipeline
    root = Path(result["out"])
    folder = root / "autoencoder" / "exported" / "autoencoder"
    meta = json.loads((folder / "gensis.json").read_text())
    assert result["stages"]["autoencoder"]["last"] == "ran" and meta["resolution"] == 16
    assert list(result["stages"]).index("autoencoder") == list(result["stages"]).index("pretrain") + 1
    with safe_open(str(root / "generator" / "exported" / "generator.safetensors"), "pt") as f:
        gen = f.metadata()
    assert gen["vae_sha256"] == meta["sha256"] and Path(gen["vae"]) == folder.resolve()
    report = (root / "report.md").read_text()
    assert "## The autoencoder: does its latent space keep what the encoder sees?" in report
    assert f"| PSNR (dB) | {meta['quality']['psnr_db']} |" in report
    assert "autoencoder/reconstructions.png" in report and (root / "autoencoder" / "reconstructions.png").is_file()
    assert "**autoencoder**: reconstructions of 6 held-out images: PSNR" in report


def test_rerun_skips_it_and_an_interrupted_one_resumes(latent_pipeline) -> None:
    settings, first = latent_pipeline
    again = gensis.run(settings)
    assert again["stages"]["autoencoder"]["last"] == "skipped"
    folder = Path(first["out"]) / "autoencoder" / "exported" / "autoencoder"
    digest = json.loads((folder / "gensis.json").read_text())["sha256"]
    shutil.rmtree(folder)  # as if stopped after its last checkpoint, before the export
    resumed = gensis.run(settings)
    assert resumed["stages"]["autoencoder"]["last"] == "resumed"
    # the same model: the generator accepts it
    assert json.loads((folder / "gensis.json").read_text())["sha256"] == digest
    assert resumed["stages"]["train-generator"]["last"] == "skipped"


def test_other_autoencoder_settings_are_refused_before_any_work(latent_pipeline) -> None:
    settings, _ = latent_pipeline
    config = (Path(settings["out"]) / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"autoencoder: .* other settings \(model.latent_channels\)"):
        gensis.run({**settings, "autoencoder": {**AE, "model.latent_channels": 3}})
    assert (Path(settings["out"]) / "config.yaml").read_text() == config
    with pytest.raises(ConfigError, match="autoencoder: unknown key 'train.epoch'"):
        gensis.run({**settings, "autoencoder": {"train.epoch": 2}})
    with pytest.raises(ConfigError, match="autoencoder: settings given, but no autoencoder is trained"):
        gensis.run(
            {**settings, "out": str(Path(settings["out"]).parent / "pixel"), "generator": {"model.spec": "tiny"}}
        )


@pytest.mark.parametrize(
    "preset, generator, latent",
    [
        ("histology", {}, True),  # H&E at 96 px: latent, by measurement (docs/RESULTS.md)
        ("histology-224", {}, True),
        ("96px", {}, False),
        ("histology", {"model.space": "pixel", "model.spec": "pixel96"}, False),  # pixel96 on request
    ],
)
def test_which_presets_train_their_own_autoencoder(tmp_path, preset, generator, latent) -> None:
    from gensis.config.overrides import build_config
    from gensis.config.schema import PipelineConfig
    from gensis.pipeline import stage_configs

    data = write_npz(tmp_path / "d.npz", 16)
    cfg = build_config(
        PipelineConfig,
        {"preset": preset, "out": str(tmp_path / "run"), "data.path": str(data), "generator": generator},
        use_presets=False,
    )
    stages = stage_configs(cfg)
    assert (stages.autoencoder is not None, stages.generator.model.space == "latent") == (latent, latent)
    if latent:
        assert Path(stages.generator.model.vae) == tmp_path / "run" / "autoencoder" / "exported" / "autoencoder"
