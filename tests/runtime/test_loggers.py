"""Experiment loggers: TensorBoard, W&B (offline) and MLflow (a local store) for real, read back with
each library's own reader; fakes only where the real library cannot go (a network that fails,
a logger that breaks mid-run); failures only warn."""

from __future__ import annotations

import importlib.machinery
import json
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from _real_loggers import mlflow_run, wandb_history
from _synthetic import write_npz
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # the test extra installs it

import gensis
from gensis.config.loggers import LoggersConfig
from gensis.errors import ConfigError
from gensis.runtime import loggers
from gensis.runtime.run_folder import RunFolder

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


def _events(folder: Path) -> EventAccumulator:
    files = list(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _scalars(acc: EventAccumulator) -> dict[str, dict[int, float]]:
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


class FakeWandbRun:
    def __init__(self, **kwargs) -> None:
        self.kwargs, self.id, self.logged, self.defined, self.finished = kwargs, "fake-id", [], [], False

    def define_metric(self, name, step_metric=None) -> None:
        self.defined.append((name, step_metric))

    def log(self, values) -> None:
        self.logged.append(values)

    def finish(self) -> None:
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
    runs: list[FakeWandbRun] = []
    mod = types.ModuleType("wandb")

    def init(**kwargs):
        runs.append(FakeWandbRun(**kwargs))
        return runs[-1]

    mod.init, mod.Image = init, lambda array: ("image", array.shape)
    mod.__spec__ = importlib.machinery.ModuleSpec("wandb", None)  # diffusers looks wandb up by spec
    monkeypatch.setitem(sys.modules, "wandb", mod)
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")
    monkeypatch.setattr(loggers.netrc, "netrc", lambda: (_ for _ in ()).throw(OSError("no netrc")))
    return runs


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """The real W&B with no login (so offline into the run folder) and no console chatter."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return write_npz(root / "train.npz", 64, seed=0), write_npz(root / "test.npz", 32, seed=1)


def test_pretrain_logs_every_metric_to_tensorboard_wandb_and_mlflow(tmp_path, shapes, offline) -> None:
    """The real libraries: TensorBoard's events, W&B's offline run file and MLflow's local store,
    each read back with the library's own reader, hold every value of metrics.jsonl at its step."""
    train, test = shapes
    out = tmp_path / "run"
    gensis.pretrain(
        {
            **TINY,
            "out": str(out),
            "data.path": str(train),
            "data.eval_path": str(test),
            "loggers.wandb.enabled": True,
            "loggers.mlflow.enabled": True,
        }
    )
    records = RunFolder(out).read_metrics()
    expected: dict[str, dict[int, float]] = {}
    for r in records:
        for k, v in r.items():
            if k not in ("step", "time") and isinstance(v, (int, float)):
                expected.setdefault(k, {})[r["step"]] = float(v)
    got = _scalars(_events(out))
    assert set(got) == set(expected) and {"loss", "lr", "knn_top1_k20"} <= set(got)
    for tag, by_step in expected.items():
        assert got[tag] == pytest.approx(by_step, rel=1e-6), tag
    # W&B: offline into the run folder, each value against the stage's own step, the config in.
    rows, config = wandb_history(out)
    logged: dict[str, dict[int, float]] = {}
    for row in rows:
        for k, v in row.items():
            if not k.startswith("_") and k != "step":
                logged.setdefault(k, {})[row["step"]] = v
    assert logged.keys() == expected.keys()
    for tag, by_step in expected.items():
        assert logged[tag] == pytest.approx(by_step, rel=1e-6), tag
    assert config["train"]["epochs"] == 2
    # MLflow: a local store in the run folder; metrics, params and a finished run.
    client, run = mlflow_run(out)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    for tag, by_step in expected.items():
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, tag)}
        assert history == pytest.approx(by_step, rel=1e-6), tag
    assert run.data.params["train.epochs"] == "2" and run.data.params["model.backbone"] == "resnet10t"
    state = json.loads((out / "loggers.json").read_text())
    assert state["mlflow_run_id"] == run.info.run_id and state["wandb_id"] in str(next(out.glob("wandb/offline-run-*")))


def test_experiment_prefixes_stages_and_takes_images(tmp_path, offline) -> None:
    cfg = LoggersConfig.model_validate({"wandb": {"enabled": True}, "mlflow": {"enabled": True}})
    with loggers.experiment(tmp_path, cfg, config={"out": str(tmp_path)}):
        for stage, loss in (("pretrain", 2.0), ("gen-dino", 1.0)):
            run = RunFolder(tmp_path / stage)
            run.create()
            run.log_metrics({"step": 1, "epoch": 1, "loss": loss, "nan": float("nan")})
            run.log_metrics({"step": 2, "epoch": 1, "loss": loss / 2})
        RunFolder(tmp_path / "pictures").log_image("views", np.full((4, 6, 3), 200, np.uint8))
        RunFolder(tmp_path / "pictures").log_image("mask", torch.rand(1, 5, 5))
    # TensorBoard: one run per stage, the same tag in each (one chart compares the stages).
    assert _scalars(_events(tmp_path / "pretrain"))["loss"] == {1: 2.0, 2: 1.0}
    assert _scalars(_events(tmp_path / "gen-dino"))["loss"] == {1: 1.0, 2: 0.5}
    assert "nan" not in _scalars(_events(tmp_path / "pretrain"))
    assert set(_events(tmp_path / "pictures").Tags()["images"]) == {"views", "mask"}
    # W&B: one run, stage names as prefixes, each stage on its own step axis.
    rows, config = wandb_history(tmp_path)
    assert config["out"] == str(tmp_path)
    loss = {(k, row[k.replace("loss", "step")]): row[k] for row in rows for k in row if k.endswith("/loss")}
    assert loss == {
        ("pretrain/loss", 1): 2.0,
        ("pretrain/loss", 2): 1.0,
        ("gen-dino/loss", 1): 1.0,
        ("gen-dino/loss", 2): 0.5,
    }
    views = [row["pictures/views"] for row in rows if "pictures/views" in row]
    assert len(views) == 1 and (views[0]["_type"], views[0]["width"], views[0]["height"]) == ("image-file", 6, 4)
    assert not any("nan" in k for row in rows for k in row)
    # MLflow: the same, and the pictures as PNG artifacts.
    client, run = mlflow_run(tmp_path)
    assert run.info.run_name == tmp_path.name and run.data.params == {"out": str(tmp_path)}
    assert set(run.data.metrics) == {"pretrain/loss", "pretrain/epoch", "gen-dino/loss", "gen-dino/epoch"}
    assert {m.step: m.value for m in client.get_metric_history(run.info.run_id, "gen-dino/loss")} == {1: 1.0, 2: 0.5}
    art = {f.path for f in client.list_artifacts(run.info.run_id, "pictures")}
    assert art == {"pictures/views_step0.png", "pictures/mask_step0.png"}
    from PIL import Image

    with Image.open(client.download_artifacts(run.info.run_id, "pictures/views_step0.png", str(tmp_path / "dl"))) as im:
        assert im.size == (6, 4) and im.getpixel((0, 0)) == (200, 200, 200)


def test_a_failing_logger_warns_once_and_the_run_goes_on(tmp_path, shapes, monkeypatch, caplog) -> None:
    mod = types.ModuleType("wandb")
    mod.init = lambda **kw: (_ for _ in ()).throw(RuntimeError("network is unreachable\nlong trace"))
    monkeypatch.setitem(sys.modules, "wandb", mod)
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.setitem(sys.modules, name, None)  # not installed (also when a test before imported it)
    train, _ = shapes
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="gensis"):
        result = gensis.pretrain(
            {
                **TINY,
                "out": str(out),
                "data.path": str(train),
                "train.knn_every": 0,
                "loggers.wandb.enabled": True,
                "loggers.mlflow.enabled": True,
            }
        )
    warnings = [r.getMessage() for r in caplog.records if r.name == "gensis" and r.levelno == logging.WARNING]
    assert (
        len([w for w in warnings if "logger wandb" in w]) == 1
        and len([w for w in warnings if "logger mlflow" in w]) == 1
    )
    assert any("network is unreachable" in w and "long trace" not in w for w in warnings)
    assert any("pip install 'gensis[mlflow]'" in w for w in warnings)
    assert result.encoder_path.is_file() and len(RunFolder(out).read_metrics()) == result.steps
    assert _scalars(_events(out))["loss"]  # the other loggers carry on


def test_a_logger_failing_mid_run_is_dropped_after_one_warning(tmp_path, fake_wandb, caplog) -> None:
    cfg = LoggersConfig.model_validate({"wandb": {"enabled": True}})
    run = RunFolder(tmp_path)
    with caplog.at_level(logging.WARNING, logger="gensis"), loggers.experiment(tmp_path, cfg):
        run.log_metrics({"step": 1, "loss": 1.0})
        fake_wandb[0].log = lambda values: (_ for _ in ()).throw(OSError("disk full"))
        for step in (2, 3, 4):
            run.log_metrics({"step": step, "loss": 1.0})
    assert sum("logger wandb failed" in r.getMessage() for r in caplog.records) == 1
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4]
    assert _scalars(_events(tmp_path))["loss"] == {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}


def test_tensorboard_off_and_no_loggers_outside_training(tmp_path, shapes) -> None:
    train, _ = shapes
    out = tmp_path / "run"
    gensis.pretrain(
        {
            **TINY,
            "out": str(out),
            "data.path": str(train),
            "train.knn_every": 0,
            "train.max_steps": 2,
            "loggers.tensorboard.enabled": False,
        }
    )
    assert not list(out.glob("events.out.tfevents.*"))
    plain = RunFolder(tmp_path / "plain")  # no loggers config (e.g. gensis show alone): the PNG is the record
    plain.create()
    plain.log_image("views", np.zeros((2, 2, 3), np.uint8))
    plain.log_metrics({"step": 1, "loss": 1.0})
    assert not list((tmp_path / "plain").glob("events.out.tfevents.*"))


def test_loggers_config_is_strict_and_may_change_on_resume(tmp_path, shapes) -> None:
    with pytest.raises(ConfigError, match="loggers.wandb"):
        gensis.pretrain({**TINY, "loggers.wandb.projekt": "x"})
    train, _ = shapes
    out = tmp_path / "run"
    gensis.pretrain({**TINY, "out": str(out), "data.path": str(train), "train.knn_every": 0, "train.max_steps": 2})
    result = gensis.pretrain(
        {**TINY, "out": str(out), "data.path": str(train), "train.knn_every": 0, "loggers.tensorboard.enabled": False},
        resume=True,
    )
    assert result.steps == 4
    # TensorBoard was switched off for the resumed part: the events hold the first two steps.
    assert sorted(_scalars(_events(out))["loss"]) == [1, 2]


def test_image_array_shapes(tmp_path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((3, 5), np.uint8)).save(tmp_path / "g.png")
    assert loggers.image_array(tmp_path / "g.png").shape == (3, 5, 3)
    assert loggers.image_array(torch.ones(3, 4, 7)).shape == (4, 7, 3)
    assert loggers.image_array(np.ones((4, 7), np.float32)).max() == 255


def test_gensis_run_is_one_experiment_with_every_stage(tmp_path, offline, capsys) -> None:
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    from gensis.cli import main

    small = {
        "model.backbone": "resnet10t",
        "dino.out_dim": 64,
        "dino.hidden_dim": 64,
        "dino.bottleneck_dim": 32,
        "train.batch_size": 32,
        "train.epochs": 1,
        "train.knn_every": 0,
        "train.log_every": 1,
    }
    stages = {
        "pretrain": small,
        "generator": {"model.spec": "tiny", "train.batch_size": 32, "train.epochs": 1},
        "generate": {"views_per_image": 1, "interpolations_per_image": 1, "steps": 2},
        "show": {"rows": 2, "views": 2, "alphas": 3, "steps": 2, "tile_px": 16},
        "gen_dino": {"train.epochs": 1},
    }
    root = tmp_path / "run"
    args = [
        f"out={root}",
        "preset=digits",
        "progress=false",
        "data.cache_dir=null",
        "control=false",
        f"data.path={write_npz(tmp_path / 'train.npz', 64, seed=0)}",
        "loggers.wandb.enabled=true",
        "loggers.mlflow.enabled=true",
    ]
    args += [f"{stage}.{k}={v}" for stage, kv in stages.items() for k, v in kv.items()]
    assert main(["run", *args, "-q"]) == 0
    assert f"curves: tensorboard --logdir {root}" in capsys.readouterr().out
    # What `tensorboard --logdir <out>` lists: one run per stage.
    runs = EventMultiplexer().AddRunsFromDirectory(str(root)).Reload().Runs()
    assert set(runs) == {"pretrain", "generator", "gen-dino", "pictures"}
    assert "loss" in runs["pretrain"]["scalars"] and "loss" in runs["generator"]["scalars"]
    assert set(runs["pictures"]["images"]) == {"views", "interpolations"}
    rows, config = wandb_history(root)  # one W&B run for the whole pipeline, in its folder
    keys = {k for row in rows for k in row}
    assert {"pretrain/loss", "generator/loss", "gen-dino/loss", "pictures/views", "pictures/interpolations"} <= keys
    assert config["pretrain"]["train.epochs"] == 1
    client, run = mlflow_run(root)  # and one MLflow run
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert {"pretrain/loss", "generator/loss", "gen-dino/loss"} <= set(run.data.metrics)
    assert run.data.params["preset"] == "digits"
    assert {f.path for f in client.list_artifacts(run.info.run_id, "pictures")} == {
        "pictures/views_step0.png",
        "pictures/interpolations_step0.png",
    }


def test_foreground_maps_go_in_as_an_image(tmp_path) -> None:
    from _synthetic import random_encoder

    from gensis.data import load_images
    from gensis.foreground.fit import fit_foreground
    from gensis.foreground.picture import log_foreground
    from gensis.runtime.checkpoint import load_encoder

    enc = load_encoder(random_encoder(tmp_path / "e.safetensors"))
    data = load_images(str(write_npz(tmp_path / "i.npz", 12, size=8)), 8, cache_dir=None)
    cpu = torch.device("cpu")
    pca = fit_foreground(enc, data, fit_images=12, quantile=0.5, sign="auto", seed=0, device=cpu, resolution=32)
    log_foreground(RunFolder(tmp_path / "alone"), enc, data, pca, device=cpu, resolution=32)  # no loggers: nothing
    assert not (tmp_path / "alone").exists()
    with loggers.experiment(tmp_path / "exp", LoggersConfig()):
        log_foreground(RunFolder(tmp_path / "exp" / "bank"), enc, data, pca, device=cpu, resolution=32)
    (image,) = _events(tmp_path / "exp" / "bank").Images("foreground")
    assert (image.width, image.height) == (8 * 8, 3 * 8)  # 8 images; image, map, foreground rows


def test_wandb_without_network_logs_offline(tmp_path, fake_wandb, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "key")  # logged in, but the server cannot be reached
    mod = sys.modules["wandb"]
    online_init = mod.init

    def init(**kwargs):
        if kwargs["mode"] == "online":
            raise ConnectionError("api.wandb.ai unreachable")
        return online_init(**kwargs)

    monkeypatch.setattr(mod, "init", init)
    with loggers.experiment(tmp_path, LoggersConfig.model_validate({"wandb": {"enabled": True}})):
        RunFolder(tmp_path).log_metrics({"step": 1, "loss": 1.0})
    (run,) = fake_wandb
    assert run.kwargs["mode"] == "offline" and run.logged == [{"step": 1, "loss": 1.0}]
