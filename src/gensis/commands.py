"""Every subcommand in one table (issue 42, step 4): its help line, the function that runs its
resolved config, its public function and how the command line prints its result. cli.py builds
its parser and dispatch from this table and api.py its bodies; the typed config of each command
is config/commands.py's. A new command is one row here, one in config/commands.py and a public
function in api.py."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Command:
    help: str
    runner: str  # "module:function" run on the resolved config (imported on first use: torch, diffusers)
    show: Callable[[Any], None]  # prints the result on the command line
    function: str  # its public function, "module:function"
    resume: bool = False  # takes --resume: continue the run in out= from checkpoints/last.pt
    guarded: bool = True  # the output guard runs first (`run` guards each stage itself)
    presets: bool = True  # named presets apply (`run` applies them per stage)

    def run(self, cfg: Any, **extras: Any) -> Any:
        module, name = self.runner.split(":")
        return getattr(importlib.import_module(module), name)(cfg, **extras)

    def public_function(self) -> Callable[..., Any]:
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)


def tensorboard_hint(out: str) -> None:
    """Where the curves are, when a logger wrote TensorBoard events under ``out``."""
    if next(Path(out).glob("*/events.out.tfevents.*"), None) is not None:
        print(f"curves: tensorboard --logdir {out}")


def _show_run(result: dict[str, Any]) -> None:
    from gensis.pipeline.report import format_run

    print(format_run(result))
    tensorboard_hint(result["out"])


def _show_pretrain(result: Any) -> None:
    print(f"encoder: {result.encoder_path}")
    for k, v in result.final_metrics.items():
        if k == "loss" or k.startswith("knn"):
            print(f"{k}: {v:.4g}")


def _show_autoencoder(result: Any) -> None:
    q = result.quality
    print(f"autoencoder: {result.autoencoder_path}")
    print(
        f"reconstructions of {q['images']} held-out images: PSNR {q['psnr_db']:.2f} dB"
        + (
            f", source top-1 {q['retrieval_top1']:.1f} % (real views {q['ceiling']['retrieval_top1']:.1f} %), "
            f"median rank {q['retrieval_median_rank']}"
            if "retrieval_top1" in q
            else ""
        )
    )


def _show_generate(result: Any) -> None:
    rate = f" ({result.images_per_s:.1f} images/s)" if result.images_per_s else ""
    print(f"bank: {result.bank}: {result.n_images} new images{rate}")
    if result.quality:
        print(json.dumps(result.quality, indent=2))


def _show_paths(label: str) -> Callable[[Any], None]:
    def show(paths: Any) -> None:
        for path in paths:
            print(f"{label}: {path}")

    return show


def _show_eval(result: dict[str, Any]) -> None:
    from gensis.eval.evaluate import format_eval_table

    print(format_eval_table(result))


def _show_tiles(r: Any) -> None:
    print(
        f"tiles: {r.out}: {r.n_tiles} new tiles from {r.n_tiled} slides ({r.tiles_per_s:.1f} tiles/s), "
        f"{r.n_skipped} slides already done, {r.n_failed} failed; manifest {r.manifest}"
    )


def _show_embed(out: Path) -> None:
    from gensis.eval.embed_io import embedding_paths

    _show_paths("embeddings")(embedding_paths(out))


COMMANDS: dict[str, Command] = {
    "run": Command(
        "The whole pipeline: pretrain, embed, train-generator, generate, Gen-DINO, eval, report (data.path=).",
        "gensis.pipeline.command:run_command",
        _show_run,
        "gensis.api:run",
        guarded=False,
        presets=False,
    ),
    "pretrain": Command(
        "Stage 1: DINO pretraining with hand-crafted augmentations.",
        "gensis.train.pretrain:run_pretrain",
        _show_pretrain,
        "gensis.api:pretrain",
        resume=True,
    ),
    "train-autoencoder": Command(
        "The latent space for large images: an AutoencoderKL trained on your images (data.path= out=).",
        "gensis.train.autoencoder:run_train_autoencoder",
        _show_autoencoder,
        "gensis.api:train_autoencoder",
        resume=True,
    ),
    "train-generator": Command(
        "Stage 2: diffusion model conditioned on a stage-1 encoder (encoder= data.path=).",
        "gensis.train.generator:run_train_generator",
        lambda r: print(f"generator: {r.generator_path}"),
        "gensis.api:train_generator",
        resume=True,
    ),
    "generate": Command(
        "Stage 2: self-augmented views and interpolations into a view bank (generator= data_path= out=).",
        "gensis.generator.generate:run_generate",
        _show_generate,
        "gensis.api:generate",
    ),
    "show": Command(
        "PNG grids of generated views and interpolations (generator= data_path= out=).",
        "gensis.generator.show:run_show",
        _show_paths("picture"),
        "gensis.api:show",
    ),
    "foreground": Command(
        "GenView's PCA foreground maps and ratios of an encoder (encoder= data_path= out=).",
        "gensis.foreground.command:run_foreground",
        _show_paths("foreground"),
        "gensis.api:foreground",
    ),
    "eval-generator": Command(
        "Fidelity, diversity and Frechet distance of a view bank (bank= encoder= data_path=).",
        "gensis.generator.quality:run_eval_generator",
        lambda r: print(json.dumps(r, indent=2)),
        "gensis.api:eval_generator",
    ),
    "eval": Command(
        "kNN and linear-probe accuracy of a frozen encoder (encoder= train_path= test_path=).",
        "gensis.eval.evaluate:run_evaluate",
        _show_eval,
        "gensis.api:evaluate",
    ),
    "export": Command(
        "An encoder as one self-contained file: TorchScript or torch.export (encoder= out=<.pt|.pt2>).",
        "gensis.runtime.export:run_export",
        lambda path: print(f"encoder: {path}"),
        "gensis.api:export",
    ),
    "embed": Command(
        "Write embeddings with their image ids (encoder= data_path= out=<.safetensors|.npy|.csv|.parquet>).",
        "gensis.eval.embed_io:run_embed",
        _show_embed,
        "gensis.api:embed",
    ),
    "tile": Command(  # its function needs no torch: gensis.tiling, not gensis.api
        "Whole-slide images to tissue tiles with a manifest (slides= out= tile_size= mpp=).",
        "gensis.tiling:run_tile",
        _show_tiles,
        "gensis.tiling:tile",
    ),
}
