"""Guards that keep a command from writing over its own inputs.

Every command names its outputs (``out=``) and inputs (data, encoder, generator, bank...).
An ``out`` that is an input, or lies inside an input folder, would replace or pollute it (a
dataset zip overwritten by embeddings, pictures added to a training folder), so it is refused
before any work starts.
"""

from __future__ import annotations

from pathlib import Path

from gensis.errors import ConfigError


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def refuse_out_over_inputs(out: str | Path | None, inputs: dict[str, str | Path | None], out_key: str = "out") -> None:
    """Raise a one-line ConfigError when ``out`` is, or is inside, one of the existing ``inputs``."""
    if out is None:
        return
    target = _resolved(out)
    for key, path in inputs.items():
        if path is None or not Path(path).expanduser().exists():
            continue  # a missing input is reported by its reader; a hub id is no path
        source = _resolved(path)
        if target == source or source in target.parents:
            where = "is" if target == source else "lies inside"
            raise ConfigError(f"{out_key}={out} {where} the input {key}={path}; gensis never writes over "
                              f"its inputs: choose another {out_key}=")
