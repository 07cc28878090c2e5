"""Whole-slide images to fixed-size tissue tiles (``gensis tile``).

    gensis.tiling.tile(slides="slides/", out="tiles.zip", tile_size=224, mpp=0.5)

Slides are read with OpenSlide when it is installed, else tiffslide (``pip install
"gensis[wsi]"``). Tissue is found by Otsu on HSV saturation of a thumbnail; tiles are read
at the pyramid level closest above the target resolution and resized with Lanczos. Finished
slides are recorded, so an interrupted run resumes where it stopped (see
:mod:`gensis.tiling.output` for the layout and the atomicity rules).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gensis.config.overrides import build_config
from gensis.config.tiling import TileConfig
from gensis.errors import DataError
from gensis.runtime.guards import guard_paths
from gensis.runtime.lock import released_after
from gensis.tiling.output import Output
from gensis.tiling.run import SlideOutcome, find_slides, run_slides, slide_ids
from gensis.tiling.slide import Slide, require_backend

__all__ = ["TileConfig", "TileResult", "Slide", "run_tile", "tile", "tile_config"]

log = logging.getLogger("gensis.tile")


@dataclass
class TileResult:
    out: Path  # the tile folder or zip
    manifest: Path  # manifest.csv of every tile in ``out`` (for a zip: the copy beside it)
    n_slides: int  # slides found
    n_skipped: int  # already finished by an earlier run
    n_tiled: int  # tiled now (including slides without tissue)
    n_empty: int  # tiled now, but no tile had enough tissue
    n_failed: int  # unreadable or unusable, skipped
    n_tiles: int  # tiles written by this run
    n_tiles_total: int  # tiles in the manifest (all runs)
    seconds: float
    tiles_per_s: float
    failures: list[str] = field(default_factory=list)  # one line per failed slide


def tile_config(overrides: dict[str, Any] | None = None, config_file: str | None = None, **kwargs: Any) -> TileConfig:
    """The resolved config: YAML file < keyword settings < ``overrides`` (one-line ConfigError).

    The config is flat, so keywords need no flattening (and gensis.api, which imports torch,
    is not needed).
    """
    return build_config(TileConfig, {**kwargs, **(overrides or {})}, config_file=config_file)


@released_after
def tile(overrides: dict[str, Any] | None = None, *, config_file: str | None = None, **kwargs: Any) -> TileResult:
    """Tile the slides ``slides`` into ``out`` (folder, or .zip) and write ``manifest.csv``."""
    cfg = tile_config(overrides, config_file, **kwargs)
    guard_paths(cfg)
    return run_tile(cfg)


def run_tile(cfg: TileConfig) -> TileResult:
    """``gensis tile`` on a resolved config (the output guard has passed)."""
    t0 = time.perf_counter()
    paths = find_slides(cfg.slides)
    ids = slide_ids(paths)
    require_backend()  # a missing reader is one error up front, not one per slide
    output = Output(cfg)
    output.prepare()
    done = output.done_ids()
    jobs = [(p, i) for p, i in zip(paths, ids, strict=True) if i not in done]
    if len(jobs) < len(paths):
        log.info("%d of %d slides already tiled in %s; skipping them", len(paths) - len(jobs), len(paths), cfg.out)
    outcomes = run_slides(jobs, cfg)
    _fail_if_all_failed(outcomes)
    manifest, rows = output.finish()
    if not rows:
        raise DataError(f"no tissue tiles in any slide of {cfg.slides}; check the slides or lower min_tissue")
    return _result(cfg, manifest, len(paths), outcomes, len(rows), time.perf_counter() - t0)


def _fail_if_all_failed(outcomes: list[SlideOutcome]) -> None:
    errors = [o.error for o in outcomes if o.error is not None]
    if outcomes and len(errors) == len(outcomes):
        raise DataError(errors[0] if len(errors) == 1 else f"all {len(errors)} slides failed; first: {errors[0]}")


def _result(
    cfg: TileConfig, manifest: Path, n_slides: int, outcomes: list[SlideOutcome], n_total: int, seconds: float
) -> TileResult:
    ok = [o for o in outcomes if o.error is None]
    n_tiles = sum(o.n_tiles for o in ok)
    result = TileResult(
        out=Path(cfg.out),
        manifest=manifest,
        n_slides=n_slides,
        n_skipped=n_slides - len(outcomes),
        n_tiled=len(ok),
        n_empty=sum(o.n_tiles == 0 for o in ok),
        n_failed=len(outcomes) - len(ok),
        n_tiles=n_tiles,
        n_tiles_total=n_total,
        seconds=round(seconds, 2),
        tiles_per_s=round(n_tiles / seconds, 1) if seconds > 0 else 0.0,
        failures=[o.error for o in outcomes if o.error is not None],
    )
    log.info(
        "%d tiles from %d slides in %.1f s (%.1f tiles/s) -> %s", n_tiles, len(ok), seconds, result.tiles_per_s, cfg.out
    )
    return result
