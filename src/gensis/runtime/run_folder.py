"""The fixed layout of a run folder (as in lightly-train).

    <out>/config.yaml              resolved config
    <out>/metrics.jsonl            one JSON object per logged step / evaluation
    <out>/train.log                human log
    <out>/checkpoints/last.pt      full training state (weights_only-loadable)
    <out>/exported/encoder.safetensors   teacher backbone for downstream use
    <out>/events.out.tfevents.*    TensorBoard (and W&B / MLflow when enabled: ``loggers``)

``log_metrics`` and ``log_image`` also feed the experiment loggers (runtime/loggers.py), so the
training loops know nothing of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gensis.config.base import MAX_IMAGE_BYTES
from gensis.config.overrides import flatten, load_yaml, to_yaml, validate
from gensis.config.schema import PretrainConfig
from gensis.errors import CheckpointError, ConfigError, GensisError, by_rule
from gensis.runtime import lock, trust
from gensis.runtime import loggers as _loggers
from gensis.runtime.io import atomic_write_text

LOGGER_NAME = "gensis"

# Settings that may differ between an interrupted run and its resumption ("out": a moved folder;
# "data.path": moved data, whose content every checkpoint checks by its data fingerprint instead).
RESUME_MUTABLE = frozenset(
    {
        "out",
        "train.progress",
        "train.device",
        "train.max_steps",
        "data.num_workers",
        "data.max_image_bytes",
        "data.cache_dir",
        "data.path",
    }
)
# First line of every config.yaml gensis writes: a config.yaml without it is the user's, never overwritten.
CONFIG_MARK = "# written by gensis: the resolved config of this run\n"
EXPORTED = "exported"  # the folder of a run's exported files


class RunFolder:
    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self._loggers_cfg: Any = None  # the run's ``loggers`` section, from write_config
        self._config: dict[str, Any] | None = None
        # What ties a checkpoint to this run: fingerprints of its settings and data (bind()).
        self.stamp: dict[str, str] | None = None
        # The stamps older checkpoints carry: before inputs were recorded relative to the run, and
        # before data.path was mutable.
        self._legacy_configs: tuple[str, ...] = ()
        self._stale_metrics = False

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.root / "train.log"

    @property
    def last_checkpoint(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def exported_encoder(self) -> Path:
        return self.root / EXPORTED / PretrainConfig.product.exports[0]

    def create(self) -> None:
        """Make the folder and take its lock (runtime/lock.py): one writing process at a time."""
        try:
            lock.hold(self.root)
            (self.root / "checkpoints").mkdir(parents=True, exist_ok=True)
            (self.root / EXPORTED).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GensisError(f"cannot create run folder {self.root}: {exc.strerror or exc}") from None
        if self._stale_metrics:
            atomic_write_text(self.metrics_path, "")
            self._stale_metrics = False

    def check_new_or_resume(self, cfg: BaseModel, resume: bool, mutable: frozenset[str] = RESUME_MUTABLE) -> None:
        """A fresh run needs a folder without a run; a resumed one the same settings (but ``mutable``)."""
        if not resume:
            self._check_fresh(cfg, mutable)
            return
        if not self.last_checkpoint.exists():
            raise CheckpointError(f"nothing to resume: {self.last_checkpoint} does not exist")
        changed = self.config_changes(cfg, mutable)
        if changed:
            raise ConfigError(
                f"--resume: config differs from {self.config_path} at {', '.join(changed[:5])}; "
                "resume with the same settings or start a new run (init_from= loads weights only)"
            )

    def non_finite_loss(self, value: float, where: str, fix: str) -> GensisError:
        """The error for a NaN or infinite loss; it names a checkpoint only when one exists."""
        kept = (
            f"the last good checkpoint is kept at {self.last_checkpoint} (--resume continues from it)"
            if self.last_checkpoint.is_file()
            else "no checkpoint had been written yet"
        )
        return GensisError(f"loss is {value} at {where}; stopped, {kept}; {fix}")

    def written_files(self) -> list[str]:
        """The files of a run (checkpoint, exports, metrics) present in the folder, relative to it."""
        found = ["checkpoints/last.pt"] if self.last_checkpoint.is_file() else []
        exported = self.root / EXPORTED
        if exported.is_dir():
            found += [f"exported/{p.name}" for p in sorted(exported.iterdir()) if p.is_file()]
        return found + (["metrics.jsonl"] if self.metrics_path.is_file() else [])

    def _check_fresh(self, cfg: BaseModel, mutable: frozenset[str]) -> None:
        """Refuse any folder that holds a run's output or a config.yaml gensis did not write (with
        the same settings): only a run that died before its first checkpoint may start over."""
        found = self.written_files()
        if found and (found != ["metrics.jsonl"] or not self.config_path.exists()):
            raise GensisError(
                by_rule(
                    "finished-run",
                    f"{self.root} already holds a run ({', '.join(found[:3])}); pass --resume to "
                    "continue it or choose another out=",
                )
            )
        if not self.config_path.exists():
            return
        self._stale_metrics = bool(found)  # a run that died before its first checkpoint starts over
        if not self.config_is_gensis():
            raise ConfigError(
                f"{self.config_path}: not written by gensis; it is never overwritten, choose another out="
            )
        changed = self.config_changes(cfg, mutable)
        if changed:
            raise ConfigError(
                by_rule(
                    "finished-run",
                    f"{self.root} holds a run with other settings "
                    f"({', '.join(changed[:5])}); choose another out= or remove that folder",
                )
            )

    def config_is_gensis(self) -> bool:
        try:  # a regular file only: a FIFO named config.yaml must not hang the guard
            head = trust.read_regular(self.config_path, trust.MAX_TEXT_BYTES, "config")
        except (OSError, GensisError):
            return False
        return head.decode("utf-8", "replace").startswith(CONFIG_MARK)

    def bind(self, cfg: BaseModel, data_fingerprint: str, mutable: frozenset[str] = RESUME_MUTABLE) -> None:
        """Fingerprints of this run's settings and data, recorded in (and checked against) its checkpoints."""
        out = getattr(cfg, "out", None)
        anchor = os.path.dirname(os.path.normpath(out)) if out else None
        # Inputs beside the run (a pipeline's earlier stages) count by their place relative to it,
        # so a project folder moved whole, its paths given anew, resumes as the same run.
        self.stamp = {"config": config_fingerprint(cfg, mutable, anchor or None), "data": data_fingerprint}
        self._legacy_configs = (config_fingerprint(cfg, mutable), config_fingerprint(cfg, mutable - {"data.path"}))

    def check_stamp(self, state: dict[str, Any]) -> None:
        """A checkpoint of another run (settings or data) is refused; older ones carry no stamp."""
        saved = state.get("run")
        if self.stamp is None or not isinstance(saved, dict):
            return
        if saved.get("config") not in (self.stamp["config"], *self._legacy_configs):
            raise CheckpointError(
                by_rule(
                    "fingerprint",
                    f"{self.last_checkpoint}: saved by a run with other settings (config fingerprint "
                    f"{str(saved.get('config'))[:12]}, this run {self.stamp['config'][:12]}); "
                    "it belongs to another run",
                )
            )
        if saved.get("data") != self.stamp["data"]:
            raise CheckpointError(
                by_rule(
                    "fingerprint",
                    f"{self.last_checkpoint}: trained on other data (data fingerprint "
                    f"{str(saved.get('data'))[:12]}, the data now gives {self.stamp['data'][:12]}); restore that data "
                    "or start a new run",
                )
            )

    def config_changes(self, cfg: BaseModel, mutable: frozenset[str] = RESUME_MUTABLE) -> list[str]:
        """Dotted keys whose value in ``cfg`` differs from the saved config.yaml (but ``mutable``)."""
        try:
            saved = validate(type(cfg), load_yaml(self.config_path))
        except ConfigError as exc:  # another command's config, or edited by hand
            message = str(exc) if str(self.config_path) in str(exc) else f"{self.config_path}: {exc}"
            raise ConfigError(message) from None
        new, old = _flatten(cfg.model_dump()), _flatten(saved.model_dump())
        moved = _moved(getattr(saved, "out", None), getattr(cfg, "out", None))
        # Loggers change where metrics are copied to, never the run: they may differ on resume.
        return [
            k
            for k in new
            if new[k] != old.get(k)
            and k not in mutable
            and not k.startswith("loggers.")
            and not _moved_along(old.get(k), new[k], moved)
        ]

    def write_config(self, cfg: BaseModel) -> None:
        """Write config.yaml, unless it already holds these settings (a resume touches no output;
        a moved folder keeps its old ``out``, which resumption ignores)."""
        self._loggers_cfg = getattr(cfg, "loggers", None)
        self._config = cfg.model_dump(mode="json")
        if self.config_path.exists() and self.config_is_gensis() and not self.config_changes(cfg, frozenset({"out"})):
            return
        atomic_write_text(self.config_path, CONFIG_MARK + to_yaml(cfg))

    def log_metrics(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        clean.setdefault("time", round(time.time(), 3))
        trust.append_text(self.metrics_path, json.dumps(clean) + "\n")  # never through a planted link
        session = self._session()
        if session is not None:
            session.log_metrics(self.root, clean)

    def log_image(self, name: str, image: Any, step: int | None = None) -> None:
        """A picture (PNG path, (H, W, C) array or (C, H, W) tensor) for the experiment loggers
        (default step: the last logged one); nothing without loggers (the PNG is the record)."""
        session = self._session()
        if session is not None:
            session.log_image(self.root, name, image, step)

    def has_loggers(self) -> bool:
        """Whether log_image goes anywhere (to skip drawing a picture nobody receives)."""
        return self._session() is not None

    def _session(self) -> _loggers.Session | None:
        return _loggers.session_for(self.root, self._loggers_cfg, self._config)

    def close_loggers(self) -> None:
        """Flush and close this run's own loggers (a ``gensis run`` experiment closes with the pipeline)."""
        _loggers.close_own(self.root)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The run's records; a link, a FIFO or a line that is no JSON record is one line (a last
        line cut short by a crash mid-append is dropped: the resume redoes it)."""
        if not (self.metrics_path.exists() or self.metrics_path.is_symlink()):
            return []
        raw = trust.read_owned(self.metrics_path, MAX_IMAGE_BYTES)
        lines = [line for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
        records: list[dict[str, Any]] = []
        for n, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                if n == len(lines) and records:
                    break
                raise CheckpointError(
                    f"{self.metrics_path}: line {n} is not a record gensis wrote; this is not "
                    "a metrics file of a gensis run (restore it, or start a new run)"
                )
            records.append(record)
        return records

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop records written after the checkpoint's step (they will be redone)."""
        records = [r for r in self.read_metrics() if r.get("step", -1) <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))
        _loggers.resumed_at(self.root, step)

    @contextlib.contextmanager
    def started(self, cfg: BaseModel, data_fingerprint: str, *, is_main: bool = True) -> Iterator[None]:
        """The preamble every trainer runs once its inputs are read and checked (bad input leaves no
        folder): bind the run to its settings and data; then rank 0 creates the folder, writes the
        config and logs to ``train.log`` while the block runs, and other ranks log warnings only."""
        self.bind(cfg, data_fingerprint)
        if not is_main:
            logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)  # one console log, rank 0's
            yield
            return
        self.create()
        self.write_config(cfg)
        with self.logging_to_file():
            yield

    @contextlib.contextmanager
    def logging_to_file(self) -> Iterator[None]:
        """Everything gensis logs goes to ``train.log`` while the block runs."""
        handler = self.attach_log()
        try:
            yield
        finally:
            self.close_loggers()  # the training block ends: its event files are complete
            logging.getLogger(LOGGER_NAME).removeHandler(handler)
            handler.close()

    def attach_log(self) -> logging.Handler:
        handler = OwnedFileHandler(self.log_path)
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger(LOGGER_NAME)
        # The run log is complete whoever called us (the CLI, or a script that set no logging).
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        return handler


class OwnedFileHandler(logging.FileHandler):
    """The run's train.log, opened through :func:`gensis.runtime.trust.open_owned` (no link is
    followed), with names that are not UTF-8 written escaped rather than failing the record."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True, errors="backslashreplace")
        self.stream = self._open()

    def _open(self):
        fd = trust.open_owned(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")


def _moved(old_out: str | None, new_out: str | None) -> tuple[Path, Path] | None:
    """(old folder, new folder) holding a run folder that was moved with its neighbours (a pipeline's
    stages), told by its ``out``: same name, another place. None when it was not moved."""
    if not old_out or not new_out:
        return None
    old, new = Path(old_out), Path(new_out)
    if old.name != new.name or os.path.normpath(old.parent) == os.path.normpath(new.parent):
        return None
    return old.parent, new.parent


def _moved_along(old_value: str | None, new_value: str, moved: tuple[Path, Path] | None) -> bool:
    """A saved path inside the old folder that now names the same place inside the new one (the
    pretrain folder an input of a moved pipeline's later stage points at): not another setting."""
    if moved is None or old_value is None:
        return False
    try:
        old_path, new_path = json.loads(old_value), json.loads(new_value)
    except ValueError:
        return False
    if not isinstance(old_path, str) or not isinstance(new_path, str):
        return False
    old_root, new_root = moved
    inside = _inside(old_path, old_root)
    return inside is not None and os.path.normpath(os.path.join(new_root, inside)) == os.path.normpath(new_path)


def _inside(path: str | os.PathLike, root: str | os.PathLike) -> str | None:
    """``path`` relative to ``root`` when it lies inside it (both absolute or both relative), else None."""
    path, root = os.path.normpath(path), os.path.normpath(root)
    if os.path.isabs(path) != os.path.isabs(root) or os.path.commonpath([path, root]) != root:
        return None
    return os.path.relpath(path, root)


def config_fingerprint(cfg: BaseModel, mutable: frozenset[str] = RESUME_MUTABLE, anchor: str | None = None) -> str:
    """sha256 of the settings that define a run (all but ``mutable``), stable across processes;
    with ``anchor`` (the folder holding the run), a path inside it counts by its place there."""
    # Loggers only say where metrics are copied to: they may change on resume (config_changes).
    flat = {k: v for k, v in _flatten(cfg.model_dump()).items() if k not in mutable and not k.startswith("loggers.")}
    if anchor is not None:
        flat = {k: _anchored(v, anchor) for k, v in flat.items()}
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()


def _anchored(value: str, anchor: str) -> str:
    """A JSON-encoded setting, a path inside ``anchor`` written relative to it."""
    try:
        path = json.loads(value)
    except ValueError:
        return value
    inside = _inside(path, anchor) if isinstance(path, str) and path else None
    return value if inside is None else json.dumps(f"<beside the run>/{inside}")


def _flatten(tree: dict[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in flatten(tree).items()}


def setup_console_logging(level: int = logging.INFO) -> None:
    """Console output at ``level``; the logger itself stays at INFO so run logs are complete."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    console = [h for h in logger.handlers if getattr(h, "_gensis_console", False)]
    if not console:
        h: logging.Handler = logging.StreamHandler()
        h.setFormatter(logging.Formatter("%(message)s"))
        h._gensis_console = True  # type: ignore[attr-defined]
        logger.addHandler(h)
        console = [h]
    for h in console:
        h.setLevel(level)
