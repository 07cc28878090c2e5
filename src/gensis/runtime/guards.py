"""One guard for every command: what it reads is never what it writes.

Each path field of a command's typed config carries its role (config/paths.py); a string field
without one is an input whenever it names something on disk, so a new path field is guarded by
default. :func:`guard_paths` reads the roles off the config (and a config's
``extra_outputs()``: files written beside ``out``) and refuses, before any work, by four rules:

- ``inside-input``: an output that is, contains or lies inside an input;
- ``inside-run``: an output inside the run folder an input belongs to (``encoder=run/exported/
  encoder.safetensors`` protects all of ``run``, as ``encoder=run`` does);
- ``foreign-file``: an output that would replace or merge into a file gensis did not write;
- ``foreign-folder``: an output folder that exists, is not empty and holds no gensis output.

Before them, an input that exists but is no regular file or folder (a FIFO, a device, also
through a link) is refused by the rule ``not-a-file``.

Each refusal is one line that names the rule. Every output folder is locked by the code that
first writes into it (runtime/lock.py); the lock file also marks the folder as gensis's.
"""

from __future__ import annotations

import os
import stat
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from safetensors import SafetensorError

from gensis.config.commands import product_of
from gensis.config.paths import Role
from gensis.errors import ConfigError, GensisError, by_rule
from gensis.runtime.products import file_is_gensis, folder_is_gensis, folder_kind, run_folder_of, safetensors_metadata
from gensis.runtime.trust import what_it_is


def path_role(field: Any) -> Role | None:
    """The role a config field was given (config/paths.py), or None."""
    stack = [*field.metadata, field.annotation]
    while stack:
        item = stack.pop()
        if isinstance(item, Role):
            return item
        stack.extend(getattr(item, "__metadata__", ()))
        stack.extend(typing.get_args(item))
    return None


def config_paths(cfg: BaseModel, prefix: str = "") -> dict[str, tuple[Role, str]]:
    """Every path of ``cfg`` by dotted key, with its role (unmarked strings naming a path: inputs)."""
    found: dict[str, tuple[Role, str]] = {}
    for name, field in type(cfg).model_fields.items():
        value, key = getattr(cfg, name), f"{prefix}{name}"
        if isinstance(value, BaseModel):
            found.update(config_paths(value, f"{key}."))
            continue
        if not isinstance(value, str) or not value:
            continue
        role = path_role(field)
        if role is None and _exists(value):
            role = Role.INPUT
        if role is not None and role is not Role.SCRATCH:
            found[key] = (role, value)
    return found


def _exists(value: str) -> bool:
    try:
        return Path(value).expanduser().exists()
    except (OSError, ValueError):
        return False


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


# ---- what gensis wrote (runtime/products.py) -------------------------------------------------------


def _recorded_inputs(cfg: BaseModel) -> dict[str, str]:
    """Inputs a command reads without naming them: the encoder a generator records, used when
    ``encoder`` is not given (generate, show). Unreadable files are left to their readers."""
    generator, encoder = getattr(cfg, "generator", None), getattr(cfg, "encoder", "")
    if not isinstance(generator, str) or encoder is not None:
        return {}
    from gensis.runtime.checkpoint import resolve_exported  # torch: only generate and show get here

    try:
        recorded = safetensors_metadata(resolve_exported(generator, "generator")).get("encoder")
    except (GensisError, OSError, ValueError, SafetensorError):
        return {}
    return {"encoder (recorded in the generator)": recorded} if isinstance(recorded, str) and recorded else {}


def _same_kind(found: str, wanted: str) -> bool:
    return found == wanted or (found == "run" and (wanted.endswith(" run") or wanted == "pipeline"))


# ---- the guard ----------------------------------------------------------------------------------


def _outputs(cfg: BaseModel, paths: dict[str, tuple[Role, str]]):
    """(key, path, is_folder) of everything the command writes: ``out`` first, then what it writes
    beside it (asked for only after ``out`` passed: a bad ``out`` is named by its rule first)."""
    for key, (role, value) in paths.items():
        if role is Role.OUTPUT_DIR or (role is Role.OUTPUT_ANY and not Path(value).suffix):
            yield key, value, True
        elif role in (Role.OUTPUT_FILE, Role.OUTPUT_ANY):
            yield key, value, False
    extra = getattr(cfg, "extra_outputs", None)
    for path, is_folder in extra() if extra else []:
        yield "out", str(path), is_folder


def _refuse(rule: str, message: str) -> None:
    raise ConfigError(by_rule(rule, message))


def check_output(key: str, out: str, is_folder: bool, inputs: dict[str, str], kind: str | None = None) -> None:
    """Refuse ``out`` by the four rules (module docstring); ``inputs`` maps keys to paths and
    ``kind`` is what the command keeps in an out folder (a folder of another kind is refused)."""
    try:
        _check_output(key, out, is_folder, inputs, kind)
    except OSError as exc:  # a name too long, a loop of links, no permission: one line, before any work
        _refuse("foreign-file", f"{key}={out}: not a usable path ({exc.strerror or exc})")


def _writable(key: str, out: str, target: Path) -> None:
    """The folder that will hold ``out`` (or the nearest one that exists) must take new files: a
    read-only place is refused before any work, not by a traceback after it."""
    place = target if target.is_dir() else next((p for p in target.parents if p.exists()), target.parent)
    if not os.access(place, os.W_OK | os.X_OK):
        _refuse("not-writable", f"{key}={out}: {place} is read-only for this user; choose another {key}=")


def _check_output(key: str, out: str, is_folder: bool, inputs: dict[str, str], kind: str | None) -> None:
    target = _resolved(out)
    for in_key, path in inputs.items():
        if not _exists(path):
            continue  # a missing input is reported by its reader; a hub id is no path
        source = _resolved(path)
        if target == source or source in target.parents or target in source.parents:
            where = "is" if target == source else ("lies inside" if source in target.parents else "contains")
            _refuse(
                "inside-input",
                f"{key}={out} {where} the input {in_key}={path}; gensis never writes over its "
                f"inputs: choose another {key}=",
            )
        run = run_folder_of(source)
        if run is not None and run in target.parents:
            _refuse(
                "inside-run",
                f"{key}={out} lies inside {run}, the gensis run folder of the input "
                f"{in_key}={path}; write outside it: choose another {key}=",
            )
    under_file = next((p for p in target.parents if p.is_file()), None)
    if under_file is not None:
        _refuse("foreign-file", f"{key}={out} lies under the file {under_file}: choose another {key}=")
    if (target.exists() or target.is_symlink()) and not (target.is_file() or target.is_dir()):
        what = what_it_is(target.lstat().st_mode)
        _refuse("foreign-file", f"{key}={out} is {what}, not a file or folder gensis writes: choose another {key}=")
    if target.is_file() or target.is_symlink():
        if is_folder:
            _refuse("foreign-file", f"{key}={out} is a file; this command writes a folder there: choose another {key}=")
        if not file_is_gensis(target):
            _refuse(
                "foreign-file",
                f"{key}={out} exists and is not a result gensis wrote there (a file of "
                f"yours, or another part of a gensis output); it is never replaced or merged into: "
                f"choose another {key}=",
            )
    elif target.is_dir():
        if not is_folder:
            _refuse(
                "foreign-folder", f"{key}={out} is a folder; this command writes a file there: choose another {key}="
            )
        if any(target.iterdir()) and not folder_is_gensis(target):
            around = run_folder_of(target)
            what = f"a part of the gensis output {around}" if around is not None else "a folder of other files"
            _refuse(
                "foreign-folder",
                f"{key}={out} is {what}, not an output of this command; gensis writes "
                f"only into a new or empty folder or one of its own: choose another {key}=",
            )
        found = folder_kind(target)
        if kind is not None and found is not None and not _same_kind(found, kind):
            _refuse(
                "foreign-folder",
                f"{key}={out} holds a gensis {found}; this command writes a {kind}: choose another {key}=",
            )
    _writable(key, out, target)


def check_inputs_are_files(inputs: dict[str, str]) -> None:
    """An input that exists must be a regular file or a folder (through links): a FIFO would hang
    the reader and a device would be read without end, so either is named in one line instead."""
    for key, value in inputs.items():
        try:
            mode = Path(value).expanduser().stat().st_mode
        except (OSError, ValueError):
            continue  # missing: its reader says so
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            _refuse(
                "not-a-file",
                f"{key}={value} is {what_it_is(mode)}, not a file or folder gensis reads: "
                f"give a file or folder for {key}=",
            )


def guard_paths(cfg: BaseModel) -> None:
    """Refuse ``cfg``'s inputs that are no files, then its outputs by the four rules, before any
    work (nothing is created here)."""
    paths = config_paths(cfg)
    inputs = {k: v for k, (role, v) in paths.items() if role is Role.INPUT} | _recorded_inputs(cfg)
    check_inputs_are_files(inputs)
    product = product_of(type(cfg))
    kind = product.kind if product is not None else None
    for key, out, is_folder in _outputs(cfg, paths):
        check_output(key, out, is_folder, inputs, kind if is_folder and out == getattr(cfg, "out", None) else None)


def refuse_inputs_inside(out: str, inputs: dict[str, str], why: str) -> None:
    """``gensis run``: inputs the user gives may not lie inside the pipeline's ``out`` (it writes there)."""
    root = _resolved(out)
    for key, path in inputs.items():
        if path and _exists(path) and (_resolved(path) == root or root in _resolved(path).parents):
            _refuse("input-inside-out", f"{key}={path} lies inside out={out}, {why}; move it out of {out}")
