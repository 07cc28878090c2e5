"""A local diffusers image-variation pipeline as the generator of ``gensis generate``.

For users who have a pretrained image-variation model on disk, such as Stable unCLIP (the
generator of GenView, arXiv 2403.12003) or Stable Diffusion image variations: ``external=``
makes it fill the same view bank as the gensis generator (uint8 images at the bank
resolution, with source/partner/alpha/seed), in place of one trained by
``gensis train-generator``. It is loaded with ``DiffusionPipeline.from_pretrained(folder,
local_files_only=True)``: nothing is downloaded.

* Views: an image-variation pipeline is conditioned on the image itself, so each view's row
  is its source image, fed to the pipeline's own image encoder through its feature
  extractor. The stage-1 ``encoder=`` is still required: the bank takes its resolution (the
  pipeline's output is resized to it, antialiased) and the quality report its embeddings.
* Interpolations SLERP two conditions, so they need a pipeline that takes image embeddings
  (``image_embeds``, e.g. ``StableUnCLIPImg2ImgPipeline``); then every row, view or
  interpolation, is conditioned on the pipeline's image-encoder embedding, L2-normalized
  (SLERP works on the sphere) and put back at the data set's mean norm (CLIP embedding norms
  vary little). GenView's adaptive noise perturbs those embeddings the same way.
* Generator id (the bank index's ``generator_sha256``): sha256 of ``model_index.json`` and
  of a listing of every file in the folder, each with its relative path and size, plus the
  sha256 of each small file (< 1 MiB: configs, tokenizer, scheduler). Weights are listed,
  not hashed, so that opening a multi-GB pipeline stays instant: a weight file replaced by
  another of the same size and name is not noticed.

``sampler`` swaps the pipeline's scheduler for DDIM or DPM-Solver++ built from its config;
``guidance_scale`` is the pipeline's (1 = no guidance; image-variation models usually want
3 to 7.5); weights run in bf16 where ``precision`` gives bf16. A safety checker saved with
the pipeline stays active and may black out views.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from gensis.config.schema import GenerateConfig
from gensis.data import ImageData
from gensis.errors import CheckpointError, ConfigError
from gensis.runtime.checkpoint import read_encoder_metadata, resolve_encoder_path
from gensis.runtime.io import file_sha256

_SMALL = 1 << 20  # files below this size are hashed into the generator id


def pipeline_sha256(folder: str | Path) -> str:
    """Id of a diffusers pipeline folder (see the module docstring)."""
    folder = Path(folder)
    h = hashlib.sha256((folder / "model_index.json").read_bytes())
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = f.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue  # .cache/, .gitattributes, ...: not part of the model
        size = f.stat().st_size
        h.update(f"\n{rel}\t{size}\t".encode())
        if size < _SMALL:
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _pipeline_class(folder: Path) -> type:
    index = folder / "model_index.json"
    if not index.is_file():
        raise CheckpointError(f"external: {folder} is not a diffusers pipeline folder (no model_index.json)")
    try:
        name = json.loads(index.read_text()).get("_class_name", "")
    except (json.JSONDecodeError, OSError, AttributeError) as exc:
        raise CheckpointError(f"external: unreadable {index} ({exc})") from None
    import diffusers

    cls = getattr(diffusers, str(name), None)
    if cls is None:
        raise CheckpointError(f"external: {index} names {name!r}, not a diffusers pipeline class")
    return cls


class ExternalGenerator:
    """The calls ``gensis generate`` makes of a :class:`Synthesizer`, on a diffusers pipeline."""

    def __init__(self, path: str | Path, device: torch.device, encoder: str | Path, precision: str = "auto") -> None:
        folder = Path(path)
        params = inspect.signature(_pipeline_class(folder).__call__).parameters
        if "image" not in params and "image_embeds" not in params:
            raise CheckpointError(f"external: {folder} is not an image-variation pipeline (takes no image)")
        self.takes_embeddings = "image_embeds" in params
        self._prompt = "prompt" in params
        enc_path = resolve_encoder_path(encoder)
        enc_meta = read_encoder_metadata(enc_path)
        self.meta = {"encoder": str(enc_path), "encoder_sha256": file_sha256(enc_path)}
        self.resolution = enc_meta.resolution
        if enc_meta.embed_dim is None:
            raise CheckpointError(f"{enc_path}: metadata 'embed_dim' is missing")
        self.embed_dim = enc_meta.embed_dim
        self.generator_sha256 = pipeline_sha256(folder)
        self.device = device
        self.dtype = (
            torch.bfloat16 if precision == "bf16" or (precision == "auto" and device.type == "cuda") else torch.float32
        )
        from diffusers import DiffusionPipeline

        try:
            pipe = DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"external: cannot load {folder} ({' '.join(str(exc).split())[:300]})") from None
        if self.takes_embeddings and not all(
            getattr(pipe, k, None) is not None for k in ("image_encoder", "feature_extractor")
        ):
            self.takes_embeddings = False  # image_embeds without its own encoder: views from images only
        self.pipe = pipe.to(device, self.dtype)
        self.pipe.set_progress_bar_config(disable=True)
        self._schedulers = {"default": pipe.scheduler}
        self._data: ImageData | None = None
        self._norm = 1.0

    def encoder_path(self, override: str | None = None) -> Path:
        return resolve_encoder_path(override or self.meta["encoder"])

    @torch.no_grad()
    def conditions(self, data: ImageData, *, batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """One conditioning row per source for the bank filler: the pipeline's image embedding
        (N, D) when it takes embeddings, else the source index itself (N, 1), float64 (exact),
        whose image :meth:`images` reads back from ``data``."""
        self._data = data
        if not self.takes_embeddings:
            return torch.arange(len(data), dtype=torch.float64).unsqueeze(1)
        out = []
        for start in tqdm(range(0, len(data), batch_size), desc="image embeddings", disable=not progress, leave=False):
            pil = _to_pil(data.batch(torch.arange(start, min(start + batch_size, len(data)))))
            pixels = self.pipe.feature_extractor(images=pil, return_tensors="pt").pixel_values
            out.append(self.pipe.image_encoder(pixels.to(self.device, self.dtype)).image_embeds.float().cpu())
        emb = torch.cat(out)
        self._norm = float(emb.norm(dim=-1).mean())
        return emb

    def _scheduler(self, sampler: str):
        if sampler not in self._schedulers:
            from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

            config = self._schedulers["default"].config
            self._schedulers[sampler] = (
                DDIMScheduler.from_config(config)
                if sampler == "ddim"
                else DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
            )
        return self._schedulers[sampler]

    @torch.no_grad()
    def images(
        self,
        cond: torch.Tensor,
        *,
        sampler: str,
        steps: int,
        guidance_scale: float,
        generator: torch.Generator,
        precision: str = "auto",
    ) -> torch.Tensor:
        """uint8 images (B, 3, R, R) on the CPU, one per row of :meth:`conditions` (or SLERPs of them)."""
        if self._data is None:
            raise RuntimeError("call conditions(data) before images()")
        self.pipe.scheduler = self._scheduler(sampler)
        kw: dict = {
            "num_inference_steps": steps,
            "guidance_scale": guidance_scale,
            "generator": generator,
            "output_type": "np",
        }
        if self.takes_embeddings:
            kw["image_embeds"] = (F.normalize(cond.float(), dim=-1) * self._norm).to(self.device, self.dtype)
            if self._prompt:
                kw["prompt"] = [""] * len(cond)
        else:
            kw["image"] = _to_pil(self._data.batch(cond[:, 0].round().long()))
        return _to_uint8(self.pipe(**kw).images, self.resolution)


def open_external(cfg: GenerateConfig, device: torch.device) -> ExternalGenerator:
    """The pipeline of ``external=``, refusing what it cannot make."""
    assert cfg.external is not None and cfg.encoder is not None  # checked by GenerateConfig
    gen = ExternalGenerator(cfg.external, device, cfg.encoder, cfg.precision)
    if cfg.interpolations_per_image and not gen.takes_embeddings:
        raise ConfigError(
            f"interpolations_per_image: {cfg.external} takes no image embeddings (image_embeds) "
            "to interpolate; set interpolations_per_image=0"
        )
    if cfg.adaptive_noise and not gen.takes_embeddings:
        raise ConfigError(f"adaptive_noise: {cfg.external} takes no image embeddings (image_embeds) to perturb")
    return gen


def _to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]


def _to_uint8(images, resolution: int) -> torch.Tensor:
    """Pipeline output (numpy (B, H, W, 3) in [0, 1], tensors or PIL images) -> uint8 (B, 3, R, R)."""
    if isinstance(images, list):
        images = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images])
    x = torch.as_tensor(np.asarray(images, dtype=np.float32) if not torch.is_tensor(images) else images).float()
    if x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    if x.shape[-2:] != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().contiguous()
