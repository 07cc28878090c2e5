"""Bad-input sweep: every command fed the wrong things ends with one line, exit code 2, no
traceback, and no file written before is lost or changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _synthetic import write_npz
import gensis
from gensis.cli import main
from gensis.config.schema import ModelConfig
from gensis.models.backbones import build_encoder
from gensis.runtime.checkpoint import export_encoder

META = {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    enc = root / "encoder.safetensors"
    export_encoder(enc, build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8), META)
    vit = root / "vit.safetensors"  # another backbone, 192-d embeddings
    export_encoder(vit, build_encoder(ModelConfig(backbone="vit_tiny_patch16_224", backbone_kwargs={"patch_size": 4}), 8), META)
    data = write_npz(root / "images.npz", 12, size=8)
    gen_settings = {"model.spec": "tiny", "data.path": str(data), "train.batch_size": 6, "train.epochs": 1,
                    "train.progress": False, "data.cache_dir": None}
    gen = gensis.train_generator({**gen_settings, "encoder": str(enc), "out": str(root / "gen")}).generator_path
    other_gen = gensis.train_generator({**gen_settings, "train.seed": 1, "encoder": str(enc),
                                        "out": str(root / "gen2")}).generator_path
    gensis.generate({"generator": str(gen), "data_path": str(data), "out": str(root / "bank"), "views_per_image": 1,
                     "interpolations_per_image": 1, "steps": 1, "progress": False, "cache_dir": None})
    odd = root / "odd"  # images of every awkward kind, all readable
    odd.mkdir()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(odd / "one_pixel.png")
    Image.new("L", (8000, 8000), 90).save(odd / "huge_gray.png")
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(odd / "sixteen_bit.png")
    Image.new("CMYK", (20, 30), (0, 50, 100, 0)).save(odd / "cmyk.jpg")
    Image.new("P", (16, 16), 3).save(odd / "palette.png")
    bad = root / "bad"  # nothing readable
    bad.mkdir()
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    png = bad / "truncated.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(png)
    png.write_bytes(png.read_bytes()[:40])
    (root / "empty").mkdir()
    (root / "garbage.safetensors").write_bytes(b"not a safetensors file")
    return {"root": root, "enc": enc, "vit": vit, "data": data, "gen": gen, "other_gen": other_gen,
            "bank": root / "bank", "odd": odd, "bad": bad, "empty": root / "empty",
            "garbage": root / "garbage.safetensors"}


def _digest(root: Path) -> dict[str, str]:
    """Content hash of every file under ``root`` (to prove nothing was touched)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "cache" not in p.parts}


CASES = [
    # (argv with {placeholders}, fragment of the one-line message)
    ("pretrain data.path={root}/missing out={out}", "missing"),
    ("pretrain data.path={empty} out={out}", "no images found"),
    ("pretrain data.path={bad} out={out} data.cache_dir=null", "bad"),
    ("pretrain data.path={data} out={out} train.batch_sise=3", "unknown key 'train.batch_sise'"),
    ("pretrain data.path={data} out={out} train.epochs=0", "train.epochs"),
    ("pretrain data.path={data} out={out} preset=digits init_from={vit} train.batch_size=4", "vit.safetensors"),
    ("pretrain data.path={data} out={out} preset=digits init_from={garbage} train.batch_size=4", "garbage"),
    ("pretrain data.path={data} out={out} gen.bank={root}/missing_bank train.batch_size=4", "missing_bank"),
    ("train-generator encoder={garbage} data.path={data} out={out}", "garbage"),
    ("train-generator encoder={enc} data.path={data} out={out} model.p_uncond=2", "model.p_uncond"),
    ("generate generator={gen} data_path={data} out={out} alpha_range=[0.9,0.1]", "alpha_range"),
    ("generate generator={garbage} data_path={data} out={out}", "garbage"),
    ("generate generator={gen} encoder={vit} data_path={data} out={out}", "not the encoder the generator"),
    ("generate generator={other_gen} data_path={data} out={bank} views_per_image=1 steps=1", "another generator"),
    ("generate generator={gen} data_path={data} out={out} shards=[7]", "shards"),
    ("eval-generator bank={bank} encoder={vit} data_path={data}", "not the encoder"),
    ("eval-generator bank={root}/missing_bank encoder={enc} data_path={data}", "missing_bank"),
    ("show generator={gen} data_path={root}/missing out={out}", "missing"),
    ("eval encoder={enc} train_path={bad} test_path={data} cache_dir=null", "bad"),
    ("embed encoder={enc} data_path={empty} out={out}.safetensors", "no images found"),
    ("run data.path={root}/missing out={out}", "missing"),
    ("run data.path={data} out={out} gen_dino.gen.p_gen=3", "gen.p_gen"),
    ("tile slides={empty} out={out}", "empty"),
    ("tile slides={empty} out={out} tile_size=-1", "tile_size"),
]


@pytest.mark.parametrize("argv,fragment", CASES, ids=[c[0].split()[0] + ":" + c[1] for c in CASES])
def test_one_line_error_and_nothing_lost(world, capsys, tmp_path, argv: str, fragment: str) -> None:
    before = _digest(world["root"])
    out = tmp_path / "r"
    code = main([a.format(**world, out=out) for a in argv.split()] + ["-q"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("gensis: error: ") and fragment.format(**world) in lines[0], lines[0]
    assert _digest(world["root"]) == before
    assert not out.exists()


def test_awkward_but_readable_images_are_used(world, tmp_path) -> None:
    """1x1 px, 8000x8000 px, 16-bit, CMYK and palette images all become RGB at the resolution."""
    data = gensis.load_images(str(world["odd"]), 16, cache_dir=None)
    assert data.images.shape == (5, 3, 16, 16) and data.images.dtype == torch.uint8
    out = gensis.embed(encoder=str(world["enc"]), data_path=str(world["odd"]), out=str(tmp_path / "e.safetensors"),
                       cache_dir=None)
    assert out.is_file()
