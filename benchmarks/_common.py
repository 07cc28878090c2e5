"""What every benchmark reports besides its figures: when, where, and where the line went."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from typing import Any

import torch


def header(name: str, device: torch.device) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    return {
        "benchmark": name,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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
