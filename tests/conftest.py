"""Shared fixtures: the bad-input world (encoders, generators, a bank, runs, crafted files),
built once per session for test_bad_input.py and test_bad_input_guards.py; and the labelled
image folder of the data tests."""

from __future__ import annotations

import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # _synthetic, _data_files

# One intra-op thread per test process: the tests' tensors are tiny, and on shared cores a step that
# waits for a descheduled worker thread ran 6x slower (a tiny generator: 0.47 s a step on 2 threads beside
# two other jobs, 0.08 s on one). `pytest -n 2` runs two such processes instead. Tests that need another
# count set it themselves (tests/sweeps/test_legacy_runs.py).
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items) -> None:
    """Under a mutmut mutant (benchmarks/mutation.sh), its module's covering tests, cheapest first
    (tests/_mutation_covers.py); otherwise nothing changes."""
    from _mutation_covers import select_and_order

    select_and_order(config, items)


def pytest_sessionstart(session) -> None:
    from _mutation_covers import time_session

    time_session(finished=False)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Under a mutant with MUTATION_TIMES set, its session's time (tests/_mutation_covers.py)."""
    from _mutation_covers import time_session

    time_session(finished=True, exitstatus=exitstatus)


from _data_files import labelled_tree  # noqa: E402
from _synthetic import SMALL_DINO, shapes_dataset, write_npz  # noqa: E402

META = {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"}
PRETRAIN = {
    "preset": "digits",
    "data.cache_dir": None,
    "model.backbone": "resnet10t",
    "dino.out_dim": 64,
    "dino.hidden_dim": 64,
    "dino.bottleneck_dim": 32,
    "train.batch_size": 6,
    "train.epochs": 1,
    "train.knn_every": 0,
    "train.progress": False,
}
GEN = {"model.spec": "tiny", "train.batch_size": 6, "train.epochs": 1, "train.progress": False, "data.cache_dir": None}


def _labelled_zip(path: Path, n: int, names: tuple[str, ...] = ("a", "b", "c", "d")) -> Path:
    from PIL import Image

    images, labels = shapes_dataset(n, size=8)
    with zipfile.ZipFile(path, "w") as zf:
        for i, (img, k) in enumerate(zip(images, labels, strict=True)):
            if k < len(names):
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, format="PNG")
                zf.writestr(f"{names[k]}/{i:03d}.png", buf.getvalue())
    return path


def _resave(src: Path, dst: Path, drop: tuple[str, ...] = (), **meta: str) -> Path:
    """A copy of a safetensors file with some metadata fields replaced or dropped (crafted bad files)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        old = {k: v for k, v in f.metadata().items() if k not in drop}
    save_file(load_file(str(src)), str(dst), metadata={**old, **meta})
    return dst


def _bank_copy(root: Path, name: str, edit=None, shard_edit=None) -> Path:
    dst = root / name
    shutil.copytree(root / "bank", dst)
    if edit is not None:
        index = json.loads((dst / "index.json").read_text())
        (dst / "index.json").write_text(json.dumps(edit(index)))
    if shard_edit is not None:
        shard_edit(dst / "shard-00000.safetensors")
    return dst


def _run_copy(root: Path, src: str, name: str, edit) -> Path:
    dst = root / name
    shutil.copytree(root / src, dst)
    edit(dst)
    return dst


def _build(root: Path) -> dict[str, Path]:
    import torch

    import gensis
    from gensis.config.schema import ModelConfig
    from gensis.models.backbones import build_encoder
    from gensis.runtime.checkpoint import export_encoder

    torch.manual_seed(0)
    enc = root / "encoder.safetensors"
    export_encoder(enc, build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8), META)
    vit = root / "vit.safetensors"  # another backbone, 192-d embeddings
    export_encoder(
        vit, build_encoder(ModelConfig(backbone="vit_tiny_patch16_224", backbone_kwargs={"patch_size": 4}), 8), META
    )
    data = write_npz(root / "images.npz", 12, size=8)
    gen = gensis.train_generator(
        {**GEN, "data.path": str(data), "encoder": str(enc), "out": str(root / "gen")}
    ).generator_path
    other_gen = gensis.train_generator(
        {**GEN, "data.path": str(data), "train.seed": 1, "encoder": str(enc), "out": str(root / "gen2")}
    ).generator_path
    gensis.generate(
        {
            "generator": str(gen),
            "data_path": str(data),
            "out": str(root / "bank"),
            "views_per_image": 1,
            "interpolations_per_image": 1,
            "steps": 1,
            "progress": False,
            "cache_dir": None,
        }
    )
    w = {"root": root, "enc": enc, "vit": vit, "data": data, "gen": gen, "other_gen": other_gen, "bank": root / "bank"}
    w.update(_images(root))
    w.update(_runs(root, w))
    w.update(_crafted(root, w))
    return w


def _images(root: Path) -> dict[str, Path]:
    from PIL import Image

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
    (root / "text.npz").write_text("images = [1, 2, 3]\n")
    (root / "slides").mkdir()
    (root / "slides" / "a.svs").write_bytes(b"not read: out is refused first")
    images, _ = shapes_dataset(4, size=8)
    disjoint = root / "disjoint.npz"  # classes "10" and "11": none in common with images.npz
    np.savez(disjoint, images=images, labels=np.array([10, 11, 10, 11]))
    return {
        "odd": odd,
        "bad": bad,
        "empty": root / "empty",
        "garbage": root / "garbage.safetensors",
        "text_npz": root / "text.npz",
        "slides": root / "slides",
        "zip": _labelled_zip(root / "images.zip", 12),
        "other": write_npz(root / "other.npz", 12, size=8, seed=1),
        "disjoint": disjoint,
    }


def _runs(root: Path, w: dict[str, Path]) -> dict[str, Path]:
    """Run folders in the states the issue found: copied checkpoints, stripped folders, grown data."""
    import gensis

    grow = write_npz(root / "grow.npz", 12, size=8)
    gensis.pretrain({**PRETRAIN, "data.path": str(grow), "out": str(root / "pre")})
    write_npz(grow, 18, size=8)  # images added after the run
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "config.yaml").write_text("# my notes, not a gensis run\nlr: 0.1\n")

    def swap(d: Path) -> None:
        shutil.copy(root / "gen2" / "checkpoints" / "last.pt", d / "checkpoints" / "last.pt")

    return {
        "grow": grow,
        "pre": root / "pre",
        "foreign": foreign,
        "gen_run": root / "gen",
        "gen_swapped": _run_copy(root, "gen", "gen_swapped", swap),
        "gen_stripped": _run_copy(root, "gen", "gen_stripped", lambda d: shutil.rmtree(d / "checkpoints")),
        "gen_empty_pt": _run_copy(
            root, "gen", "gen_empty_pt", lambda d: (d / "checkpoints" / "last.pt").write_bytes(b"")
        ),
        "pre_stripped": _run_copy(root, "pre", "pre_stripped", lambda d: shutil.rmtree(d / "checkpoints")),
    }


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _crafted(root: Path, w: dict[str, Path]) -> dict[str, Path]:
    enc, gen = w["enc"], w["gen"]
    return {
        "enc_kwargs": _resave(enc, root / "enc_kwargs.safetensors", backbone_kwargs="{patch_size: 4"),
        "enc_negres": _resave(enc, root / "enc_negres.safetensors", resolution="-8"),
        "enc_mean2": _resave(enc, root / "enc_mean2.safetensors", mean="[0.5, 0.5]"),
        "enc_stem": _resave(enc, root / "enc_stem.safetensors", cifar_stem="maybe"),
        "enc_std0": _resave(enc, root / "enc_std0.safetensors", std="[0.5, 0.0, 0.5]"),
        "enc_dim": _resave(enc, root / "enc_dim.safetensors", embed_dim="x"),
        "enc_steps": _resave(enc, root / "enc_steps.safetensors", trained_steps="-3"),
        "enc_bare": _resave(enc, root / "enc_bare.safetensors", drop=("mean", "std")),
        "absent": root / "absent.npz",  # never written: a command that reads it first names it
        "gen_spec": _resave(gen, root / "gen_spec.safetensors", spec="{not json"),
        "gen_latent": _resave(gen, root / "gen_latent.safetensors", space="latent", vae=""),
        "gen_space": _resave(gen, root / "gen_space.safetensors", space="voxel"),
        "gen_sha": _resave(gen, root / "gen_sha.safetensors", encoder_sha256="xyz"),
        "bank_missing": _bank_copy(root, "bank_missing", shard_edit=lambda p: p.unlink()),
        "bank_trunc": _bank_copy(root, "bank_trunc", shard_edit=_truncate),
        "bank_types": _bank_copy(root, "bank_types", edit=lambda i: {**i, "n_sources": "12"}),
        "bank_list": _bank_copy(root, "bank_list", edit=lambda i: [i]),
        "bank_shard99": _bank_copy(root, "bank_shard99", edit=lambda i: {**i, "shards": [99]}),
        "bank_neg": _bank_copy(root, "bank_neg", edit=lambda i: {**i, "resolution": -8}),
    }


@pytest.fixture(scope="session")
def bad_world(tmp_path_factory) -> dict[str, Path]:
    return _build(tmp_path_factory.mktemp("bad"))


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """A labelled image folder for the data tests (see ``_data_files.labelled_tree``)."""
    return labelled_tree(tmp_path)


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """One tiny `gensis run` (every stage, the report) shared by test_pipeline and test_report_browser."""
    import torch

    import gensis

    root = tmp_path_factory.mktemp("pipe")
    settings = {
        "out": str(root / "run"),
        "preset": "digits",
        "progress": False,
        "data.path": str(write_npz(root / "train.npz", 64, seed=0)),
        "data.eval_path": str(write_npz(root / "test.npz", 32, seed=1)),
        "data.cache_dir": None,
        "pretrain": SMALL_DINO,
        "generator": {"model.spec": "tiny", "train.batch_size": 16, "train.epochs": 1, "train.log_every": 1},
        "generate": {"views_per_image": 1, "interpolations_per_image": 1, "steps": 2, "shard_size": 40},
        "show": {"rows": 2, "views": 2, "alphas": 3, "steps": 2, "tile_px": 16},
        "gen_dino": {"train.epochs": 1, "gen.lambda_dis": 0.5},
        "linear_epochs": 5,
    }
    torch.manual_seed(0)
    return settings, gensis.run(settings)
