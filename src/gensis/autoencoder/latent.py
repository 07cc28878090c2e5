"""Latent space for larger images: a diffusers ``AutoencoderKL``, the user's own or an outside one.

As in latent diffusion (Rombach et al. 2022, arXiv 2112.10752), the UNet models the VAE's
latents (posterior mean times ``scaling_factor``) instead of pixels; the VAE is frozen and
only its decoder runs at generation time. By default it is trained on the user's own images
(:mod:`gensis.autoencoder`); an outside VAE is a hub id (with a network) or any folder written
by ``save_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gensis.autoencoder.model import autoencoder_digest, exported_autoencoder, read_autoencoder_meta
from gensis.data import ImageData
from gensis.errors import CheckpointError, ConfigError, by_rule, first_line


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick connection instead of the hub client's retries (18 lines over 30 s offline)."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def load_vae(name: str, device: torch.device | str = "cpu", *, key: str = "model.vae"):
    """A frozen ``AutoencoderKL`` from a folder (``save_pretrained`` output, or a train-autoencoder
    run folder) or a hub id; every failure is one line naming ``key`` and the file."""
    from diffusers import AutoencoderKL

    if Path(name).exists():
        folder = exported_autoencoder(name)
        _check_autoencoder_folder(folder, key)
        try:
            vae = AutoencoderKL.from_pretrained(folder, low_cpu_mem_usage=False)  # no accelerate needed
        except Exception as exc:  # diffusers raises many kinds for a damaged folder
            weights = next(iter(sorted(folder.glob("diffusion_pytorch_model*"))), folder)
            raise CheckpointError(f"{key}: {weights}: not loadable as an AutoencoderKL ({first_line(exc)})") from None
        return vae.to(device).eval().requires_grad_(False)
    try:  # a hub id: the local hub cache first, the network only if reachable
        return AutoencoderKL.from_pretrained(name, local_files_only=True).to(device).eval().requires_grad_(False)
    except (OSError, ValueError):
        if not _hub_reachable():
            raise CheckpointError(
                f"{key}: cannot load an AutoencoderKL from {name!r}: no such folder, not "
                "in the local hub cache, and the hub is unreachable (offline); pass a folder "
                "written by save_pretrained, or train one: gensis train-autoencoder"
            ) from None
    try:
        vae = AutoencoderKL.from_pretrained(name)
    except Exception as exc:
        raise CheckpointError(
            f"{key}: cannot load an AutoencoderKL from {name!r} as a folder or hub id "
            f"(a hub id needs a network): {first_line(exc)}"
        ) from None
    return vae.to(device).eval().requires_grad_(False)


def _check_autoencoder_folder(folder: Path, key: str) -> None:
    """Refuse, naming the file, what is not an autoencoder folder: an encoder, a file, a bad config."""
    if folder.is_file():
        kind = " (a gensis encoder or generator file)" if folder.suffix == ".safetensors" else ""
        raise CheckpointError(
            f"{key}: {folder} is a file{kind}; an AutoencoderKL is a folder with config.json "
            "and weights (save_pretrained output or a train-autoencoder run folder)"
        )
    for inner, kind in (
        ("encoder", "a stage-1 run folder (an encoder)"),
        ("generator", "a train-generator run folder"),
    ):
        if (folder / "exported" / f"{inner}.safetensors").exists():
            raise CheckpointError(
                f"{key}: {folder} is {kind}, not an autoencoder; give a train-autoencoder "
                "run folder or an AutoencoderKL folder"
            )
    config = folder / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{key}: {folder} holds no config.json: not an AutoencoderKL folder")
    try:
        fields = json.loads(config.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{key}: {config}: corrupt ({first_line(exc)})") from None
    if not isinstance(fields, dict) or fields.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
        found = fields.get("_class_name") if isinstance(fields, dict) else type(fields).__name__
        raise CheckpointError(f"{key}: {config}: describes a {found}, not an AutoencoderKL")
    try:
        read_autoencoder_meta(folder)  # a damaged gensis.json is named here
    except CheckpointError as exc:
        raise CheckpointError(f"{key}: {exc}") from None


def check_vae_fits(name: str, resolution: int, data_fingerprint: str, data_source: str, key: str = "model.vae") -> None:
    """A gensis-trained autoencoder is used only at its resolution and on the images it was
    trained on (an outside VAE carries no such record and is the user's choice)."""
    if not Path(name).exists():
        return
    folder = exported_autoencoder(name)
    meta = read_autoencoder_meta(folder)
    if meta is None:
        return
    if meta.get("resolution") != resolution:
        raise ConfigError(
            f"{key}: {folder} was trained on {meta.get('resolution')}-px images, this run uses "
            f"{resolution} px; train one at this size (gensis train-autoencoder data.resolution={resolution})"
        )
    if meta.get("data_fingerprint") != data_fingerprint:
        raise ConfigError(
            by_rule(
                "fingerprint",
                f"{key}: {folder} was trained on other images ({meta.get('data')}, "
                f"{meta.get('images')} images) than {data_source}; train one on these images",
            )
        )


def vae_sha256(vae) -> str:
    """The autoencoder's content digest (config and weights): what a generator records."""
    return autoencoder_digest(vae)


def downsample_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def encode_images(
    vae, data: ImageData, *, batch_size: int = 64, device: torch.device | str = "cpu", progress: bool = False
) -> torch.Tensor:
    """Scaled posterior means (N, C, R/f, R/f) of every image, on the CPU."""
    out = []
    for start in tqdm(range(0, len(data), batch_size), desc="latents", disable=not progress, leave=False):
        idx = torch.arange(start, min(start + batch_size, len(data)))
        x = data.batch(idx).to(device).float() / 127.5 - 1.0
        z = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
        out.append(z.float().cpu())
    return torch.cat(out)


@torch.no_grad()
def decode_latents(vae, z: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, R, R) on the CPU from scaled latents."""
    x = vae.decode(z.to(next(vae.parameters()).device) / vae.config.scaling_factor).sample
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
