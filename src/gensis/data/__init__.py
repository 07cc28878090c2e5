"""Image datasets: folders, zips and npz files as square RGB uint8 tensors.

``load_images`` reads any supported source; ``demo_digits`` gives a small real labelled
dataset (scikit-learn's UCI digits) for demos and tests.
"""

from .dataset import ImageData, ImageDataset
from .demo import demo_digits
from .loader import load_images

__all__ = ["ImageData", "ImageDataset", "demo_digits", "load_images"]
