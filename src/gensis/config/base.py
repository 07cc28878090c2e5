"""What every command's config builds on: strict models, intervals, the data section and
GenView's foreground fit (shared by stage 1's quality loss and stage 2's adaptive noise)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gensis.config.paths import InputPath, ScratchDir

Interval = tuple[float, float]

MAX_IMAGE_BYTES = 256 << 20  # far above any real image file; a guard against /dev/zero named zero.png
# ``max_image_bytes`` of every command that reads images (the data section, and the flat commands).
MaxImageBytes = Annotated[
    int,
    Field(
        ge=1,
        description="skip (with a warning naming it) an image file larger than this, or any "
        "file that is not a regular file (a FIFO, a device)",
    ),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_interval(name: str, lo_hi: Interval, lo: float, hi: float) -> None:
    a, b = lo_hi
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name} must satisfy {lo} <= min <= max <= {hi}, got {lo_hi}")


class DataConfig(StrictModel):
    """Where the images come from and at which resolution they are used."""

    path: InputPath | None = Field(None, description="training images: folder, .zip or .npz")
    eval_path: InputPath | None = Field(
        None, description="labelled held-out images for online kNN (needs labels in path too)"
    )
    resolution: int = Field(32, ge=8, le=1024, description="images are made square at this size")
    strict: bool = Field(False, description="fail on the first unreadable image instead of skipping")
    cache_dir: ScratchDir | None = Field("auto", description="'auto' = user cache dir, null = no cache, else a folder")
    max_images: int | None = Field(None, ge=1, description="use a fixed spread subset of N images")
    num_workers: int = Field(2, ge=0, le=64, description="decoder processes for large images")
    max_image_bytes: MaxImageBytes = MAX_IMAGE_BYTES


class ForegroundFitConfig(StrictModel):
    """GenView's foreground maps from an encoder's own features (arXiv 2403.12003, Sec. 3.2):
    the first principal component of its feature map, fitted on a sample of the images."""

    quantile: float = Field(
        0.65, ge=0, le=1, description="foreground threshold: this data-set quantile of the projection"
    )
    sign: Literal["auto", "positive", "negative"] = Field(
        "auto", description="foreground side of the component; auto: the side higher at the centre (foreground/pca.py)"
    )
    fit_images: int = Field(2000, ge=1, description="images sampled to fit the PCA")
    resolution: int | None = Field(
        None,
        ge=8,
        le=1024,
        description="resize images to this size for the encoder's feature map (e.g. 96 for "
        "32-px images and a stride-32 CNN, whose map would be one cell)",
    )
