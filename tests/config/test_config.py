"""Config presets, overrides and the rejection of unknown keys and bad values."""

from __future__ import annotations

import pytest

from gensis.config import EvalConfig, PretrainConfig
from gensis.config.overrides import build_config, parse_overrides, valid_keys
from gensis.errors import ConfigError


def test_presets_and_overrides_resolve() -> None:
    cfg = build_config(
        PretrainConfig, parse_overrides(["preset=cifar10", "optim.lr=0.3", "augment.global_crop_scale=[0.2,1]"])
    )
    assert cfg.preset == "cifar10" and cfg.model.backbone == "resnet18" and cfg.model.cifar_stem
    assert cfg.optim.lr == 0.3 and cfg.augment.global_crop_scale == (0.2, 1.0)
    default = build_config(PretrainConfig, {})
    assert default.preset == "default" and default.augment.n_local_crops == 8 and default.dino.out_dim == 65536


@pytest.mark.parametrize(
    "items, fragment",
    [
        (["optim.lrr=1"], "unknown key 'optim.lrr'; valid keys: optim.name, optim.lr"),
        (["nope=1"], "unknown key 'nope'; valid keys: out, preset"),
        (["train.epochs=0"], "train.epochs: Input should be greater than or equal to 1"),
        (["augment.global_crop_scale=[0.9,0.2]"], "augment.global_crop_scale must satisfy"),
        (["augment.hflip_p=1.5"], "augment.hflip_p: Input should be less than or equal to 1"),
        (["preset=imagenet-xl"], "unknown preset 'imagenet-xl'"),
        (["optim=3"], "'optim' is a section"),
        (["optim.name=lamb"], "optim.name: Input should be 'adamw' or 'sgd'"),
        (["train.batch_size=abc"], "train.batch_size"),
        (["epochs"], "expected key=value"),
    ],
)
def test_bad_settings_give_one_line_errors(items: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(PretrainConfig, parse_overrides(items))
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_required_keys_are_reported() -> None:
    with pytest.raises(ConfigError, match="encoder: Field required"):
        build_config(EvalConfig, {"train_path": "a", "test_path": "b"})


def test_valid_keys_lists_nested_fields() -> None:
    keys = valid_keys(PretrainConfig)
    assert "dino.teacher_temp" in keys and "train.max_steps" in keys and "out" in keys


def test_yaml_file_is_overridden_by_settings(tmp_path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("preset: cifar10\ntrain:\n  epochs: 7\n  batch_size: 64\n")
    cfg = build_config(PretrainConfig, {"train.epochs": 3}, config_file=f)
    assert cfg.preset == "cifar10" and cfg.train.epochs == 3 and cfg.train.batch_size == 64
    f.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_config(PretrainConfig, {}, config_file=f)


@pytest.mark.parametrize("preset", ["cifar10", "cifar10-vit", "96px", "digits", "default"])
def test_every_preset_builds_and_trains_one_step(preset: str) -> None:
    import torch

    from gensis.augment import MultiCropAugment
    from gensis.data.batches import step_generator
    from gensis.models.backbones import build_encoder
    from gensis.ssl.dino import DINO

    cfg = build_config(PretrainConfig, {"preset": preset, "dino.out_dim": 64})
    model = DINO(build_encoder(cfg.model, cfg.data.resolution), cfg.dino)
    res = cfg.data.resolution
    images = torch.randint(0, 256, (2, 3, res, res), dtype=torch.uint8)
    views = MultiCropAugment(cfg.augment)(images, step_generator(0, 0))
    assert len(views) == 2 + cfg.augment.n_local_crops
    if preset == "default":  # ViT-S at 224 px with 8 local crops: forward only, to stay fast
        views = [views[0][:1], views[2][:1]]
        with torch.no_grad():
            out, _ = model.student(views)
        assert out[0].shape == (1, 64)
        return
    loss, _ = model(views, epoch=0)
    loss.backward()
    assert torch.isfinite(loss)


def test_a_nested_yaml_stage_section_means_what_key_value_means(tmp_path) -> None:
    """issue 38: `pretrain: {train: {epochs: 5}}` in --config was refused with a garbled union error."""
    import yaml

    from gensis.config.overrides import build_config
    from gensis.config.schema import PipelineConfig

    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"pretrain": {"train": {"epochs": 5}, "model": {"backbone_kwargs": {"drop_path_rate": 0.1}}}})
    )
    from_file = build_config(PipelineConfig, {}, use_presets=False, config_file=path)
    from_keys = build_config(
        PipelineConfig,
        {"pretrain.train.epochs": 5, "pretrain.model.backbone_kwargs.drop_path_rate": 0.1},
        use_presets=False,
    )
    assert from_file.pretrain == from_keys.pretrain == {"train.epochs": 5, "model.backbone_kwargs.drop_path_rate": 0.1}


def test_backbone_kwargs_stay_one_value_however_they_are_given() -> None:
    """A ``backbone_kwargs`` dict replaces the preset's whether it comes nested or as a dotted key
    (the API and the command line then agree; a merge would keep the preset's patch_size)."""
    from gensis.config.overrides import flatten

    kwargs = {"drop_path_rate": 0.2}
    assert flatten({"model": {"backbone_kwargs": kwargs}}) == {"model.backbone_kwargs": kwargs}
    assert flatten({"model.backbone_kwargs": kwargs}) == {"model.backbone_kwargs": kwargs}
    assert flatten({"model": {"backbone": "vit_tiny_patch16_224"}}) == {"model.backbone": "vit_tiny_patch16_224"}
