"""The latent space: its downsample factor, and load_vae's folders, hub ids and refusals.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from gensis.errors import CheckpointError


def test_the_latent_downsample_factor_halves_once_per_level_but_the_last() -> None:
    """An AutoencoderKL with L levels of block_out_channels downsamples L - 1 times: a factor 2^(L - 1),
    1, 2, 4, 8 for 1 to 4 levels (a 64-px image has 8-px latents with 4 levels, not 64 / 6)."""
    from gensis.autoencoder.latent import downsample_factor

    for levels, factor in ((1, 1), (2, 2), (3, 4), (4, 8)):
        vae = SimpleNamespace(config=SimpleNamespace(block_out_channels=[8] * levels))
        assert downsample_factor(vae) == factor


def _fake_autoencoder_loader(monkeypatch, fail: Exception | None = None) -> list:
    """AutoencoderKL.from_pretrained replaced by one that records its arguments and returns a small
    trainable module (or raises ``fail``)."""
    import diffusers

    calls = []

    def from_pretrained(name, **kwargs):
        calls.append((name, kwargs))
        if fail is not None:
            raise fail
        return torch.nn.Linear(2, 2)

    monkeypatch.setattr(diffusers.AutoencoderKL, "from_pretrained", from_pretrained)
    return calls


def _autoencoder_folder(folder):
    folder.mkdir()
    (folder / "config.json").write_text('{"_class_name": "AutoencoderKL"}')
    return folder


def test_load_vae_freezes_the_autoencoder_on_the_device_asked_for_and_looks_in_the_cache_only(
    tmp_path, monkeypatch
) -> None:
    """A folder loads with low_cpu_mem_usage=False (no accelerate needed, none of diffusers' warnings
    about it), a hub id from the local hub cache only (local_files_only=True: no network); either way the
    model comes back on ``device`` ("meta" standing for a GPU), in eval mode, with no parameter trained."""
    from gensis.autoencoder.latent import load_vae

    calls = _fake_autoencoder_loader(monkeypatch)
    folder = _autoencoder_folder(tmp_path / "vae")
    for name, kwargs in ((str(folder), {"low_cpu_mem_usage": False}), ("org/vae", {"local_files_only": True})):
        calls.clear()
        vae = load_vae(name, "meta")
        assert [(str(n), k) for n, k in calls] == [(name, kwargs)]
        assert not vae.training and all(p.device.type == "meta" and not p.requires_grad for p in vae.parameters())


def test_load_vae_refusals_name_the_key_and_the_weights_file(tmp_path, monkeypatch) -> None:
    """A folder that is not an autoencoder, or whose weights diffusers cannot load, is one CheckpointError
    line naming model.vae (the default key), the weights file (the folder when it has none) and the first
    line of diffusers' error."""
    from gensis.autoencoder.latent import load_vae

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError) as refused:
        load_vae(str(empty))
    assert str(refused.value) == f"model.vae: {empty} holds no config.json: not an AutoencoderKL folder"
    _fake_autoencoder_loader(monkeypatch, fail=RuntimeError("bad weights\n  at byte 8"))
    folder = _autoencoder_folder(tmp_path / "vae")
    with pytest.raises(CheckpointError) as refused:
        load_vae(str(folder))
    assert str(refused.value) == f"model.vae: {folder}: not loadable as an AutoencoderKL (bad weights)"
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError) as refused:
        load_vae(str(folder))
    assert str(refused.value) == (
        f"model.vae: {folder / 'diffusion_pytorch_model.safetensors'}: not loadable as an AutoencoderKL (bad weights)"
    )


def test_load_vae_refuses_a_file_a_run_folder_of_another_kind_and_a_corrupt_config(tmp_path) -> None:
    """What is not an autoencoder folder is refused in one line naming model.vae and the path: a file
    (a .safetensors one called a gensis encoder or generator file), a stage-1 or train-generator run folder
    (told apart by exported/encoder.safetensors or exported/generator.safetensors), and a config.json that
    is not JSON (with the first line of the parser's error)."""
    from gensis.autoencoder.latent import load_vae

    def refusal(path) -> str:
        with pytest.raises(CheckpointError) as refused:
            load_vae(str(path))
        return str(refused.value)

    folder_rule = (
        "an AutoencoderKL is a folder with config.json and weights "
        "(save_pretrained output or a train-autoencoder run folder)"
    )
    for name, kind in (("enc.safetensors", " (a gensis encoder or generator file)"), ("vae.bin", "")):
        (tmp_path / name).write_bytes(b"x")
        assert refusal(tmp_path / name) == f"model.vae: {tmp_path / name} is a file{kind}; {folder_rule}"
    for inner, kind in (
        ("encoder", "a stage-1 run folder (an encoder)"),
        ("generator", "a train-generator run folder"),
    ):
        run = tmp_path / inner
        (run / "exported").mkdir(parents=True)
        (run / "exported" / f"{inner}.safetensors").write_bytes(b"x")
        assert refusal(run) == (
            f"model.vae: {run} is {kind}, not an autoencoder; give a train-autoencoder "
            "run folder or an AutoencoderKL folder"
        )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("not json")
    assert refusal(broken) == (
        f"model.vae: {broken / 'config.json'}: corrupt (Expecting value: line 1 column 1 (char 0))"
    )


def test_an_autoencoder_config_of_another_class_is_refused_and_one_without_a_class_is_taken(tmp_path) -> None:
    """config.json names the diffusers class that wrote it: another class (a UNet's folder) or JSON that
    is not an object is refused naming what it describes; a config without ``_class_name`` (written by
    hand) is taken as an AutoencoderKL's; a damaged gensis.json beside it is named with the key."""
    from gensis.autoencoder.latent import _check_autoencoder_folder

    for name, fields, found in (("unet", {"_class_name": "UNet2DModel"}, "UNet2DModel"), ("list", [1, 2], "list")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(fields))
        with pytest.raises(CheckpointError) as refused:
            _check_autoencoder_folder(tmp_path / name, "model.vae")
        assert str(refused.value) == (
            f"model.vae: {tmp_path / name / 'config.json'}: describes a {found}, not an AutoencoderKL"
        )
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.json").write_text(json.dumps({"latent_channels": 4}))
    assert _check_autoencoder_folder(tmp_path / "plain", "model.vae") is None
    (tmp_path / "plain" / "gensis.json").write_text("{")  # gensis's own metadata, damaged: named with the key
    with pytest.raises(CheckpointError) as refused:
        _check_autoencoder_folder(tmp_path / "plain", "model.vae")
    assert str(refused.value).startswith(f"model.vae: {tmp_path / 'plain' / 'gensis.json'}: corrupt gensis autoencoder")


def test_load_vae_goes_to_the_network_only_when_the_hub_is_reachable(tmp_path, monkeypatch) -> None:
    """A hub id missing from the local cache is refused at once, in one line saying so, when the hub is
    unreachable; when reachable it is downloaded (a second from_pretrained with no local_files_only) and
    comes back frozen on the device asked for, and a failed download is one line with diffusers' first line."""
    import diffusers

    from gensis.autoencoder import latent

    calls = []

    def from_pretrained(name, **kwargs):
        calls.append((name, kwargs))
        if kwargs.get("local_files_only") or name == "org/missing":
            raise OSError("no such repo\n  details")
        return torch.nn.Linear(2, 2)

    monkeypatch.setattr(diffusers.AutoencoderKL, "from_pretrained", from_pretrained)
    monkeypatch.setattr(latent, "_hub_reachable", lambda: False)
    with pytest.raises(CheckpointError) as refused:
        latent.load_vae("org/vae")
    assert str(refused.value) == (
        "model.vae: cannot load an AutoencoderKL from 'org/vae': no such folder, not in "
        "the local hub cache, and the hub is unreachable (offline); pass a folder written "
        "by save_pretrained, or train one: gensis train-autoencoder"
    )
    assert calls == [("org/vae", {"local_files_only": True})]
    monkeypatch.setattr(latent, "_hub_reachable", lambda: True)
    calls.clear()
    vae = latent.load_vae("org/vae", "meta")
    assert calls == [("org/vae", {"local_files_only": True}), ("org/vae", {})]
    assert not vae.training and all(p.device.type == "meta" and not p.requires_grad for p in vae.parameters())
    with pytest.raises(CheckpointError) as refused:
        latent.load_vae("org/missing")
    assert str(refused.value) == (
        "model.vae: cannot load an AutoencoderKL from 'org/missing' as a folder or hub id "
        "(a hub id needs a network): no such repo"
    )


def test_the_hub_is_asked_once_on_port_443_unless_the_user_said_offline(monkeypatch) -> None:
    """HF_HUB_OFFLINE=1/true/yes (any case) means no connection at all; otherwise one connection to
    huggingface.co:443 with the given timeout decides, closed at once, and any OSError means offline."""
    from gensis.autoencoder import latent

    calls = []

    class _Connection:
        def close(self) -> None:
            calls.append("closed")

    def connect(address, timeout):
        calls.append((address, timeout))
        if address != ("huggingface.co", 443):
            raise OSError("wrong address")
        return _Connection()

    monkeypatch.setattr("socket.create_connection", connect)
    for offline in ("1", "TRUE", "Yes"):
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        assert latent._hub_reachable() is False
    assert calls == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert latent._hub_reachable(timeout=0.5) is True
    assert calls == [(("huggingface.co", 443), 0.5), "closed"]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls.clear()
    assert latent._hub_reachable() is True and calls == [(("huggingface.co", 443), 3.0), "closed"]

    def refused(address, timeout):
        raise ConnectionRefusedError("no route")

    monkeypatch.setattr("socket.create_connection", refused)
    assert latent._hub_reachable() is False
