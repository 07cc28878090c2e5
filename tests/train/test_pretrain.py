"""End-to-end stage 1 on generated images: pretrain, run folder, eval, embed, resume."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from _synthetic import write_npz
from safetensors.torch import load_file

import gensis
from gensis.errors import GensisError
from gensis.runtime.checkpoint import load_state

TINY = {
    "preset": "digits",
    "data.cache_dir": None,
    "model.backbone": "resnet10t",
    "dino.out_dim": 64,
    "dino.hidden_dim": 64,
    "dino.bottleneck_dim": 32,
    "train.batch_size": 32,
    "train.epochs": 2,
    "train.log_every": 1,
    "train.knn_every": 1,
    "train.progress": False,
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return write_npz(root / "train.npz", 96, seed=0), write_npz(root / "test.npz", 48, seed=1)


def test_pretrain_eval_embed_end_to_end(tmp_path, shapes, caplog) -> None:
    train, test = shapes
    out = tmp_path / "run"
    result = gensis.pretrain({**TINY, "out": str(out), "data.path": str(train), "data.eval_path": str(test)})
    assert result.steps == 6
    for rel in ("config.yaml", "metrics.jsonl", "train.log", "checkpoints/last.pt", "exported/encoder.safetensors"):
        assert (out / rel).is_file(), rel
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all(r["embedding_std"] > 0 and r["teacher_temp"] == pytest.approx(0.04) for r in steps)
    knn = [r for r in records if "knn_top1_k20" in r]
    assert [r["epoch"] for r in knn] == [1, 2]
    # k=200 among 96 training images is a vote of all 96: logged under the k it used
    assert all("knn_top1_k96" in r and "knn_top1_k200" not in r for r in knn)
    log = (out / "train.log").read_text()
    assert "pretrain (dino): 96 images" in log and "online kNN after epoch 2" in log

    caplog.clear()  # the online kNN said it too, once
    with caplog.at_level(logging.WARNING, logger="gensis.eval"):
        res = gensis.evaluate(encoder=str(out), train_path=str(train), test_path=str(test), linear_epochs=20)
    # k=200 among 96 training images votes with all 96: reported as k=96, and said once
    assert set(res["knn_top1"]) == {"20", "96"} and set(res["knn_correct"]) == {"20", "96"}
    assert [r.getMessage() for r in caplog.records if r.name == "gensis.eval"] == [
        f"knn_k=[200]: {train} only has 96 training images, so k=96 is used (and reported) instead"
    ]
    # Four well-separated colours: a linear probe on any sane encoder separates them.
    assert res["linear"]["top1"] > 80

    emb_path = gensis.embed(encoder=str(out), data_path=str(test), out=str(tmp_path / "emb.safetensors"))
    tensors = load_file(str(emb_path))
    assert tensors["embeddings"].shape == (48, 512)
    assert torch.allclose(tensors["embeddings"].norm(dim=1), torch.ones(48), atol=1e-4)
    from safetensors import safe_open

    with safe_open(str(emb_path), framework="pt") as f:
        ids = json.loads(f.metadata()["ids"])
    assert ids == [f"npz:{i}" for i in range(48)]  # the npz's rows, in order


# Issue 39: with flips and rotations on and a backbone that draws in its forward pass (drop-path),
# every random number of a step must still be a function of (seed, step) for resume to be exact.
RANDOM_STEPS = {
    "augment.hflip_p": 0.5,
    "augment.vflip_p": 0.5,
    "augment.rot90_p": 0.5,
    "model.backbone_kwargs": {"drop_path_rate": 0.3},
}


@pytest.mark.parametrize("extra", [{}, RANDOM_STEPS], ids=["plain", "flips-and-drop-path"])
def test_resume_continues_exactly(tmp_path, shapes, extra) -> None:
    train, _ = shapes
    # No CIFAR stem: exactness does not depend on the feature maps' size, and the test runs 5x faster.
    common = {
        **TINY,
        "model.cifar_stem": False,
        "data.path": str(train),
        "train.knn_every": 0,
        "train.epochs": 3,
        **extra,
    }
    full = gensis.pretrain({**common, "out": str(tmp_path / "full")})
    part = tmp_path / "part"
    gensis.pretrain({**common, "out": str(part), "train.max_steps": 4})  # stops mid-epoch 2
    assert load_state(part / "checkpoints" / "last.pt")["step"] == 4
    resumed = gensis.pretrain({**common, "out": str(part)}, resume=True)
    assert resumed.steps == full.steps == 9
    a = load_state(tmp_path / "full" / "checkpoints" / "last.pt")
    b = load_state(part / "checkpoints" / "last.pt")
    for net in ("student", "teacher"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs after resume"
    assert torch.equal(a["center"], b["center"])
    losses = lambda p: [
        r["loss"] for r in map(json.loads, (p / "metrics.jsonl").read_text().splitlines()) if "loss" in r
    ]
    assert losses(tmp_path / "full") == losses(part)


def test_existing_run_needs_resume_and_same_config(tmp_path, shapes) -> None:
    train, _ = shapes
    cfg = {**TINY, "data.path": str(train), "train.knn_every": 0, "train.epochs": 1, "out": str(tmp_path / "r")}
    gensis.pretrain(cfg)
    before = (tmp_path / "r" / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(GensisError, match="already holds a run"):
        gensis.pretrain(cfg)
    with pytest.raises(GensisError, match="config differs .* at optim.lr"):
        gensis.pretrain({**cfg, "optim.lr": 0.5}, resume=True)
    assert (tmp_path / "r" / "checkpoints" / "last.pt").read_bytes() == before


def test_init_from_loads_weights_only(tmp_path, shapes) -> None:
    train, _ = shapes
    cfg = {**TINY, "data.path": str(train), "train.knn_every": 0, "train.epochs": 1}
    first = gensis.pretrain({**cfg, "out": str(tmp_path / "a")})
    second = gensis.pretrain(
        {**cfg, "out": str(tmp_path / "b"), "init_from": str(first.encoder_path), "train.max_steps": 1}
    )
    assert second.steps == 1  # a fresh run (step 0 -> 1), not a resumption of run a
    with pytest.raises(GensisError, match="do not fit backbone 'resnet18'"):
        gensis.pretrain(
            {**cfg, "out": str(tmp_path / "c"), "model.backbone": "resnet18", "init_from": str(first.encoder_path)}
        )


def test_pretrain_on_large_images_uses_lazy_folder_loader(tmp_path) -> None:
    from _synthetic import shapes_dataset
    from PIL import Image

    images, labels = shapes_dataset(24, size=100)
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        (tmp_path / "tiles" / f"c{lab}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "tiles" / f"c{lab}" / f"{i}.png")
    result = gensis.pretrain(
        {
            **TINY,
            "out": str(tmp_path / "run"),
            "data.path": str(tmp_path / "tiles"),
            "data.resolution": 112,
            "data.num_workers": 0,
            "augment.global_crop_size": 64,
            "train.batch_size": 8,
            "train.epochs": 1,
            "train.knn_every": 0,
        }
    )
    assert result.steps == 3


def test_init_full_continues_heads_teacher_and_center(tmp_path, shapes) -> None:
    train, _ = shapes
    # No CIFAR stem (as the resume test): the heads, teacher and center carry over at any feature size.
    cfg = {**TINY, "model.cifar_stem": False, "data.path": str(train), "train.knn_every": 0, "train.epochs": 1}
    first = gensis.pretrain({**cfg, "out": str(tmp_path / "a"), "train.epochs": 3})
    a = load_state(tmp_path / "a" / "checkpoints" / "last.pt")
    tiny_step = {"train.max_steps": 1, "optim.lr": 1e-9, "optim.warmup_epochs": 0}
    gensis.pretrain(
        {**cfg, **tiny_step, "out": str(tmp_path / "b"), "init_from": str(tmp_path / "a"), "init_full": True}
    )
    gensis.pretrain({**cfg, **tiny_step, "out": str(tmp_path / "c"), "init_from": str(tmp_path / "a")})
    b, c = (load_state(tmp_path / p / "checkpoints" / "last.pt") for p in ("b", "c"))
    head = [
        k for k in a["student"] if k.startswith("head.") and "running" not in k and a["student"][k].is_floating_point()
    ]
    gap = lambda x, net: max((x[net][k] - a[net][k]).abs().max().item() for k in head)
    assert gap(b, "student") < 0.01 * gap(c, "student")  # c starts its heads afresh
    assert gap(b, "teacher") < gap(c, "teacher")
    assert torch.allclose(b["center"], a["center"], atol=0.2 * a["center"].abs().max().item())
    # The step (and so the schedule) starts fresh: the compute-fair arm's epochs are all extra (gensis_scratch).
    assert a["step"] > 1 and b["step"] == 1
    with pytest.raises(GensisError, match="init_full"):  # an exported file has no heads
        gensis.pretrain({**cfg, "out": str(tmp_path / "d"), "init_from": str(first.encoder_path), "init_full": True})
    with pytest.raises(GensisError, match="init_full"):
        gensis.pretrain({**cfg, "out": str(tmp_path / "e"), "init_full": True})
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


def test_init_full_takes_a_dino_checkpoint_only_and_names_what_it_carries_over(tmp_path, shapes, caplog) -> None:
    """``init_full`` reads the init run's last checkpoint before any folder exists: one of another
    format or method is refused by path and method; one written before checkpoints named their
    method counts as DINO; what it carries over beside the student is exactly the teacher and the
    center (not the optimizer, nor the run's settings, backbone name or method), and a checkpoint of
    other heads is refused naming the file and init_full."""
    from gensis.config.overrides import build_config
    from gensis.config.schema import PretrainConfig
    from gensis.errors import CheckpointError
    from gensis.runtime.checkpoint import save_state
    from gensis.train.state import init_full_state

    train, _ = shapes
    cfg = {**TINY, "model.cifar_stem": False, "data.path": str(train), "train.knn_every": 0, "train.max_steps": 1}
    gensis.pretrain({**cfg, "out": str(tmp_path / "a")})
    state = load_state(tmp_path / "a" / "checkpoints" / "last.pt")
    assert state["method"] == "dino" and {"optimizer", "backbone", "run", "teacher", "center"} <= set(state)

    def init_from(name: str, **edit) -> PretrainConfig:
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        edited = {k: v for k, v in {**state, **edit}.items() if v is not None}
        save_state(tmp_path / name / "checkpoints" / "last.pt", edited)
        return build_config(PretrainConfig, {**cfg, "init_from": str(tmp_path / name), "init_full": True})

    full = init_full_state(init_from("legacy", method=None))  # no method recorded: DINO
    assert set(full) == set(state) - {"optimizer", "backbone", "method", "run"}
    for name, edit in (("moco", {"method": "moco_v3"}), ("other", {"format": "gensis.generator/1"})):
        with pytest.raises(CheckpointError, match=f"init_full: .*{name}.*last.pt is not a gensis dino checkpoint"):
            init_full_state(init_from(name, **edit))
    with pytest.raises(CheckpointError, match=r"wide.*last.pt \(init_full\): does not fit this model"):
        init_full_state(init_from("wide", center=torch.zeros(1, 32)))  # heads of out_dim 64

    with caplog.at_level(logging.INFO, logger="gensis"):
        gensis.pretrain({**cfg, "out": str(tmp_path / "b"), "init_from": str(tmp_path / "a"), "init_full": True})
    assert "initialized student, heads and teacher, center from" in caplog.text


def test_init_full_builds_a_vit_at_the_runs_resolution(tmp_path, shapes) -> None:
    """A ViT's position embedding depends on the image size: ``init_full`` checks the init run's
    checkpoint against a model built at this run's resolution (16 px here, not timm's 224)."""
    from gensis.config.overrides import build_config
    from gensis.config.schema import PretrainConfig
    from gensis.train.state import init_full_state, init_weights_state

    train, _ = shapes
    vit = {
        "model.backbone": "vit_tiny_patch16_224",
        "model.cifar_stem": False,
        "model.backbone_kwargs": {"patch_size": 4},
    }
    cfg = {**TINY, **vit, "data.path": str(train), "train.knn_every": 0, "train.max_steps": 1}
    gensis.pretrain({**cfg, "out": str(tmp_path / "a")})
    init = build_config(PretrainConfig, {**cfg, "init_from": str(tmp_path / "a"), "init_full": True})
    tokens = 1 + (16 // 4) ** 2
    assert init_full_state(init)["student"]["backbone.backbone.pos_embed"].shape[1] == tokens
    assert init_weights_state(init)["backbone.pos_embed"].shape[1] == tokens


def test_init_from_refuses_an_unreadable_file_and_weights_of_another_backbone_naming_the_file(tmp_path, shapes) -> None:
    from gensis.config.overrides import build_config
    from gensis.config.schema import PretrainConfig
    from gensis.errors import CheckpointError
    from gensis.train.state import init_weights_state

    train, _ = shapes
    cfg = {**TINY, "model.cifar_stem": False, "data.path": str(train), "train.knn_every": 0, "train.max_steps": 1}
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match=rf"^{broken}: not a readable encoder file \(\S"):
        init_weights_state(build_config(PretrainConfig, {**cfg, "init_from": str(broken)}))
    first = gensis.pretrain({**cfg, "out": str(tmp_path / "a")})
    other = build_config(PretrainConfig, {**cfg, "model.backbone": "resnet18", "init_from": str(first.encoder_path)})
    with pytest.raises(CheckpointError, match=rf"^{first.encoder_path}: weights do not fit backbone 'resnet18'"):
        init_weights_state(other)
