"""Where tiles go, and how a rerun knows which slides are finished.

Layout of a folder output ``out/``::

    out/<slide_id>/<slide_id>_x<X>_y<Y>.png   tiles (X, Y: level-0 top-left corner)
    out/manifest.csv                          one row per tile, all slides
    out/.state/<slide_id>.done.csv            per-slide rows = the slide's done-marker
    out/.state/settings.json                  the tiling settings this folder was made with

A slide's tiles are written into ``.state/<slide_id>.partial/``, flushed to disk, renamed to
``out/<slide_id>`` in one step, and only then is its marker written (atomically). A crash
therefore leaves either a finished slide with its marker or no marker, and a slide without
a marker is simply tiled again on the next run.

A zip output ``out.zip`` keeps the same state in ``out.zip.parts/``: each slide is written
to its own ``<slide_id>.zip`` (atomically) before its marker ``<slide_id>.done.csv``; at the
end of the run the previous ``out.zip`` and all part zips are merged into a new ``out.zip``
(with ``manifest.csv`` inside, and a copy in ``out.zip.parts/``) that atomically replaces the
old one, then the merged parts are deleted. A rerun thus rewrites the archive once (copying
it), a cost paid for never appending to a zip in place. A merge interrupted after the rename is
harmless: member names are unique, so a repeated merge skips what is already in the archive.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from gensis.config.tiling import TileConfig
from gensis.errors import ConfigError
from gensis.runtime import lock
from gensis.runtime.io import atomic_path, atomic_write, atomic_write_text
from gensis.runtime.trust import read_text

MANIFEST = TileConfig.product.archive_members[0]  # declared with the product (the guard reads it)
DONE_SUFFIX = ".done.csv"
# Settings that change every tile; mixing two of them in one output is refused. slide_mpp is
# not one: it is how a rerun tiles the slides that failed for lack of resolution metadata.
SETTINGS_KEYS = (
    "tile_size",
    "mpp",
    "magnification",
    "overlap",
    "min_tissue",
    "tissue_level_px",
    "format",
    "jpeg_quality",
    "max_tiles_per_slide",
)


@dataclass(frozen=True)
class ManifestRow:
    slide_id: str
    tile: str  # path of the tile inside the output folder / zip
    x: int
    y: int
    size0: int  # level-0 side of the region the tile was resized from
    mpp: float | None
    tissue: float


COLUMNS = list(ManifestRow.__dataclass_fields__)


def rows_to_csv(rows: list[ManifestRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        d = asdict(row)
        d["mpp"] = "" if row.mpp is None else f"{row.mpp:.6g}"
        d["tissue"] = f"{row.tissue:.4f}"
        writer.writerow(d)
    return buf.getvalue()


def read_rows(path: Path) -> list[ManifestRow]:
    with open(path, newline="") as f:
        return [
            ManifestRow(
                r["slide_id"],
                r["tile"],
                int(r["x"]),
                int(r["y"]),
                int(r["size0"]),
                float(r["mpp"]) if r["mpp"] else None,
                float(r["tissue"]),
            )
            for r in csv.DictReader(f)
        ]


class Output:
    """The output folder or zip of one ``tile`` run, with its resume state."""

    def __init__(self, cfg: TileConfig) -> None:
        self.cfg = cfg
        self.root = Path(cfg.out)
        self.is_zip = cfg.is_zip
        self.state = Path(f"{cfg.out}.parts") if self.is_zip else self.root / ".state"

    def prepare(self) -> None:
        """Create the state folder; refuse to mix tiles made with other settings."""
        if self.root.exists() and (self.is_zip != self.root.is_file()):
            kind = "a file" if self.root.is_file() else "a folder"
            raise ConfigError(f"out {self.root} exists and is {kind}; choose another out")
        settings = json.dumps({k: getattr(self.cfg, k) for k in SETTINGS_KEYS}, sort_keys=True)
        marker = self.state / str(TileConfig.product.archive_state)  # also the folder's declared marker
        found = read_text(marker, "tile settings").strip() if marker.exists() else settings
        if found != settings:
            raise ConfigError(
                f"out {self.root} holds tiles made with other settings ({found}); choose a new out or delete it"
            )
        lock.hold(self.state if self.is_zip else self.root)  # one writer (runtime/lock.py)
        self.state.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            atomic_write_text(marker, settings + "\n")

    def done_ids(self) -> set[str]:
        return {p.name[: -len(DONE_SUFFIX)] for p in self.state.glob(f"*{DONE_SUFFIX}")}

    @contextlib.contextmanager
    def slide_sink(self, slide_id: str) -> Iterator[Callable[[str, bytes], object]]:
        """Yield ``add(name, data)`` for one slide's tiles; they become visible only on success."""
        if self.is_zip:
            with atomic_path(self.state / f"{slide_id}.zip") as tmp:
                # PNG and JPEG are already compressed: storing them is as small and much faster.
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                    yield zf.writestr
            return
        partial = self.state / f"{slide_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        yield lambda name, data: (partial / name.split("/", 1)[1]).write_bytes(data)
        if hasattr(os, "sync"):
            os.sync()  # tile bytes on disk before the rename and the marker make them "done"
        final = self.root / slide_id
        shutil.rmtree(final, ignore_errors=True)  # left by a crash between rename and marker
        os.replace(partial, final)

    def mark_done(self, slide_id: str, rows: list[ManifestRow]) -> None:
        """The slide's manifest rows, written atomically after its tiles: its done-marker."""
        atomic_write_text(self.state / f"{slide_id}{DONE_SUFFIX}", rows_to_csv(rows))

    def finish(self) -> tuple[Path, list[ManifestRow]]:
        """Write the manifest of every finished slide (and merge the zip); return its path."""
        rows = [r for p in sorted(self.state.glob(f"*{DONE_SUFFIX}")) for r in read_rows(p)]
        text = rows_to_csv(rows)
        if not self.is_zip:
            atomic_write_text(self.root / MANIFEST, text)
            return self.root / MANIFEST, rows
        parts = sorted(self.state.glob("*.zip"))
        if parts or not self.root.is_file():  # nothing new: leave the archive untouched
            atomic_write(self.root, lambda p: _merge_zips(p, self.root, parts, text))
        for part in parts:
            part.unlink()
        atomic_write_text(self.state / MANIFEST, text)
        return self.state / MANIFEST, rows


def _merge_zips(dest: Path, previous: Path, parts: list[Path], manifest: str) -> None:
    seen: set[str] = {MANIFEST}
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED, allowZip64=True) as out:
        for source in ([previous] if previous.is_file() else []) + parts:
            with zipfile.ZipFile(source) as zf:
                for info in zf.infolist():
                    if info.filename not in seen:
                        seen.add(info.filename)
                        out.writestr(info, zf.read(info))
        out.writestr(MANIFEST, manifest)
