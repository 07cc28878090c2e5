"""What every benchmark reports besides its figures: when, where, and where the line went."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from typing import Any

import torch


def header(name: str, device: torch.device) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    return {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {gpu}",
        "torch": torch.__version__,
        "device": str(device),
    }


def emit(result: dict[str, Any], path: str | None) -> None:
    """Print the result and append it as one JSON line to ``path``."""
    print(json.dumps(result, indent=2))
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(result) + "\n")


def settings_arg(text: str) -> dict[str, Any]:
    """``KEY=VALUE[;KEY=VALUE]`` from the command line (an argparse ``type``: a bad one is a usage error)."""
    import argparse

    from gensis.config.overrides import parse_value

    pairs = [kv.split("=", 1) for kv in text.split(";")]
    if any(len(kv) != 2 or not kv[0].strip() for kv in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE[;KEY=VALUE]")
    return {k.strip(): parse_value(v) for k, v in pairs}
