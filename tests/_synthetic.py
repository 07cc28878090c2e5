"""Generated labelled images for end-to-end tests: coloured shapes at random places."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = np.array([[230, 40, 40], [40, 90, 230], [40, 200, 60], [240, 200, 30]], dtype=np.float32)


def shapes_dataset(n: int, size: int = 16, n_classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, 3) uint8 images and labels: class k is a square of colour k on noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    images = rng.integers(0, 60, size=(n, size, size, 3)).astype(np.float32)
    for i, k in enumerate(labels):
        side = rng.integers(size // 3, size // 2 + 2)
        y, x = rng.integers(0, size - side + 1, size=2)
        images[i, y : y + side, x : x + side] = COLOURS[k] * rng.uniform(0.7, 1.0)
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.int64)


def write_npz(path: Path, n: int, size: int = 16, seed: int = 0) -> Path:
    images, labels = shapes_dataset(n, size=size, seed=seed)
    np.savez(path, images=images, labels=labels)
    return path


def random_encoder(path: Path, resolution: int = 8) -> Path:
    """An untrained CIFAR-stem ResNet-10t exported as a gensis encoder (a stand-in for stage 1)."""
    import torch

    from gensis.config.schema import ModelConfig
    from gensis.models.backbones import build_encoder
    from gensis.runtime.checkpoint import export_encoder

    torch.manual_seed(0)
    export_encoder(
        path,
        build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), resolution),
        {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"},
    )
    return path


def tiny_generator(root: Path, n_images: int = 12) -> tuple[Path, Path, Path]:
    """(encoder, images, generator): a one-epoch tiny generator on 8-px shapes."""
    import gensis

    enc_path = random_encoder(root / "encoder.safetensors")
    data = write_npz(root / "images.npz", n_images, size=8)
    gen = gensis.train_generator(
        {
            "model.spec": "tiny",
            "encoder": str(enc_path),
            "data.path": str(data),
            "out": str(root / "gen"),
            "train.batch_size": 6,
            "train.epochs": 1,
            "train.progress": False,
            "data.cache_dir": None,
        }
    )
    return enc_path, data, gen.generator_path


# A tiny DINO stage for `gensis run` tests (the `pipeline` fixture in conftest.py, and others).
SMALL_DINO = {
    "model.backbone": "resnet10t",
    "dino.out_dim": 64,
    "dino.hidden_dim": 64,
    "dino.bottleneck_dim": 32,
    "train.batch_size": 32,
    "train.epochs": 1,
    "train.knn_every": 0,
    "train.log_every": 1,
}


def write_bank(root, n: int, res: int, k: int = 2, m: int = 1, shard_size: int = 40) -> None:
    """A bank whose view v of source i has the pixel value (i + 7 v) % 256."""
    import torch

    from gensis.bank.store import BankIndex, write_index, write_shard

    index = BankIndex("g" * 64, "e" * 64, res, n, shard_size, k, m, {"sampler": "test"})
    root.mkdir(parents=True)
    write_index(root, index)
    for shard in range(index.n_shards):
        rows = [(i, v) for i in index.shard_range(shard) for v in range(k)]
        rows_i = [(i, -1 - j) for i in index.shard_range(shard) for j in range(m)]
        src = torch.tensor([r[0] for r in rows + rows_i])
        tag = torch.tensor([r[1] for r in rows + rows_i])
        images = ((src + 7 * tag) % 256).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, res, res).clone()
        partner = torch.where(tag < 0, (src + 1) % n, torch.full_like(src, -1))
        alpha = torch.where(tag < 0, 0.6, 1.0)
        write_shard(
            root,
            index,
            shard,
            {"images": images, "source": src, "partner": partner, "alpha": alpha, "seed": torch.zeros_like(src)},
        )
