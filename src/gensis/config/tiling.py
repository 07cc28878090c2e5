"""``gensis tile`` settings: which slides, where to, at which resolution and tile size."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from gensis.config.base import StrictModel
from gensis.config.paths import InputPath, OutputAny
from gensis.config.products import Product

SLIDE_EXTENSIONS = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif")


class TileConfig(StrictModel):
    """Whole-slide images -> fixed-size tissue tiles plus a ``manifest.csv``."""

    product: ClassVar[Product] = Product(
        "tiles",
        marker=".state/settings.json",
        archive_members=("manifest.csv",),
        archive_suffixes=(".zip",),
        archive_state="settings.json",
    )

    slides: InputPath = Field(
        description="a slide file, a folder searched (recursively) for "
        + " ".join(f"*{e}" for e in SLIDE_EXTENSIONS)
        + ", or a glob pattern"
    )
    out: OutputAny = Field(description="output folder, or a path ending in .zip for one zip archive")
    tile_size: int = Field(224, ge=16, le=4096, description="output tile side in pixels")
    mpp: float | None = Field(
        0.5, gt=0, description="target microns per pixel of the tiles (null with no magnification = native)"
    )
    magnification: float | None = Field(
        None, gt=0, description="target objective magnification instead of mpp (10x ~ 1 mpp)"
    )
    slide_mpp: float | None = Field(
        None, gt=0, description="level-0 microns per pixel for slides that do not record it"
    )
    overlap: int = Field(0, ge=0, description="pixels shared by neighbouring tiles (output scale)")
    min_tissue: float = Field(0.5, ge=0, le=1, description="keep tiles with at least this tissue fraction")
    tissue_level_px: int = Field(
        2048, ge=64, le=16384, description="longest side of the thumbnail used for tissue detection"
    )
    format: Literal["png", "jpeg"] = Field("png", description="tile image format")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality (format=jpeg only)")
    workers: int = Field(1, ge=1, le=64, description="slides tiled in parallel (processes)")
    strict: bool = Field(False, description="stop at the first unusable slide instead of skipping it")
    max_tiles_per_slide: int | None = Field(
        None, ge=1, description="keep an evenly spread subset of at most N tiles per slide"
    )

    def extra_outputs(self) -> list[tuple[Path, bool]]:
        """A zip's resume state beside it (for the output guard)."""
        return [(Path(f"{self.out}.parts"), True)] if self.is_zip else []

    @model_validator(mode="before")
    @classmethod
    def _magnification_replaces_default_mpp(cls, data: Any) -> Any:
        """Asking for a magnification drops the default mpp, but both given explicitly is an error."""
        if isinstance(data, dict) and data.get("magnification") is not None:
            if data.get("mpp") is not None:
                raise ValueError("give either mpp or magnification, not both (set mpp=null)")
            data = {**data, "mpp": None}
        return data

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> TileConfig:
        if self.overlap >= self.tile_size:
            raise ValueError(f"overlap must be smaller than tile_size ({self.tile_size}), got {self.overlap}")
        return self

    @property
    def is_zip(self) -> bool:
        return self.out.lower().endswith(".zip")

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else "png"
