"""Build a config from a preset plus ``key=value`` overrides, with one-line errors.

Keys are dotted paths (``optim.lr=0.1``); values are parsed as YAML scalars/lists
(``augment.global_crop_scale=[0.2,1]``). An unknown key lists the valid keys of its section;
a bad value names the key and the allowed range.
"""

from __future__ import annotations

import copy
import stat
from pathlib import Path
from typing import Any, TypeVar, cast, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from gensis.config.presets import get_preset
from gensis.errors import ConfigError, first_line

M = TypeVar("M", bound=BaseModel)


def parse_value(raw: str) -> Any:
    """One ``key=value`` value: numbers, booleans, null, ``[lists]`` and ``{maps}`` as YAML, text literally.

    YAML would cut ``/x/run #1`` at its comment and fold a newline into a space; a path is
    text, so any value that YAML reads as a string, or that holds a ``#`` or a line break, is
    kept exactly as typed (quote it, ``'...'``, to get YAML's string instead)."""
    if raw == "" or raw.startswith("~"):
        return raw  # "~" is the home folder of a path, not YAML's null (write null for that)
    quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
    if not quoted and ("#" in raw or "\n" in raw or "\r" in raw):
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if quoted or isinstance(value, (bool, int, float)) or value is None:
        return value
    kind = {"[": list, "{": dict}.get(raw.lstrip()[:1])  # flow lists and mappings only
    return value if kind is not None and isinstance(value, kind) else raw


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}`` (see :func:`parse_value`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {item!r}")
        out[key.strip()] = parse_value(raw)
    return out


def valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(valid_keys(ann, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def config_range(model: type[BaseModel], key: str) -> tuple[float, float]:
    """The bounds (ge/gt, le/lt) a config field accepts, for checking values read from files."""
    lo, hi = float("-inf"), float("inf")
    for m in model.model_fields[key].metadata:
        lo = getattr(m, "ge", getattr(m, "gt", lo))
        hi = getattr(m, "le", getattr(m, "lt", hi))
    return lo, hi


def _set_dotted(tree: dict[str, Any], model: type[BaseModel], key: str, value: Any) -> None:
    parts = key.split(".")
    node, cls = tree, model
    for i, part in enumerate(parts):
        fields = cls.model_fields
        if part not in fields:
            section = ".".join(parts[:i])
            names = valid_keys(cls, f"{section}." if section else "")
            raise ConfigError(f"unknown key {key!r}; valid keys: {', '.join(names)}")
        ann = fields[part].annotation
        is_section = isinstance(ann, type) and issubclass(ann, BaseModel)
        inner = i < len(parts) - 1 and (is_section or get_origin(ann) is dict)
        if inner and not isinstance(node.get(part, {}), dict):
            # a config file gave the section a plain value (train: 5): named, not a TypeError
            raise ConfigError(
                f"{'.'.join(parts[: i + 1])}: a section of key: value pairs, got "
                f"{node[part]!r}; {key} cannot be set inside it"
            )
        if i < len(parts) - 1 and get_origin(ann) is dict:
            # A free-form mapping (e.g. a stage's overrides): the rest of the key is one entry.
            node.setdefault(part, {})[".".join(parts[i + 1 :])] = value
            return
        if i == len(parts) - 1:
            if is_section:
                raise ConfigError(f"{key!r} is a section; set one of its keys, e.g. {key}.<name>=...")
            node[part] = value
            return
        if not is_section:
            raise ConfigError(f"unknown key {key!r}: {'.'.join(parts[: i + 1])} has no sub-keys")
        node = node.setdefault(part, {})
        cls = cast(type[BaseModel], ann)  # is_section: a BaseModel subclass


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections -> dotted keys (``backbone_kwargs`` stays one value, also when given as a
    dotted key such as ``model.backbone_kwargs``: it replaces the preset's, never merges into it)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict) and k.rsplit(".", 1)[-1] != "backbone_kwargs":
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _format_validation_error(exc: ValidationError, errors: list | None = None) -> str:
    parts = []
    for err in exc.errors() if errors is None else errors:
        loc = ".".join(str(x) for x in err["loc"] if not isinstance(x, int)) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = "input" in err and not isinstance(value, dict) and not msg.startswith(loc)
        parts.append(f"{loc}: {msg} (got {value!r})" if shown else (msg if msg.startswith(loc) else f"{loc}: {msg}"))
    return "; ".join(parts)


def validate(model: type[M], tree: dict[str, Any]) -> M:
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None


def check_settings(model: type[BaseModel], overrides: dict[str, Any]) -> dict[str, Any]:
    """Unknown keys and bad values among ``overrides`` (required keys may be left out, as in
    ``gensis config eval``); returns the nested tree of the overrides."""
    tree: dict[str, Any] = {}
    for key, value in overrides.items():
        _set_dotted(tree, model, key, value)
    try:
        model.model_validate(tree)
    except ValidationError as exc:
        errors = [e for e in exc.errors() if e["type"] != "missing"]
        if errors:
            raise ConfigError(_format_validation_error(exc, errors)) from None
    return tree


def _dotted_sections(model: type[BaseModel], tree: dict[str, Any]) -> dict[str, Any]:
    """A YAML file's free-form sections (a stage's overrides in ``gensis run``) in the form
    ``key=value`` gives them: ``pretrain: {train: {epochs: 5}}`` is ``pretrain.train.epochs=5``, so a
    nested section and a dotted one mean the same and are checked the same way."""
    out = dict(tree)
    for name, field in model.model_fields.items():
        value = tree.get(name)
        if get_origin(field.annotation) is dict and isinstance(value, dict):
            out[name] = _all_dotted(value)
    return out


def _all_dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every nested mapping -> dotted keys (a stage section's values are never mappings)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_all_dotted(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def build_config(
    model: type[M],
    overrides: dict[str, Any] | None = None,
    *,
    use_presets: bool = True,
    config_file: str | Path | None = None,
) -> M:
    """Preset (``preset=`` key, default ``default``) < YAML file < dotted overrides."""
    overrides = dict(overrides or {})
    tree: dict[str, Any] = {}
    if config_file is not None:
        tree = _dotted_sections(model, load_yaml(config_file))
    if use_presets and "preset" in model.model_fields:
        name = overrides.get("preset", tree.get("preset", "default"))
        tree = _deep_merge(get_preset(str(name)), tree)
        tree["preset"] = name
    for key, value in overrides.items():
        _set_dotted(tree, model, key, value)
    return validate(model, tree)


MAX_CONFIG_BYTES = 16 << 20


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError:
        raise ConfigError(f"config file not found: {p}") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{p}: a folder, not a config file; give its YAML file (e.g. {p / 'config.yaml'})")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{p}: not a regular file (a FIFO or a device); give a YAML file")
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: over {MAX_CONFIG_BYTES:,} bytes, too large for a config file")
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of keys at the top level")
    return data


def to_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
