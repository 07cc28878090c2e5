"""Foreground maps from an encoder's own features (GenView, arXiv 2403.12003, Sec. 3.2)."""

from gensis.foreground.pca import ForegroundPCA, center_border_regions, spatial_features

__all__ = ["ForegroundPCA", "center_border_regions", "spatial_features"]
