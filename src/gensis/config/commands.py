"""Every subcommand's typed config, and the products they write (config/products.py)."""

from __future__ import annotations

from gensis.config import schema as s
from gensis.config.autoencoder import TrainAutoencoderConfig
from gensis.config.base import StrictModel
from gensis.config.export import ExportConfig
from gensis.config.products import Product
from gensis.config.tiling import TileConfig

COMMAND_CONFIGS: dict[str, type[StrictModel]] = {  # in the order the command line lists them
    "run": s.PipelineConfig,
    "pretrain": s.PretrainConfig,
    "train-autoencoder": TrainAutoencoderConfig,
    "train-generator": s.TrainGeneratorConfig,
    "generate": s.GenerateConfig,
    "show": s.ShowConfig,
    "foreground": s.ForegroundConfig,
    "eval-generator": s.EvalGeneratorConfig,
    "eval": s.EvalConfig,
    "export": ExportConfig,
    "embed": s.EmbedConfig,
    "tile": TileConfig,
}

# In the order a folder is recognised (config/products.py): a run folder that exported a
# generator is a generator run even if it also exported an encoder.
PRODUCTS: tuple[Product, ...] = (
    s.PipelineConfig.product,
    s.GenerateConfig.product,
    TileConfig.product,
    s.TrainGeneratorConfig.product,
    TrainAutoencoderConfig.product,
    s.PretrainConfig.product,
    s.ShowConfig.product,
    s.ForegroundConfig.product,
    s.EmbedConfig.product,
    ExportConfig.product,
)


def product_of(config: type) -> Product | None:
    """The product a command's config declares (None: it writes a result file only)."""
    product = getattr(config, "product", None)
    return product if isinstance(product, Product) else None
