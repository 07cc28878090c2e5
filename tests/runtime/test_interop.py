"""Files other tools open: the encoder in plain timm / TorchScript / torch.export, embeddings as .npy/.csv/.parquet."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _synthetic import write_npz

import gensis
from gensis.cli import main
from gensis.config.schema import ModelConfig
from gensis.errors import ConfigError
from gensis.eval.embed_io import read_embeddings_table
from gensis.models.backbones import build_encoder
from gensis.runtime.checkpoint import export_encoder

META = {"mean": "[0.4, 0.5, 0.6]", "std": "[0.2, 0.25, 0.3]"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("interop")
    torch.manual_seed(0)
    cifar = root / "cifar.safetensors"
    export_encoder(cifar, _randomized(build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8)), META)
    plain = root / "plain.safetensors"
    export_encoder(plain, _randomized(build_encoder(ModelConfig(backbone="resnet10t"), 32)), META)
    vit = root / "vit.safetensors"
    export_encoder(
        vit,
        build_encoder(ModelConfig(backbone="vit_tiny_patch16_224", backbone_kwargs={"patch_size": 8}), 32).eval(),
        META,
    )
    return {
        "root": root,
        "cifar": cifar,
        "plain": plain,
        "vit": vit,
        "images": write_npz(root / "images.npz", 10, size=8),
        "images32": write_npz(root / "images32.npz", 6, size=32),
    }


def _randomized(enc):
    """Non-trivial BN statistics, so that a wrong normalization or stem would show."""
    for m in enc.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return enc.eval()


def _images(path) -> torch.Tensor:
    return torch.from_numpy(np.load(path)["images"]).permute(0, 3, 1, 2).float() / 255


def _embed(enc, data, out, **kw) -> torch.Tensor:
    from safetensors.torch import load_file

    gensis.embed(
        encoder=str(enc), data_path=str(data), out=str(out), device="cpu", progress=False, cache_dir=None, **kw
    )
    return load_file(str(out))["embeddings"]


@pytest.mark.parametrize("which", ["plain", "vit"])
def test_timm_one_liner_matches_gensis_embed(world, tmp_path, which) -> None:
    import timm

    # docs/encoder-api.md: a plain timm model reads the exported file (timm's own key names).
    if which == "plain":
        model = timm.create_model("resnet10t", num_classes=0, checkpoint_path=str(world["plain"]))
    else:
        model = timm.create_model(
            "vit_tiny_patch16_224",
            num_classes=0,
            patch_size=8,
            img_size=32,
            dynamic_img_size=True,
            checkpoint_path=str(world["vit"]),
        )
    x = _images(world["images32"])
    mean, std = (torch.tensor(json.loads(META[k])).view(1, 3, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        ours = torch.nn.functional.normalize(model.eval()((x - mean) / std), dim=-1)
    ref = _embed(world[which], world["images32"], tmp_path / "e.safetensors")
    assert torch.allclose(ours, ref, atol=1e-5)


def test_readme_snippet_loads_a_cifar_stem_encoder(world, tmp_path) -> None:
    page = (Path(__file__).parents[2] / "docs" / "encoder-api.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "timm.create_model" in b)
    code = block.replace("runs/demo/pretrain/exported/encoder.safetensors", str(world["cifar"]))
    assert code != block
    ns = {"images": _images(world["images"])}
    exec(code, ns)  # noqa: S102 - the docs' own code (docs/encoder-api.md)
    ref = _embed(world["cifar"], world["images"], tmp_path / "e.safetensors")
    assert torch.allclose(ns["emb"], ref, atol=1e-5)


def test_cifar_stem_loads_in_plain_timm_with_its_stem(world, tmp_path) -> None:
    import timm
    from safetensors.torch import load_file

    # docs/encoder-api.md: the CIFAR stem is two modules on a plain timm model.
    model = timm.create_model("resnet10t", num_classes=0)
    model.conv1, model.maxpool = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False), torch.nn.Identity()
    model.load_state_dict(load_file(str(world["cifar"])))
    x = _images(world["images"])
    mean, std = (torch.tensor(json.loads(META[k])).view(1, 3, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        ours = model.eval()((x - mean) / std)
    ref = _embed(world["cifar"], world["images"], tmp_path / "e.safetensors", normalize=False)
    assert torch.allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("suffix", [".pt", ".pt2"])
def test_export_self_contained_file(world, tmp_path, suffix, capsys) -> None:
    out = tmp_path / f"encoder{suffix}"
    assert main(["export", f"encoder={world['cifar']}", f"out={out}", "-q"]) == 0
    assert str(out) in capsys.readouterr().out
    extra = {"gensis.json": ""}
    if suffix == ".pt":
        model = torch.jit.load(str(out), _extra_files=extra)
    else:
        model = torch.export.load(str(out), extra_files=extra).module()
    info = json.loads(extra["gensis.json"])
    assert info["resolution"] == 8 and info["mean"] == json.loads(META["mean"]) and info["cifar_stem"] is True
    x = _images(world["images"])
    with torch.no_grad():
        got = model(x)
    ref = _embed(world["cifar"], world["images"], tmp_path / "e.safetensors", normalize=False)
    assert torch.allclose(got, ref, atol=1e-5)
    with torch.no_grad():  # any batch size
        assert model(x[:3]).shape == (3, ref.shape[1])


ONNX_TOLERANCE = 1e-4  # max |onnxruntime - gensis| per embedding value (float32 kernels differ in order)


@pytest.mark.parametrize("encoder", ["cifar", "plain", "vit"])
def test_export_onnx_runs_in_onnxruntime_at_any_batch_size(world, tmp_path, capsys, encoder) -> None:
    import onnx
    import onnxruntime

    out = tmp_path / "encoder.onnx"
    assert main(["export", f"encoder={world[encoder]}", f"out={out}", "-q"]) == 0
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    info = json.loads(meta["gensis.json"])
    assert int(meta["resolution"]) == info["resolution"] and json.loads(meta["mean"]) == json.loads(META["mean"])
    assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][1:] == [
        3,
        info["resolution"],
        info["resolution"],
    ]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    images = world["images"] if encoder == "cifar" else world["images32"]  # each at its encoder's resolution
    x = _images(images)
    ref = _embed(world[encoder], images, tmp_path / "e.safetensors", normalize=False)
    assert int(meta["embed_dim"]) == ref.shape[1]
    for batch in (len(x), 3):  # the batch axis is dynamic
        (got,) = session.run(["embeddings"], {"images": x[:batch].numpy()})
        assert got.shape == (batch, ref.shape[1])
        diff = float(np.abs(got - ref[:batch].numpy()).max())
        print(f"onnx {encoder} batch {batch}: max |diff| {diff:.2e}")
        assert diff <= ONNX_TOLERANCE


def test_export_onnx_without_its_packages_is_one_line(world, tmp_path, capsys, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    out = tmp_path / "e.onnx"
    assert main(["export", f"encoder={world['cifar']}", f"out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "onnxscript" in err[0] and "gensis[onnx]" in err[0] and not out.exists()


def test_export_bad_suffix_is_one_line(world, tmp_path, capsys) -> None:
    assert main(["export", f"encoder={world['cifar']}", f"out={tmp_path / 'e.onnx2'}"]) == 2
    err = capsys.readouterr().err
    assert "out:" in err and ".onnx2" in err and len(err.strip().splitlines()) == 1


def test_embed_npy_and_csv(world, tmp_path) -> None:
    ref = _embed(world["cifar"], world["images"], tmp_path / "e.safetensors").numpy()
    gensis.embed(
        encoder=str(world["cifar"]),
        data_path=str(world["images"]),
        out=str(tmp_path / "e.csv"),
        device="cpu",
        progress=False,
        cache_dir=None,
    )
    arr = np.load(tmp_path / "e.npy")
    rows, table = read_embeddings_table(tmp_path / "e.csv")
    assert arr.dtype == np.float32 and np.array_equal(arr, ref) and np.array_equal(table, ref)
    labels = np.load(world["images"])["labels"]
    assert [int(r["label"]) for r in rows] == labels.tolist() and len({r["file"] for r in rows}) == len(rows)
    # out=*.npy writes the same pair.
    assert (
        main(
            [
                "embed",
                f"encoder={world['cifar']}",
                f"data_path={world['images']}",
                f"out={tmp_path / 'f.npy'}",
                "device=cpu",
                "cache_dir=null",
                "-q",
            ]
        )
        == 0
    )
    assert (
        np.array_equal(np.load(tmp_path / "f.npy"), ref)
        and (tmp_path / "f.csv").read_text() == (tmp_path / "e.csv").read_text()
    )


def test_embed_parquet(world, tmp_path) -> None:
    import pyarrow.parquet as pq  # the test extra installs it

    out = tmp_path / "e.parquet"
    gensis.embed(
        encoder=str(world["cifar"]),
        data_path=str(world["images"]),
        out=str(out),
        device="cpu",
        progress=False,
        cache_dir=None,
    )
    table = pq.read_table(str(out)).to_pydict()
    assert np.allclose(np.array(table["embedding"], dtype=np.float32), np.load(tmp_path / "e.npy"))
    assert table["label"] == np.load(world["images"])["labels"].tolist()


def test_embed_unknown_suffix_fails_before_work(world, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"out: .*\.txt"):
        gensis.embed(encoder=str(world["cifar"]), data_path=str(world["images"]), out=str(tmp_path / "e.txt"))
    assert not list(tmp_path.iterdir())
