"""Checkpoints load without executing code; exports rebuild the same encoder; writes are atomic."""

from __future__ import annotations

import os
import pickle
import re

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


_NORM = {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"}


def _refused_starting(load, *cases: tuple) -> None:
    """Each ``(path, message)``: ``load(path)`` raises a CheckpointError whose line starts with ``message``."""
    for path, message in cases:
        with pytest.raises(CheckpointError) as refused:
            load(path)
        assert str(refused.value).startswith(message), str(refused.value)


def test_a_folder_given_for_an_encoder_is_named_by_what_it_holds(tmp_path) -> None:
    """A gensis folder of another kind and a diffusers model folder are named; a folder of neither
    kind is the missing exported file."""
    import json

    bank = tmp_path / "bank"
    bank.mkdir()
    (bank / "index.json").write_text(json.dumps({"format": "gensis.bank/1"}))
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "config.json").write_text("{}")
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, message in (
        (bank, f"encoder not found: {bank} is a view bank, not a gensis encoder"),
        (hub, f"encoder not found: {hub} is a diffusers model folder, not a gensis encoder"),
        (empty, f"encoder not found: {empty / 'exported' / 'encoder.safetensors'}"),
    ):
        with pytest.raises(CheckpointError) as refused:
            load_encoder(folder)
        assert str(refused.value) == message


def test_encoder_file_refusals_name_the_file_and_the_reason(tmp_path, monkeypatch) -> None:
    """Not safetensors, another format, metadata that builds no working backbone, weights of another
    backbone, unreadable weights: one line each, starting with the file."""
    from safetensors.torch import save_file

    enc = build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 16)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(1)}, str(other), metadata={"format": "gensis.generator/1"})
    odd = tmp_path / "odd.safetensors"
    export_encoder(odd, enc, {**_NORM, "backbone_kwargs": '{"drop_rate": "x"}'})  # fails in forward only
    wrong = tmp_path / "wrong.safetensors"
    export_encoder(wrong, enc, {**_NORM, "backbone": "resnet18"})
    _refused_starting(
        load_encoder,
        (junk, f"{junk}: corrupt or not a safetensors file ("),
        (other, f"{other}: not a gensis encoder (metadata format='gensis.generator/1')"),
        (odd, f"{odd}: metadata 'backbone'/'backbone_kwargs' do not build a working backbone (could not convert"),
        (wrong, f"{wrong}: weights do not fit backbone 'resnet18' (missing ["),
    )
    good = tmp_path / "good.safetensors"
    export_encoder(good, enc, _NORM)

    def unreadable(path: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("gensis.runtime.checkpoint.load_file", unreadable)
    with pytest.raises(CheckpointError) as refused:
        load_encoder(good)
    assert str(refused.value) == f"{good}: corrupt encoder weights ([Errno 5] Input/output error)"


def test_an_encoder_without_mean_std_is_refused_unless_asked_and_a_vit_loads_at_its_resolution(tmp_path) -> None:
    """Every command embeds images, so load_encoder refuses a file without the normalization it was
    trained with by default; a ViT is rebuilt at the file's resolution (16 px: 17 tokens, not 224's 197)."""
    bare = tmp_path / "bare.safetensors"
    export_encoder(bare, build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 16))
    with pytest.raises(CheckpointError, match="^" + re.escape(f"{bare}: no mean/std in its metadata")):
        load_encoder(bare)
    assert load_encoder(bare, need_normalization=False).info.mean is None
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="vit_tiny_patch16_224", cifar_stem=False, backbone_kwargs={"patch_size": 4})
    vit = build_encoder(cfg, 16).eval()
    path = tmp_path / "vit.safetensors"
    export_encoder(path, vit, _NORM)
    loaded = load_encoder(path)
    assert loaded.backbone.pos_embed.shape[1] == 1 + (16 // 4) ** 2
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(vit(x), loaded(x), atol=1e-6)


@pytest.mark.gpu
def test_load_encoder_puts_the_encoder_on_the_device_asked() -> None:
    assert torch.cuda.is_available(), "pytest -m gpu needs a CUDA device"
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.safetensors"
        export_encoder(path, build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 16), _NORM)
        assert next(load_encoder(path, "cuda").parameters()).device.type == "cuda"


def test_weights_that_do_not_fit_name_the_first_two_keys_of_the_first_kind_of_misfit() -> None:
    """Missing keys first, then unexpected ones, then shape mismatches; two keys of each, sorted."""
    from types import SimpleNamespace

    from gensis.runtime.checkpoint import load_backbone_weights

    backbone = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    encoder = SimpleNamespace(backbone=backbone, cfg=SimpleNamespace(backbone="toy"))
    own = backbone.state_dict()
    without = {k: v for k, v in own.items() if k not in ("0.bias", "0.weight", "1.bias")}
    extra = {**own, "x.a": torch.zeros(1), "x.b": torch.zeros(1), "x.c": torch.zeros(1)}
    reshaped = {k: torch.zeros(5) if k.endswith("bias") else v for k, v in own.items()}
    for tensors, detail in (
        ({**without, "x.a": torch.zeros(1)}, "missing ['0.bias', '0.weight']"),
        (extra, "unexpected ['x.a', 'x.b']"),
        (reshaped, "shape mismatch at ['0.bias', '1.bias']"),
    ):
        with pytest.raises(CheckpointError) as refused:
            load_backbone_weights(encoder, tensors, "w.safetensors")
        assert str(refused.value) == f"w.safetensors: weights do not fit backbone 'toy' ({detail})"
    load_backbone_weights(encoder, {k: torch.ones_like(v) for k, v in own.items()}, "w.safetensors")
    assert all(bool((v == 1).all()) for v in backbone.state_dict().values())


def test_a_crafted_pickle_stays_refused_when_torch_is_told_to_unpickle_by_default(tmp_path, monkeypatch) -> None:
    """load_state asks for weights_only itself: torch < 2.6 unpickles by default, and
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns the default off on any version."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pt"
    torch.save({"step": 1, "x": _Payload(str(marker))}, ckpt)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_state(ckpt)
    assert not marker.exists()


def test_an_empty_a_truncated_and_a_non_dict_checkpoint_are_named(tmp_path) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    whole = tmp_path / "whole.pt"
    save_state(whole, {"step": 1, "w": torch.zeros(64)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(whole.read_bytes()[:200])
    listed = tmp_path / "list.pt"
    torch.save([1, 2], listed)
    one_byte = tmp_path / "one.pt"
    one_byte.write_bytes(b"x")
    _refused_starting(
        load_state,
        (empty, f"{empty}: empty file (0 bytes), not a checkpoint"),
        (truncated, f"{truncated}: corrupt or unreadable checkpoint (PytorchStreamReader failed"),
        (listed, f"{listed}: not a gensis checkpoint (expected a dict)"),
        (one_byte, f"{one_byte}: corrupt or "),
    )
