"""The augmentations a stage-1 run recorded in its exported encoder (``augment`` metadata):
stage 2 flips its targets as stage 1 did, and the real-view ceiling is drawn with them."""

from __future__ import annotations

import json


def stage1_augment(encoder_meta: dict[str, str]) -> dict | None:
    """The stage-1 ``augment`` section recorded in an exported encoder, or None."""
    raw = encoder_meta.get("augment")
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
