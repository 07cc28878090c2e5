"""Checkpoints load without executing code; exports rebuild the same encoder; writes are atomic."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from gensis.config.schema import ModelConfig
from gensis.errors import CheckpointError, GensisError
from gensis.models.backbones import build_encoder
from gensis.runtime.checkpoint import export_encoder, load_encoder, load_state, save_state
from gensis.runtime.io import atomic_write_text


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_crafted_pickle_payload_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pt"
    torch.save({"step": 1, "x": _Payload(str(marker))}, ckpt)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_state(ckpt)
    assert not marker.exists()
    # A raw pickle (not a torch zip) is refused too, without running it.
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(CheckpointError):
        load_state(raw)
    assert not marker.exists()


def test_state_round_trip_and_corrupt_files(tmp_path) -> None:
    path = tmp_path / "ckpt" / "last.pt"
    save_state(path, {"step": 3, "w": torch.arange(4.0), "nested": {"a": [1, 2]}})
    state = load_state(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or not a torch checkpoint"):
        load_state(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_state(tmp_path / "missing.pt")
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp files left


def test_export_and_load_encoder_same_outputs(tmp_path) -> None:
    torch.manual_seed(0)
    enc = build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 16).eval()
    path = tmp_path / "encoder.safetensors"
    export_encoder(path, enc, {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"})
    loaded = load_encoder(path)
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(enc(x), loaded(x), atol=1e-6)
    assert loaded.info.mean == (0.5, 0.5, 0.5) and loaded.info.std == (0.5, 0.5, 0.5)
    assert loaded.info.resolution == 16 and loaded.info.embed_dim == enc.embed_dim and loaded.info.method is None


def test_encoder_file_from_another_backbone_is_rejected(tmp_path) -> None:
    enc = build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 16)
    path = tmp_path / "encoder.safetensors"
    export_encoder(path, enc)
    from safetensors.torch import load_file

    from gensis.runtime.checkpoint import load_backbone_weights

    other = build_encoder(ModelConfig(backbone="resnet18", cifar_stem=True), 16)
    with pytest.raises(CheckpointError, match="do not fit backbone 'resnet18'"):
        load_backbone_weights(other, load_file(str(path)), str(path))
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError):
        load_encoder(tmp_path / "junk.safetensors")


def test_failed_atomic_write_keeps_previous_file(tmp_path, monkeypatch) -> None:
    target = tmp_path / "config.yaml"
    atomic_write_text(target, "old\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(GensisError, match="No space left on device"):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_atomic_writes_get_normal_permissions_even_when_the_writer_recreates_the_file(tmp_path) -> None:
    import stat

    from safetensors.torch import save_file

    from gensis.runtime.io import atomic_write

    mask = os.umask(0o022)
    try:
        path = tmp_path / "t.safetensors"
        atomic_write(path, lambda tmp: save_file({"x": torch.zeros(2)}, str(tmp)))  # safetensors recreates tmp
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(mask)


def test_encoder_metadata_is_parsed_once_into_typed_fields(tmp_path) -> None:
    """EncoderInfo turns the file's strings into typed values and names the key of a bad one;
    a file without mean/std loads, and only a command that needs them refuses it, in one line."""
    from gensis.errors import CheckpointError
    from gensis.models.metadata import EncoderInfo

    base = {"backbone": "resnet10t", "cifar_stem": "true", "backbone_kwargs": "{}", "resolution": "16"}
    info = EncoderInfo.parse(
        "e.safetensors",
        {
            **base,
            "embed_dim": "512",
            "trained_steps": "7",
            "method": "dino",
            "mean": "[0, 0.5, 1]",
            "std": "[1, 2, 3]",
            "augment": '{"hflip_p": 0.5}',
        },
    )
    assert (info.backbone, info.cifar_stem, info.backbone_kwargs, info.resolution) == ("resnet10t", True, {}, 16)
    assert (info.embed_dim, info.trained_steps, info.method) == (512, 7, "dino")
    assert info.normalization() == ((0.0, 0.5, 1.0), (1.0, 2.0, 3.0)) and info.augment == {"hflip_p": 0.5}
    assert info.model_config().cifar_stem is True
    bare = EncoderInfo.parse("e.safetensors", base)
    assert (bare.mean, bare.embed_dim, bare.trained_steps, bare.augment) == (None, None, None, None)
    with pytest.raises(CheckpointError, match=r"^e\.safetensors: no mean/std in its metadata"):
        bare.normalization()
    for key, value, words in (
        ("embed_dim", "0", "must be an integer >= 1, got '0'"),
        ("embed_dim", "true", "must be an integer >= 1"),
        ("trained_steps", "2.5", "must be an integer >= 0, got '2.5'"),
        ("resolution", "16.0", "must be an integer in"),
    ):
        with pytest.raises(CheckpointError, match=rf"^e\.safetensors: metadata '{key}' {words}"):
            EncoderInfo.parse("e.safetensors", {**base, key: value})
