"""``gensis`` command line: a thin shell over :mod:`gensis.api`.

Every subcommand takes ``key=value`` settings (``gensis config pretrain`` lists the keys).
Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from gensis.errors import GensisError

EPILOG = "Settings are key=value pairs with dotted keys, e.g. train.epochs=5 optim.lr=0.1"


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end like every other bad input: one line, exit 2."""

    def error(self, message: str):
        self.exit(2, f"gensis: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gensis", description="Self-supervised learning with generative self-augmentation.", epilog=EPILOG)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_: str, which: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG)
        if which:
            sp.add_argument(
                "which",
                choices=[
                    "run",
                    "tile",
                    "pretrain",
                    "train-autoencoder",
                    "train-generator",
                    "generate",
                    "eval-generator",
                    "show",
                    "foreground",
                    "eval",
                    "embed",
                    "export",
                ],
                help="command whose config to show",
            )
        sp.add_argument("settings", nargs="*", metavar="key=value")
        sp.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
        if name not in ("demo", "config"):  # every command reads a YAML file the same way
            sp.add_argument("--config", metavar="FILE", help="YAML config (overridden by key=value)")
        return sp

    add("run", "The whole pipeline: pretrain, embed, train-generator, generate, Gen-DINO, eval, report (data.path=).")
    pre = add("pretrain", "Stage 1: DINO pretraining with hand-crafted augmentations.")
    pre.add_argument("--resume", action="store_true", help="continue the run in out= from checkpoints/last.pt")
    ae = add(
        "train-autoencoder",
        "The latent space for large images: an AutoencoderKL trained on your images (data.path= out=).",
    )
    ae.add_argument("--resume", action="store_true", help="continue the run in out= from checkpoints/last.pt")
    gen = add("train-generator", "Stage 2: diffusion model conditioned on a stage-1 encoder (encoder= data.path=).")
    gen.add_argument("--resume", action="store_true", help="continue the run in out= from checkpoints/last.pt")
    add("generate", "Stage 2: self-augmented views and interpolations into a view bank (generator= data_path= out=).")
    add("show", "PNG grids of generated views and interpolations (generator= data_path= out=).")
    add("foreground", "GenView's PCA foreground maps and ratios of an encoder (encoder= data_path= out=).")
    add("eval-generator", "Fidelity, diversity and Frechet distance of a view bank (bank= encoder= data_path=).")
    add("eval", "kNN and linear-probe accuracy of a frozen encoder (encoder= train_path= test_path=).")
    add("export", "An encoder as one self-contained file: TorchScript or torch.export (encoder= out=<.pt|.pt2>).")
    add("embed", "Write embeddings with their image ids (encoder= data_path= out=<.safetensors|.npy|.csv|.parquet>).")
    add("tile", "Whole-slide images to tissue tiles with a manifest (slides= out= tile_size= mpp=).")
    add("demo", "The whole pipeline on the bundled real digits dataset (about 15 minutes on a 2-core CPU).")
    add("config", "Print the resolved config of a command (pretrain, eval, embed) and its keys.", which=True)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Settings may come before or after the flags (``pretrain --resume out=x`` and
    ``pretrain out=x --resume`` are the same); anything else unknown is an error."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    stray = [x for x in extra if x.startswith("-") or "=" not in x or not hasattr(args, "settings")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.settings = [*args.settings, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.version:
        from gensis import __version__

        print(__version__)
        return 0
    if not args.command:
        _parser().print_help()
        return 2
    from gensis.runtime.run_folder import setup_console_logging

    setup_console_logging(logging.WARNING if args.quiet else logging.INFO)
    try:
        return _run(args)
    except GensisError as exc:
        from gensis.runtime.signals import Interrupted

        kind = "" if isinstance(exc, Interrupted) else "error: "
        from gensis.runtime.trust import display  # odd bytes of a name escaped, whatever stderr's encoding

        print(f"gensis: {kind}{display(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gensis: interrupted", file=sys.stderr)
        return 130


# long: one short branch per subcommand
def _run(args: argparse.Namespace) -> int:
    from gensis import api
    from gensis.config.overrides import parse_overrides

    settings = parse_overrides(args.settings)
    if args.quiet:  # no progress bars: stderr holds warnings and the one-line error only
        for key in _progress_keys(args.command):
            settings.setdefault(key, False)
    if args.command == "run":
        from gensis.pipeline.report import format_run

        result = api.run(settings, config_file=args.config)
        print(format_run(result))
        _print_tensorboard_hint(result["out"])
    elif args.command == "pretrain":
        pretrained = api.pretrain(settings, resume=args.resume, config_file=args.config)
        print(f"encoder: {pretrained.encoder_path}")
        for k, v in pretrained.final_metrics.items():
            if k == "loss" or k.startswith("knn"):
                print(f"{k}: {v:.4g}")
    elif args.command == "train-generator":
        result = api.train_generator(settings, resume=args.resume, config_file=args.config)
        print(f"generator: {result.generator_path}")
    elif args.command == "train-autoencoder":
        result = api.train_autoencoder(settings, resume=args.resume, config_file=args.config)
        q = result.quality
        print(f"autoencoder: {result.autoencoder_path}")
        print(f"reconstructions of {q['images']} held-out images: PSNR {q['psnr_db']:.2f} dB"
              + (f", source top-1 {q['retrieval_top1']:.1f} % (real views {q['ceiling']['retrieval_top1']:.1f} %), "
                 f"median rank {q['retrieval_median_rank']}" if "retrieval_top1" in q else ""))
    elif args.command == "generate":
        result = api.generate(settings, config_file=args.config)
        rate = f" ({result.images_per_s:.1f} images/s)" if result.images_per_s else ""
        print(f"bank: {result.bank}: {result.n_images} new images{rate}")
        if result.quality:
            print(json.dumps(result.quality, indent=2))
    elif args.command == "show":
        for path in api.show(settings, config_file=args.config):
            print(f"picture: {path}")
    elif args.command == "foreground":
        for path in api.foreground(settings, config_file=args.config):
            print(f"foreground: {path}")
    elif args.command == "eval-generator":
        print(json.dumps(api.eval_generator(settings, config_file=args.config), indent=2))
    elif args.command == "eval":
        result = api.evaluate(settings, config_file=args.config)
        print(api.format_eval_table(result))
    elif args.command == "tile":
        from gensis.tiling import tile

        r = tile(settings, config_file=args.config)
        print(f"tiles: {r.out}: {r.n_tiles} new tiles from {r.n_tiled} slides ({r.tiles_per_s:.1f} tiles/s), "
              f"{r.n_skipped} slides already done, {r.n_failed} failed; manifest {r.manifest}")
    elif args.command == "export":
        print(f"encoder: {api.export(settings, config_file=args.config)}")
    elif args.command == "embed":
        from gensis.eval.embed_io import embedding_paths

        for path in embedding_paths(api.embed(settings, config_file=args.config)):
            print(f"embeddings: {path}")
    elif args.command == "demo":
        from gensis.demo import demo, format_demo

        result = demo(settings)
        print(format_demo(result))
        _print_tensorboard_hint(result["out"])
    elif args.command == "config":
        _show_config(args.which, settings)
    return 0


def _progress_keys(command: str) -> list[str]:
    """The ``progress`` settings of a command's config (``progress``, ``train.progress``)."""
    if command == "demo":
        return ["progress"]
    model = command_configs().get(command)
    if model is None:
        return []
    keys = ["progress"] if "progress" in model.model_fields else []
    train = model.model_fields.get("train")
    if (
        train is not None
        and isinstance(train.annotation, type)
        and "progress" in getattr(train.annotation, "model_fields", {})
    ):
        keys.append("train.progress")
    return keys


def command_configs() -> dict:
    """Each subcommand's typed config (``gensis config``, and the output guard's sweep in the tests)."""
    from gensis.config.commands import COMMAND_CONFIGS

    return dict(COMMAND_CONFIGS)


def _show_config(which: str, settings: dict) -> None:
    from gensis.config.overrides import build_config, check_settings, to_yaml

    model = command_configs()[which]
    if which == "pretrain":
        print(to_yaml(build_config(model, settings)), end="")
        return
    check_settings(model, settings)  # unknown keys and bad values, as the command itself would say
    _print_fields(model, values=settings)


def _print_tensorboard_hint(out: str) -> None:
    from pathlib import Path

    if next(Path(out).glob("*/events.out.tfevents.*"), None) is not None:
        print(f"curves: tensorboard --logdir {out}")


def _print_fields(model, prefix: str = "", values: dict | None = None) -> None:
    """Dotted keys with their defaults, or the given ``values`` (for commands whose configs have required keys)."""
    from pydantic import BaseModel

    values = values or {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            _print_fields(ann, f"{prefix}{name}.", values)
            continue
        key = f"{prefix}{name}"
        if key in values:
            default = json.dumps(values[key], default=str)
        else:
            default = "<required>" if field.is_required() else json.dumps(field.get_default(call_default_factory=True))
        print(f"{prefix}{name}: {default}    # {field.description or ''}".rstrip(" #"))

if __name__ == "__main__":
    sys.exit(main())
