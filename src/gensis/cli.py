"""``gensis`` command line: a thin shell over :mod:`gensis.api`, built from the table of
:mod:`gensis.commands`.

Every subcommand takes ``key=value`` settings (``gensis config pretrain`` lists the keys).
Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from gensis.commands import COMMANDS, tensorboard_hint
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

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG)
        if name == "config":
            sp.add_argument("which", choices=list(COMMANDS), help="command whose config to show")
        sp.add_argument("settings", nargs="*", metavar="key=value")
        sp.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
        if name not in ("demo", "config"):  # every command reads a YAML file the same way
            sp.add_argument("--config", metavar="FILE", help="YAML config (overridden by key=value)")
        return sp

    for name, command in COMMANDS.items():
        sp = add(name, command.help)
        if command.resume:
            sp.add_argument("--resume", action="store_true", help="continue the run in out= from checkpoints/last.pt")
    add("demo", "The whole pipeline on the bundled real digits dataset (about 15 minutes on a 2-core CPU).")
    add("config", "Print the resolved config of a command (pretrain, eval, embed) and its keys.")
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


def _run(args: argparse.Namespace) -> int:
    from gensis.config.overrides import parse_overrides

    settings = parse_overrides(args.settings)
    if args.quiet:  # no progress bars: stderr holds warnings and the one-line error only
        for key in _progress_keys(args.command):
            settings.setdefault(key, False)
    if args.command == "demo":
        from gensis.demo import demo, format_demo

        result = demo(settings)
        print(format_demo(result))
        tensorboard_hint(result["out"])
    elif args.command == "config":
        _show_config(args.which, settings)
    else:
        command = COMMANDS[args.command]
        resume = {"resume": args.resume} if command.resume else {}
        command.show(command.public_function()(settings, config_file=args.config, **resume))
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
