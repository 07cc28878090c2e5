"""``gensis show``: pictures of what the generator makes, to look at before trusting a bank.

``views.png``: each row is a real source image (left, after a gap) and K generated views
G(e_i) with different noise. ``interpolations.png``: each row is source i, then
G(SLERP(e_i, e_j, alpha)) for alpha from 1 (all i) to 0 (all j), then source j.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from gensis.config.schema import ShowConfig
from gensis.data import load_images
from gensis.data.loader import subset_indices
from gensis.eval.features import encoder_embeddings
from gensis.generator.slerp import slerp
from gensis.generator.synthesizer import Synthesizer
from gensis.runtime import lock
from gensis.runtime.checkpoint import load_encoder
from gensis.runtime.device import resolve_device
from gensis.runtime.io import atomic_write
from gensis.runtime.run_folder import RunFolder

GAP = 6  # pixels between the real images and the generated ones


def run_show(cfg: ShowConfig) -> list[Path]:
    device = resolve_device(cfg.device)
    synth = Synthesizer(cfg.generator, device)
    encoder = load_encoder(synth.encoder_path(cfg.encoder), device)
    data = load_images(
        cfg.data_path,
        encoder.info.resolution,
        cache_dir=cfg.cache_dir,
        progress=cfg.progress,
        max_image_bytes=cfg.max_image_bytes,
    )
    picked = subset_indices(len(data), min(len(data), 2 * cfg.rows))
    emb = encoder_embeddings(encoder, data.subset(picked), device=device)
    real = data.batch(torch.tensor(picked))
    g = torch.Generator().manual_seed(cfg.seed)

    def gen(cond: torch.Tensor) -> torch.Tensor:
        return synth.images(cond, sampler=cfg.sampler, steps=cfg.steps, guidance_scale=cfg.guidance_scale, generator=g)

    rows = min(cfg.rows, len(picked))
    views = gen(emb[:rows].repeat_interleave(cfg.views, dim=0)).view(rows, cfg.views, *real.shape[1:])
    view_rows: list[tuple[list, list, list]] = [([real[i]], list(views[i]), []) for i in range(rows)]

    pairs = [(i, i + 1) for i in range(0, len(picked) - 1, 2)][: cfg.rows]
    alphas = torch.linspace(1.0, 0.0, cfg.alphas)
    interp_rows = []
    if pairs:
        a_idx = torch.tensor([p[0] for p in pairs]).repeat_interleave(cfg.alphas)
        b_idx = torch.tensor([p[1] for p in pairs]).repeat_interleave(cfg.alphas)
        mixed = gen(slerp(emb[a_idx], emb[b_idx], alphas.repeat(len(pairs)))).view(
            len(pairs), cfg.alphas, *real.shape[1:]
        )
        interp_rows = [([real[a]], list(mixed[r]), [real[b]]) for r, (a, b) in enumerate(pairs)]

    out = Path(cfg.out)
    lock.hold(out)  # one writer per folder (runtime/lock.py); also marks it as gensis's
    paths = [out / name for name in cfg.product.holds]  # views.png, interpolations.png
    save_view_grid(paths[0], view_rows, cfg.tile_px)
    if interp_rows:
        save_view_grid(paths[1], interp_rows, cfg.tile_px)
    written = [p for p in paths if p.exists()]
    run = RunFolder(out)  # inside `gensis run`: the grids go to its loggers as images ("pictures/views")
    for p in written:
        run.log_image(p.stem, p)
    return written


def save_view_grid(path: Path, rows: list[tuple[list, list, list]], tile: int) -> None:
    """Rows of three groups of CHW uint8 images, a gap between groups (here: real, generated,
    real), each image ``tile`` px, written atomically as a PNG."""
    step = tile + 2
    n_left, n_mid, n_right = (max(len(r[k]) for r in rows) for k in range(3))
    x_mid = n_left * step + (GAP if n_left else 0)
    x_right = x_mid + n_mid * step + (GAP if n_right else 0)
    canvas = Image.new("RGB", (x_right + n_right * step, len(rows) * step), "white")
    for r, groups in enumerate(rows):
        for x0, group in zip((0, x_mid, x_right), groups, strict=True):
            for k, img in enumerate(group):
                pil = Image.fromarray(img.permute(1, 2, 0).numpy()).resize((tile, tile), Image.Resampling.NEAREST)
                canvas.paste(pil, (x0 + k * step + 1, r * step + 1))
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
