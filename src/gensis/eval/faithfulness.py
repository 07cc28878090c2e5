"""Are generated views views of their source? Measured against real views as the ceiling.

Gen-SIS stands on this: stage 3 pairs an image with a generated view of it, which only
helps if the encoder would call the two the same image. Each figure is given three times:

* ``generated``: the bank's views of a sample of sources;
* ``ceiling``: real views of the same sources made by stage 1's own global-view
  augmentation (crop, flips, colour, blur: what stage 1 calls a view), recorded in the
  encoder file; ``ceiling_crop``: its geometric part alone (crop, flips, rotations), a
  stricter bar for retrieval and a lower one for diversity;
* ``chance``: what a random image would score.

Figures: source retrieval (rank of the source among the embeddings of *all* real images:
top-1, top-5, median rank), class consistency where labels exist (the majority label of the
view's ``k`` nearest real images equals the source's label), and diversity between two views
of one source (cosine distance in the encoder's space and pixel RMSE): a generator that
copies its source scores well on retrieval and gives stage 3 nothing new.
"""

from __future__ import annotations

from typing import Any

import torch

from gensis.augment import MultiCropAugment
from gensis.config.schema import AugmentConfig
from gensis.data import ImageData
from gensis.eval.features import encoder_embeddings

CLASS_K = 10


def as_data(images: torch.Tensor) -> ImageData:
    return ImageData(
        images=images,
        labels=None,
        class_names=None,
        ids=[str(i) for i in range(len(images))],
        source="generated",
        resolution=images.shape[-1],
    )


def retrieval(view_emb: torch.Tensor, view_src: torch.Tensor, real_emb: torch.Tensor) -> dict[str, float]:
    """Rank of each view's source among all real embeddings (0 = nearest)."""
    sims = view_emb @ real_emb.T
    rank = (sims > sims.gather(1, view_src[:, None])).sum(1)
    return {
        "retrieval_top1": round(float((rank == 0).float().mean() * 100), 2),
        "retrieval_top5": round(float((rank < 5).float().mean() * 100), 2),
        "retrieval_median_rank": int(rank.float().median()) + 1,
    }


def class_consistency(
    view_emb: torch.Tensor, view_src: torch.Tensor, real_emb: torch.Tensor, labels: torch.Tensor, k: int = CLASS_K
) -> float:
    """% of views whose k nearest real images mostly carry the source's label."""
    if k < 1:  # no neighbour casts a vote: the figure would mean nothing
        raise ValueError(f"class_consistency: k must be >= 1, got {k}")
    k = min(k, real_emb.shape[0])
    nearest = (view_emb @ real_emb.T).topk(k, dim=1).indices
    votes = torch.nn.functional.one_hot(labels[nearest], int(labels.max()) + 1).sum(1)
    return round(float((votes.argmax(1) == labels[view_src]).float().mean() * 100), 2)


def diversity(emb: torch.Tensor, images: torch.Tensor) -> dict[str, float]:
    """Mean over sources of the pairwise distances among their views: emb (S, K, D), images (S, K, ...)."""
    k = emb.shape[1]
    off = ~torch.eye(k, dtype=torch.bool)
    px = images.float().div(255).flatten(2)
    rmse = torch.cdist(px, px) / px.shape[-1] ** 0.5
    return {
        "diversity_cosine": round(float((1 - emb @ emb.transpose(1, 2))[:, off].mean()), 4),
        "diversity_pixel_rmse": round(float(rmse[:, off].mean()), 4),
    }


def source_distance(images: torch.Tensor, originals: torch.Tensor) -> float:
    """Mean pixel RMSE (0-1 scale) between each view (S, K, 3, R, R) and its source (S, 3, R, R):
    near 0 for a generator that copies its source."""
    views = images.float().div(255).flatten(2)
    src = originals.float().div(255).flatten(1)[:, None]
    return round(float((views - src).square().mean(-1).sqrt().mean()), 4)


def view_figures(
    view_emb: torch.Tensor,
    view_images: torch.Tensor,
    sources: torch.Tensor,
    real_emb: torch.Tensor,
    labels: torch.Tensor | None,
    originals: torch.Tensor | None = None,
) -> dict[str, float]:
    """All figures for views laid out (S sources, K views each), K >= 1; ``originals``, the
    S source images, add the views' pixel distance to their source."""
    s, k = view_images.shape[:2]
    flat_src = sources.repeat_interleave(k)
    out = retrieval(view_emb, flat_src, real_emb)
    if originals is not None:
        out["source_pixel_rmse"] = source_distance(view_images, originals)
    if labels is not None:
        out["class_consistency"] = class_consistency(view_emb, flat_src, real_emb, labels)
    if k >= 2:
        out.update(diversity(view_emb.view(s, k, -1), view_images))
    return out


def ceiling_augment(recorded: dict[str, Any] | None, resolution: int) -> tuple[AugmentConfig, str]:
    """Stage 1's augmentation as recorded in the encoder (``EncoderInfo.augment``; else the
    defaults), at ``resolution``."""
    fields = dict(recorded) if recorded else {}
    fields = {k: v for k, v in fields.items() if k in AugmentConfig.model_fields}
    fields.update(global_crop_size=resolution, n_local_crops=0)
    return AugmentConfig(**fields), ("stage 1 (recorded in the encoder)" if recorded else "defaults (not recorded)")


@torch.no_grad()
def real_views(images: torch.Tensor, cfg: AugmentConfig, views: int, seed: int = 0) -> torch.Tensor:
    """``views`` stage-1 global views (the first global recipe) of each image, uint8 (S, V, 3, R, R)."""
    g = torch.Generator().manual_seed(seed + 31337)
    aug = MultiCropAugment(cfg)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    out = []
    for _ in range(views):
        v = aug.view(images, "global1", g) * std + mean
        out.append((v.clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.stack(out, dim=1)


@torch.no_grad()
def ceiling_and_chance(
    encoder,
    real: ImageData,
    sources: torch.Tensor,
    real_emb: torch.Tensor,
    *,
    views: int = 2,
    device="cpu",
    seed: int = 0,
    originals: torch.Tensor | None = None,
) -> dict[str, dict]:
    """The figures of real stage-1 views of ``sources`` (the ceiling), and of chance;
    ``originals``: the source images, when the caller has them decoded already."""
    cfg, where = ceiling_augment(encoder.info.augment, real.resolution)
    labels = real.labels
    if originals is None:
        originals = real.batch(sources)  # decoded once, also for lazy (large) images

    def figures(aug: AugmentConfig) -> dict:
        imgs = real_views(originals, aug, views, seed)
        emb = encoder_embeddings(encoder, as_data(imgs.flatten(0, 1)), device=device).cpu()
        return view_figures(emb, imgs, sources, real_emb, labels, originals)

    ceiling = {"augment": where, **figures(cfg)}
    # The geometric part alone (crop, flips, rotations; no colour, blur or solarization).
    geometric = cfg.model_copy(
        update={"color_jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": (0.0, 0.0, 0.0), "solarize_p": 0.0}
    )
    n = real_emb.shape[0]
    chance: dict[str, float] = {
        "images": n,
        "retrieval_top1": round(100 / n, 3),
        "retrieval_top5": round(min(500 / n, 100), 3),
        "retrieval_median_rank": (n + 1) // 2,
    }
    if labels is not None:
        share = torch.bincount(labels).float() / len(labels)
        chance["class_consistency"] = round(float((share**2).sum() * 100), 2)
    return {"ceiling": ceiling, "ceiling_crop": figures(geometric), "chance": chance}


def versus_ceiling(generated: dict, ceiling: dict) -> dict[str, float]:
    """Generated / ceiling for the figures where more is better (top-1, class consistency, diversity)."""
    out = {}
    for key in ("retrieval_top1", "class_consistency", "diversity_cosine", "diversity_pixel_rmse", "source_pixel_rmse"):
        if key in generated and ceiling.get(key):
            out[key] = round(generated[key] / ceiling[key], 3)
    return out


FIGURES = (
    ("retrieval_top1", "source retrieval top-1 (%)"),
    ("retrieval_top5", "source retrieval top-5 (%)"),
    ("retrieval_median_rank", "median rank of the source"),
    ("class_consistency", "class consistency (%)"),
    ("diversity_cosine", "diversity between views (cosine distance)"),
    ("diversity_pixel_rmse", "diversity between views (pixel RMSE)"),
    ("source_pixel_rmse", "distance to the source (pixel RMSE)"),
)


def faithfulness_table(quality: dict) -> tuple[list[str], list[list[str]]]:
    """Rows: figure | generated | real stage-1 views (ceiling) | real crops | chance | generated / ceiling."""
    ceiling, chance, ratio = quality.get("ceiling", {}), quality.get("chance", {}), quality.get("versus_ceiling", {})
    crop = quality.get("ceiling_crop", {})
    header = [
        "figure",
        "generated views",
        "real stage-1 views (ceiling)",
        "real stage-1 crops",
        "chance",
        "generated / ceiling",
    ]
    rows = []
    for key, label in FIGURES:
        if key not in quality and key not in ceiling:
            continue
        rows.append(
            [label] + [str(d.get(key, "-")) for d in (quality, ceiling, crop, chance)] + [str(ratio.get(key, "-"))]
        )
    return header, rows
