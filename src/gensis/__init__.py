"""gensis: self-supervised learning with generative self-augmentation (Gen-SIS, GenView)."""

__version__ = "0.1.0"
