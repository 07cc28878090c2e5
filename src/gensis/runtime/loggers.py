"""Experiment loggers behind :class:`~gensis.runtime.run_folder.RunFolder`: TensorBoard, W&B, MLflow.

A :class:`Session` is one experiment: a standalone training run (its run folder), or one
``gensis run`` (the pipeline folder, opened with :func:`experiment`), where every stage's
folder name is its prefix: ``pretrain/loss``, ``gen-dino/loss`` in one W&B or MLflow run, and
one TensorBoard run per stage folder (so ``tensorboard --logdir <out>`` lists the stages and
draws the same metric of every stage in one chart). Loggers start on the first value they
receive (rank 0 only logs, so other ranks never start one). A logger that fails to start or
to log warns once and is dropped; metrics.jsonl stays the record.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import netrc
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gensis.config.loggers import LoggersConfig
from gensis.errors import GensisError
from gensis.runtime import trust
from gensis.runtime.io import atomic_write_text

log = logging.getLogger("gensis")

STATE_FILE = "loggers.json"  # W&B / MLflow run ids, so that a resumed run or a rerun continues them
AXES = frozenset({"step", "time"})  # the x axes of metrics.jsonl, not scalars


def scalars(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a metrics.jsonl record (nested dicts joined with '/')."""
    out: dict[str, float] = {}
    for k, v in record.items():
        if not prefix and k in AXES:
            continue
        if isinstance(v, dict):
            out.update(scalars(v, f"{prefix}{k}/"))
        elif isinstance(v, (bool, int, float)) and math.isfinite(float(v)):
            out[f"{prefix}{k}"] = float(v)
    return out


def image_array(image: Any) -> np.ndarray:
    """A PNG path, an (H, W, C) array or a (C, H, W) tensor -> (H, W, 3) uint8."""
    if isinstance(image, (str, Path)):
        from PIL import Image

        with Image.open(image) as im:
            return np.asarray(im.convert("RGB")).copy()
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    return np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr[..., :3]


def _key(stage: str, name: str) -> str:
    return f"{stage}/{name}" if stage else name


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


class Session:
    """The loggers of one experiment rooted at ``root``; run folders inside it log with their relative path as stage."""

    def __init__(
        self, root: str | Path, cfg: LoggersConfig, name: str | None = None, config: dict[str, Any] | None = None
    ) -> None:
        self.root = Path(root).resolve()
        self.cfg = cfg
        self.name = name or self.root.name
        self.config = config or {}
        self._backends: dict[str, Any] | None = None
        self._last_step: dict[Path, int] = {}

    def contains(self, run_dir: Path) -> bool:
        return run_dir == self.root or self.root in run_dir.parents

    def stage(self, run_dir: Path) -> str:
        return "" if run_dir == self.root else run_dir.relative_to(self.root).as_posix()

    # W&B and MLflow run ids live in the experiment folder.
    def read_state(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError, GensisError):  # none yet, or not a file gensis wrote
            return json.loads(trust.read_text(self.root / STATE_FILE, "logger state"))
        return {}

    def save_state(self, **values: Any) -> None:
        atomic_write_text(self.root / STATE_FILE, json.dumps({**self.read_state(), **values}, indent=1) + "\n")

    def _start(self) -> dict[str, Any]:
        if self._backends is not None:
            return self._backends
        self._backends = {}
        for name, backend in BACKENDS.items():
            sub = getattr(self.cfg, name)
            if not sub.enabled:
                continue
            try:
                self._backends[name] = backend(self)
            except ImportError as exc:
                if name == "tensorboard" and "enabled" not in sub.model_fields_set:
                    log.debug("tensorboard is not installed: no event files")  # on by default only when installed
                    continue
                self._warn(name, f"is not installed ({exc.name or exc}; pip install 'gensis[{name}]')")
            except Exception as exc:  # noqa: BLE001 - a logger must never stop training
                self._warn(name, f"did not start ({_one_line(exc)})")
        return self._backends

    def _warn(self, name: str, what: str) -> None:
        log.warning("logger %s %s; the run goes on, metrics.jsonl stays the record", name, what)

    def _call(self, method: str, run_dir: Path, *args: Any) -> None:
        backends = self._start()
        stage = self.stage(run_dir)
        for name, backend in list(backends.items()):
            try:
                getattr(backend, method)(stage, run_dir, *args)
            except Exception as exc:  # noqa: BLE001
                self._warn(name, f"failed ({_one_line(exc)}) and is off from here on")
                backends.pop(name)
                with contextlib.suppress(Exception):
                    backend.close()

    def log_metrics(self, run_dir: str | Path, record: dict[str, Any]) -> None:
        run_dir = Path(run_dir).resolve()
        step = record.get("step")
        step = int(step) if isinstance(step, (int, float)) else self._last_step.get(run_dir, 0)
        self._last_step[run_dir] = step
        values = scalars(record)
        if values:
            self._call("scalars", run_dir, values, step)

    def log_image(self, run_dir: str | Path, name: str, image: Any, step: int | None = None) -> None:
        run_dir = Path(run_dir).resolve()
        try:
            array = image_array(image)
        except (OSError, ValueError) as exc:
            log.warning("logger image %s: unreadable (%s)", name, _one_line(exc))
            return
        self._call("image", run_dir, name, array, self._last_step.get(run_dir, 0) if step is None else step)

    def close(self) -> None:
        for backend in (self._backends or {}).values():
            with contextlib.suppress(Exception):
                backend.close()
        self._backends = None


class _TensorBoard:
    """One event folder per stage: the run folder itself, next to metrics.jsonl."""

    def __init__(self, session: Session) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._cls = SummaryWriter
        self._writers: dict[Path, Any] = {}

    def _writer(self, run_dir: Path):
        w = self._writers.get(run_dir)
        if w is None:
            # purge_step: a resumed run drops the events after its checkpoint, as metrics.jsonl does.
            w = self._writers[run_dir] = self._cls(log_dir=str(run_dir), purge_step=_PURGE.pop(run_dir, None))
        return w

    def scalars(self, stage: str, run_dir: Path, values: dict[str, float], step: int) -> None:
        w = self._writer(run_dir)
        for k, v in values.items():
            w.add_scalar(k, v, step)
        w.flush()

    def image(self, stage: str, run_dir: Path, name: str, array: np.ndarray, step: int) -> None:
        w = self._writer(run_dir)
        w.add_image(name, array, step, dataformats="HWC")
        w.flush()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers = {}


def _wandb_mode(mode: Literal["auto", "online", "offline"]) -> Literal["online", "offline"] | None:
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return None  # the user's own setting
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    with contextlib.suppress(OSError, netrc.NetrcParseError):
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    return "offline"


class _Wandb:
    """One W&B run per experiment; each stage's metrics against its own step (``<stage>/step``)."""

    def __init__(self, session: Session) -> None:
        import wandb

        c = session.cfg.wandb
        state = session.read_state()
        kwargs: dict[str, Any] = dict(
            project=c.project,
            entity=c.entity,
            name=c.name or session.name,
            dir=str(session.root),
            id=state.get("wandb_id"),
            resume="allow",
            config=session.config,
        )
        mode = _wandb_mode(c.mode)
        try:
            self._run = wandb.init(mode=mode, **kwargs)
        except Exception as exc:  # noqa: BLE001
            if c.mode != "auto" or mode == "offline":
                raise
            log.info("wandb: online start failed (%s); logging offline into %s", _one_line(exc), session.root)
            self._run = wandb.init(mode="offline", **kwargs)  # `wandb sync` uploads it later
        session.save_state(wandb_id=self._run.id)
        self._wandb = wandb
        self._defined: set[str] = set()

    def _define(self, stage: str) -> str:
        step_key = _key(stage, "step")
        if stage not in self._defined:  # every stage restarts at step 0: W&B needs a step metric per stage
            self._run.define_metric(step_key)
            self._run.define_metric(_key(stage, "*"), step_metric=step_key)
            self._defined.add(stage)
        return step_key

    def scalars(self, stage: str, run_dir: Path, values: dict[str, float], step: int) -> None:
        self._run.log({self._define(stage): step, **{_key(stage, k): v for k, v in values.items()}})

    def image(self, stage: str, run_dir: Path, name: str, array: np.ndarray, step: int) -> None:
        self._run.log({self._define(stage): step, _key(stage, name): self._wandb.Image(array)})

    def close(self) -> None:
        self._run.finish()


class _MLflow:
    """One MLflow run per experiment, through a client (it leaves the caller's active run alone)."""

    def __init__(self, session: Session) -> None:
        from mlflow.tracking import MlflowClient

        c = session.cfg.mlflow
        # The local default is MLflow's own advice (a SQLite store; MLflow 3 refuses a plain folder
        # store unless told), with the artifacts beside it, not in the working directory.
        local = (session.root / "mlflow.db").as_posix()
        uri = c.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{local}"
        self._client = MlflowClient(tracking_uri=uri)
        state = session.read_state()
        run_id = state.get("mlflow_run_id") if state.get("mlflow_tracking_uri") == uri else None
        if run_id is None:
            exp = self._client.get_experiment_by_name(c.experiment)
            artifacts = (session.root / "mlartifacts").as_uri() if uri == f"sqlite:///{local}" else None
            exp_id = (
                exp.experiment_id
                if exp is not None
                else self._client.create_experiment(c.experiment, artifact_location=artifacts)
            )
            run_id = self._client.create_run(exp_id, run_name=c.run_name or session.name).info.run_id
            self._log_params(run_id, session.config)  # once: MLflow params may not change afterwards
            session.save_state(mlflow_run_id=run_id, mlflow_tracking_uri=uri)
        self._run_id = run_id

    def _log_params(self, run_id: str, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        from gensis.config.overrides import flatten

        # MLflow takes at most 100 params per call, values of at most 6,000 characters.
        params = [
            Param(k, json.dumps(v)[:6000] if not isinstance(v, str) else v[:6000])
            for k, v in sorted(flatten(config).items())
        ]
        for i in range(0, len(params), 100):
            self._client.log_batch(run_id, params=params[i : i + 100])

    def scalars(self, stage: str, run_dir: Path, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        ms = int(time.time() * 1000)
        self._client.log_batch(self._run_id, metrics=[Metric(_key(stage, k), v, ms, step) for k, v in values.items()])

    def image(self, stage: str, run_dir: Path, name: str, array: np.ndarray, step: int) -> None:
        self._client.log_image(self._run_id, array, artifact_file=f"{_key(stage, name)}_step{step}.png")

    def close(self) -> None:
        self._client.set_terminated(self._run_id)


BACKENDS: dict[str, Any] = {"tensorboard": _TensorBoard, "wandb": _Wandb, "mlflow": _MLflow}

_ACTIVE: list[Session] = []  # experiments opened by `gensis run`, innermost last
_OWN: dict[Path, Session] = {}  # sessions of standalone training runs, by run folder
_PURGE: dict[Path, int] = {}  # resumed run folders -> first step to redo (read when its event writer opens)


@contextlib.contextmanager
def experiment(
    root: str | Path, cfg: LoggersConfig, name: str | None = None, config: dict[str, Any] | None = None
) -> Iterator[Session]:
    """While the block runs, every run folder under ``root`` logs into this one experiment."""
    session = Session(root, cfg, name, config)
    _ACTIVE.append(session)
    try:
        yield session
    finally:
        _ACTIVE.remove(session)
        session.close()


def session_for(run_dir: str | Path, cfg: LoggersConfig | None, config: dict[str, Any] | None = None) -> Session | None:
    """The experiment that holds ``run_dir``, else its own session when it has a ``loggers`` config, else None."""
    if os.environ.get("RANK", "0") != "0":  # one process logs (rank 0 writes the run folders too)
        return None
    run_dir = Path(run_dir).resolve()
    for session in reversed(_ACTIVE):
        if session.contains(run_dir):
            return session
    if cfg is None:
        return None
    if run_dir not in _OWN:
        _OWN[run_dir] = Session(run_dir, cfg, config=config)
    return _OWN[run_dir]


def resumed_at(run_dir: str | Path, step: int) -> None:
    """A run folder resumes after ``step``: its TensorBoard events from ``step + 1`` on are redone."""
    _PURGE[Path(run_dir).resolve()] = step + 1


def close_own(run_dir: str | Path) -> None:
    """End a standalone run's loggers (flush and close; W&B/MLflow mark the run finished)."""
    session = _OWN.pop(Path(run_dir).resolve(), None)
    if session is not None:
        session.close()


@atexit.register
def _close_all() -> None:
    for session in [*_OWN.values(), *_ACTIVE]:
        session.close()
    _OWN.clear()
