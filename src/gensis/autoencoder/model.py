"""The autoencoder's files: diffusers ``save_pretrained`` output plus ``gensis.json``.

    <folder>/config.json                          diffusers AutoencoderKL config
    <folder>/diffusion_pytorch_model.safetensors  weights (safetensors: no pickled code)
    <folder>/gensis.json                          format, resolution, data fingerprint, sha256

Any diffusers user loads the folder with ``AutoencoderKL.from_pretrained(folder)``. The
``sha256`` is a content digest of the config and every tensor (:func:`autoencoder_digest`), so it
names the same model however it was saved or loaded (folder or hub id); a generator records it
and refuses another autoencoder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from gensis.config.autoencoder import AutoencoderModelConfig, TrainAutoencoderConfig
from gensis.errors import CheckpointError, GensisError
from gensis.runtime.run_folder import EXPORTED

AUTOENCODER_FORMAT = "gensis.autoencoder/1"
META_FILE = str(TrainAutoencoderConfig.product.export_marker)  # declared with the product (the guard reads it)


def build_autoencoder(cfg: AutoencoderModelConfig, resolution: int):
    """A randomly initialized diffusers ``AutoencoderKL`` with ``cfg``'s sizes."""
    from diffusers import AutoencoderKL

    widths = cfg.widths(resolution)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(widths),
        up_block_types=("UpDecoderBlock2D",) * len(widths),
        block_out_channels=tuple(widths),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=min(32, widths[0]),
        sample_size=resolution,
        mid_block_add_attention=cfg.mid_attention,
    )


def autoencoder_digest(vae) -> str:
    """sha256 of the config (public keys) and of every tensor, in name order."""
    h = hashlib.sha256(b"gensis-autoencoder v1\n")
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def fit_scaling_factor(vae, images: torch.Tensor, batch_size: int = 32) -> float:
    """1 / std of the posterior means, as LDM sets it, so the diffusion model sees unit-variance latents."""
    device = next(vae.parameters()).device
    z = [
        vae.encode(images[i : i + batch_size].to(device).float() / 127.5 - 1).latent_dist.mean.cpu()
        for i in range(0, len(images), batch_size)
    ]
    return float(1.0 / torch.cat(z).float().std().clamp_min(1e-6))


def save_autoencoder(folder: Path, vae, meta: dict[str, Any]) -> None:
    """Write the folder whole or not at all: into a temp folder beside it, then renamed over it."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        vae.save_pretrained(tmp, safe_serialization=True)
        (tmp / META_FILE).write_text(json.dumps({"format": AUTOENCODER_FORMAT, **meta}, indent=1) + "\n")
        for path in tmp.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise GensisError(f"could not write {folder}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_autoencoder_meta(folder: str | Path) -> dict[str, Any] | None:
    """``gensis.json`` of an autoencoder folder; ``None`` for a folder gensis did not train."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt gensis autoencoder metadata ({str(exc)[:80]})") from None
    if not isinstance(meta, dict) or meta.get("format") != AUTOENCODER_FORMAT:
        raise CheckpointError(
            f"{path}: not gensis autoencoder metadata "
            f"(format={str(meta.get('format') if isinstance(meta, dict) else None)!r})"
        )
    return meta


def exported_autoencoder(path: str | Path) -> Path:
    """A train-autoencoder run folder (-> its ``exported/autoencoder``) or the autoencoder folder itself."""
    p = Path(path)
    inner = p / EXPORTED / TrainAutoencoderConfig.product.exports[0]
    return inner if inner.is_dir() else p
