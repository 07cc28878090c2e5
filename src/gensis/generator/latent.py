"""Latent space for larger images: a diffusers ``AutoencoderKL`` given by local path or hub id.

As in latent diffusion (Rombach et al. 2022, arXiv 2112.10752), the UNet models the VAE's
latents (posterior mean times ``scaling_factor``) instead of pixels; the VAE is frozen and
only its decoder runs at generation time. Users with a network pass a pretrained VAE's hub
id; offline, a local folder written by ``save_pretrained`` works the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from gensis.data import ImageData
from gensis.errors import CheckpointError, first_line


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


def load_vae(name: str, device: torch.device | str = "cpu"):
    from diffusers import AutoencoderKL

    if not Path(name).exists():  # a hub id: the local hub cache first, the network only if reachable
        try:
            return AutoencoderKL.from_pretrained(name, local_files_only=True).to(device).eval().requires_grad_(False)
        except (OSError, ValueError, EnvironmentError):
            if not _hub_reachable():
                raise CheckpointError(f"model.vae: cannot load an AutoencoderKL from {name!r}: no such folder, not "
                                      "in the local hub cache, and the hub is unreachable (offline); pass a folder "
                                      "written by save_pretrained") from None
    try:
        vae = AutoencoderKL.from_pretrained(name)
    except (OSError, ValueError, EnvironmentError) as exc:
        where = "folder" if Path(name).exists() else "folder or hub id (a hub id needs a network)"
        raise CheckpointError(f"model.vae: cannot load an AutoencoderKL from {name!r} as a {where}: "
                              f"{first_line(exc)}") from None
    return vae.to(device).eval().requires_grad_(False)


def downsample_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def encode_images(vae, data: ImageData, *, batch_size: int = 64, device: torch.device | str = "cpu",
                  progress: bool = False) -> torch.Tensor:
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
