"""The output guard's rules, tested by a sweep generated from the commands' typed configs (issue 24).

For every subcommand (``gensis.cli.command_configs``) and every input path its config holds, the
output is put where it must not go: equal to the input, inside it, inside the gensis run folder
the input belongs to, and equal to that run folder. Each case must end with exit 2, one line that
names the rule, no traceback, every file of the world byte for byte unchanged and nothing new.
A second sweep points every command's output at files and folders gensis did not write.
The inputs are found by the same code the guard uses (runtime/guards.py: config_paths), so a new
path field, or a new command, is in the sweep without a new case being written here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from _refusal import digest

from gensis.cli import command_configs, main
from gensis.config.overrides import build_config, parse_overrides
from gensis.config.paths import Role
from gensis.runtime.guards import config_paths
from gensis.runtime.lock import LOCK_NAME
from gensis.runtime.products import run_folder_of

SMALL_PRE = (
    "preset=digits data.cache_dir=null model.backbone=resnet10t dino.out_dim=64 dino.hidden_dim=64 "
    "dino.bottleneck_dim=32 train.batch_size=6 train.epochs=1 train.knn_every=0"
)
ENC_IN_RUN = "{pre}/exported/encoder.safetensors"  # a file input inside a run folder
# Every subcommand with its inputs set; several bases where one config cannot hold them all.
BASES: dict[str, list[str]] = {
    "pretrain": [
        SMALL_PRE + " data.path={data} data.eval_path={zip} init_from={pre} gen.bank={bank} "
        "quality.encoder=" + ENC_IN_RUN,
        SMALL_PRE + " data.path={data} gen.generator={gen}",
    ],
    "train-autoencoder": ["data.path={data} data.eval_path={zip} encoder=" + ENC_IN_RUN],
    "train-generator": [
        "model.spec=tiny data.path={data} data.eval_path={zip} encoder=" + ENC_IN_RUN,
        "model.spec=tiny model.space=latent data.path={data} encoder={enc} model.vae={bank}",
    ],
    "generate": ["generator={gen} encoder={enc} data_path={data}"],
    "eval-generator": ["bank={bank} encoder=" + ENC_IN_RUN + " data_path={data}"],
    "show": ["generator={gen} encoder={enc} data_path={data}"],
    "foreground": ["encoder=" + ENC_IN_RUN + " data_path={data}"],
    "eval": ["encoder=" + ENC_IN_RUN + " train_path={data} test_path={zip}"],
    "embed": ["encoder={enc} data_path={data}"],
    "export": ["encoder={pre}"],
    "run": ["data.path={data} data.eval_path={zip}"],
    "tile": ["slides={slides}"],
}
# The name an output gets inside a folder, by command (file outputs need their suffix).
OUT_NAME = {"eval": "r.json", "eval-generator": "r.json", "embed": "e.npy", "export": "e.pt2", "tile": "t.zip"}


def _config(command: str, argv: str, world: dict):
    settings = parse_overrides([a.format(**world) for a in argv.split()])
    settings["out"] = f"/nonexistent-gensis-sweep/{OUT_NAME.get(command, 'x')}"  # the cases set their own
    return build_config(command_configs()[command], settings, use_presets=command == "pretrain")


def _inputs(command: str, argv: str, world: dict) -> dict[str, Path]:
    paths = config_paths(_config(command, argv, world))
    return {k: Path(v) for k, (role, v) in paths.items() if role is Role.INPUT and Path(v).exists()}


def _expected(out: Path, inputs: dict[str, Path]) -> str:
    """The rule that applies: inside-input when ``out`` is, holds or lies in any input, else inside-run."""
    target = out.resolve()
    for path in inputs.values():
        source = path.resolve()
        if target == source or source in target.parents or target in source.parents:
            return "inside-input"
    return "inside-run"


def _cases(world: dict) -> list[tuple[str, str, str]]:
    """(argv, out, rule) for every command x input x placement."""
    cases = []
    for command, bases in BASES.items():
        name = OUT_NAME.get(command, "x")
        for argv in bases:
            inputs = _inputs(command, argv, world)
            for path in inputs.values():
                run = run_folder_of(path)
                places = [path, path / name]
                if run is not None and run != path.resolve():
                    places += [run / name, run]
                cases += [(f"{command} {argv}", str(out), _expected(out, inputs)) for out in places]
    return cases


def _stamps(root: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file: cheap enough for each case (the sweeps also compare sha256 once)."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


def _refused(world: dict, capsys, argv: str, out: str, rule: str) -> str:
    before = _stamps(world["root"])
    existed = os.path.exists(out)  # False, not an error, for a name too long
    code = main([a.format(**world) for a in argv.split()] + [f"out={out}", "-q"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (argv, out, err)
    assert lines[0].startswith("gensis: error: ") and f"[rule {rule}:" in lines[0], (argv, out, lines[0])
    assert _stamps(world["root"]) == before, (argv, out)
    assert os.path.exists(out) == existed, (argv, out)
    return lines[0]


def test_every_command_and_every_input_is_in_the_sweep(bad_world) -> None:
    """A new command, or a command whose inputs the bases miss, fails here until it is swept."""
    commands = set(command_configs())
    assert set(BASES) == commands
    for command, bases in BASES.items():
        model = command_configs()[command]
        covered = {k for argv in bases for k in _inputs(command, argv, bad_world)}
        declared = {
            k
            for argv in bases
            for k, (role, _) in config_paths(_config(command, argv, bad_world)).items()
            if role is Role.INPUT
        }
        assert covered == declared, (command, declared - covered)
        # Every field marked as an input in the config class is set by some base.
        marked = _marked_inputs(model)
        assert marked <= declared | _NOT_SWEPT.get(command, set()), (command, marked - declared)


# Inputs the bases leave unset, and why: each needs a config that no other base can build.
_NOT_SWEPT = {
    "generate": {"external"},  # an outside model (tested in test_external_generator.py)
    "run": set(),
}


def _marked_inputs(model, prefix: str = "") -> set[str]:
    from pydantic import BaseModel

    from gensis.runtime.guards import path_role

    found = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found |= _marked_inputs(ann, f"{prefix}{name}.")
        elif path_role(field) is Role.INPUT:
            found.add(f"{prefix}{name}")
    return found


def test_generated_sweep(bad_world, capsys) -> None:
    cases = _cases(bad_world)
    assert len(cases) >= 60, len(cases)  # every command x input x placement
    rules = set()
    before = digest(bad_world["root"])
    for argv, out, rule in cases:
        _refused(bad_world, capsys, argv, out, rule)
        rules.add(rule)
    assert digest(bad_world["root"]) == before
    assert rules == {"inside-input", "inside-run"}


def _foreign(tmp_path: Path, world: dict) -> dict[str, Path]:
    """Files and folders of the user's, each of a kind some command writes."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes\n")
    (tmp_path / "mine.json").write_text(json.dumps({"my": "results"}))
    np.save(tmp_path / "mine.npy", np.arange(6.0))
    (tmp_path / "mine.pt2").write_bytes(b"my model")
    shutil.copy(world["zip"], tmp_path / "mine.zip")  # a dataset zip: tile out= would merge into it
    (tmp_path / "pair.csv").write_text("name,value\nx,1\n")  # embed out=pair.npy also writes pair.csv
    return {
        "folder": mine,
        "json": tmp_path / "mine.json",
        "npy": tmp_path / "mine.npy",
        "pt2": tmp_path / "mine.pt2",
        "zip": tmp_path / "mine.zip",
        "companion": tmp_path / "pair.npy",
    }


FOREIGN = {  # command -> (which of the user's things out= points at, rule)
    "pretrain": [("folder", "foreign-folder"), ("json", "foreign-file")],
    "train-autoencoder": [("folder", "foreign-folder")],
    "train-generator": [("folder", "foreign-folder")],
    "generate": [("folder", "foreign-folder")],
    "show": [("folder", "foreign-folder")],
    "foreground": [("folder", "foreign-folder")],
    "run": [("folder", "foreign-folder")],
    "eval": [("json", "foreign-file"), ("folder", "foreign-folder")],
    "eval-generator": [("json", "foreign-file")],
    "embed": [("npy", "foreign-file"), ("companion", "foreign-file")],
    "export": [("pt2", "foreign-file")],
    "tile": [("zip", "foreign-file"), ("folder", "foreign-folder")],
}


def test_outputs_never_replace_what_gensis_did_not_write(bad_world, capsys, tmp_path) -> None:
    assert set(FOREIGN) == set(command_configs())
    things = _foreign(tmp_path, bad_world)
    before = {**digest(tmp_path), **digest(bad_world["root"])}
    for command, targets in FOREIGN.items():
        for what, rule in targets:
            _refused(bad_world, capsys, f"{command} {BASES[command][-1]}", str(things[what]), rule)
    assert {**digest(tmp_path), **digest(bad_world["root"])} == before


def test_gensis_outputs_may_be_replaced(bad_world, tmp_path) -> None:
    """The rules refuse only what they name: a rerun into gensis's own file or folder goes ahead."""
    import gensis

    kw = dict(
        encoder=str(bad_world["enc"]),
        train_path=str(bad_world["data"]),
        test_path=str(bad_world["data"]),
        knn_k=[1],
        linear=False,
        cache_dir=None,
        out=str(tmp_path / "eval.json"),
    )
    gensis.evaluate(**kw)
    gensis.evaluate(**kw)
    for out in ("e.npy", "e.csv", "e.safetensors"):
        for _ in range(2):
            gensis.embed(
                encoder=str(bad_world["enc"]),
                data_path=str(bad_world["data"]),
                out=str(tmp_path / out),
                cache_dir=None,
                progress=False,
            )


def test_run_refuses_inputs_inside_its_out(bad_world, capsys, tmp_path) -> None:
    """`gensis run` writes anywhere in out: the data, the eval data and any stage input stay outside it."""
    out = tmp_path / "p"
    out.mkdir()
    # a gensis pipeline folder: only the input rules apply
    (out / "pipeline.json").write_text('{"stages": {}, "written_by": "gensis"}')
    for sub in ("pictures", "data"):
        (out / sub).mkdir()
        shutil.copy(bad_world["data"], out / sub / "images.npz")
    base = "run data.path={data} out=" + str(out)
    cases = [
        (f"run data.path={out}/pictures/images.npz", "inside-input"),
        (f"run data.path={out}/data/images.npz", "inside-input"),
        (f"run data.path={{data}} data.eval_path={out}/data/images.npz", "inside-input"),
        (base + f" pretrain.quality.enabled=true pretrain.quality.encoder={out}/data/images.npz", "input-inside-out"),
        (base + f" generator.model.space=latent generator.model.vae={out}/data", "input-inside-out"),
    ]
    before = digest(tmp_path)
    for argv, rule in cases:
        args = argv.split() if "out=" in argv else [*argv.split(), f"out={out}"]
        code = main([a.format(**bad_world) for a in args] + ["-q"])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and f"[rule {rule}:" in lines[0], (argv, err)
    assert digest(tmp_path) == before


def test_a_new_unmarked_path_field_is_guarded_by_default(tmp_path) -> None:
    """A field nobody marked is still an input when it names something on disk."""
    from gensis.config.paths import OutputDir
    from gensis.config.schema import StrictModel
    from gensis.errors import ConfigError
    from gensis.runtime.guards import guard_paths

    class NewCommandConfig(StrictModel):
        reference_images: str  # a path field added without a role
        out: OutputDir

    (tmp_path / "refs").mkdir()
    with pytest.raises(ConfigError, match=r"input reference_images=.*\[rule inside-input:"):
        guard_paths(NewCommandConfig(reference_images=str(tmp_path / "refs"), out=str(tmp_path / "refs" / "run")))
    guard_paths(NewCommandConfig(reference_images="not a path", out=str(tmp_path / "run")))  # a plain string


def test_online_knn_is_named_by_the_k_it_used(tmp_path) -> None:
    """12 training images: the online kNN votes among 12, and says k=12, not k=20 or k=200."""
    from _synthetic import write_npz

    import gensis

    data = write_npz(tmp_path / "images.npz", 12, size=8)
    gensis.pretrain(
        {
            "preset": "digits",
            "data.cache_dir": None,
            "model.backbone": "resnet10t",
            "dino.out_dim": 64,
            "dino.hidden_dim": 64,
            "dino.bottleneck_dim": 32,
            "train.batch_size": 6,
            "train.epochs": 1,
            "train.knn_every": 1,
            "train.progress": False,
            "data.path": str(data),
            "data.eval_path": str(data),
            "out": str(tmp_path / "run"),
        }
    )
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    knn = [r for r in records if any(k.startswith("knn_top1") for k in r)]
    assert knn and all({k for k in r if k.startswith("knn_top1")} == {"knn_top1_k12"} for r in knn), knn


def test_the_audits_classes_are_refused_by_rule(bad_world, capsys, tmp_path, monkeypatch) -> None:
    """Classes an audit after the first sweep found (2026-12-03), each refused in one line."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "mine.pt").write_bytes(b"my model")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    w = bad_world
    cases = [
        # "~" is expanded once, in the config: the guard checks the path that would be written
        (f"export encoder={w['enc']}", "~/mine.pt", "foreign-file"),
        # an out folder of another command's kind, even when no input names it
        (f"generate generator={w['gen']} data_path={w['data']}", str(w["pre"]), "foreign-folder"),
        (f"foreground encoder={w['enc']} data_path={w['data']}", str(w["gen_run"]), "foreign-folder"),
        (f"show generator={w['gen']} data_path={w['data']}", str(w["bank"]), "foreign-folder"),
        # paths that cannot be written at all
        (f"embed encoder={w['enc']} data_path={w['data']}", str(tmp_path / ("a" * 300 + ".npy")), "foreign-file"),
        (f"embed encoder={w['enc']} data_path={w['data']}", str(home / "mine.pt" / "e.npy"), "foreign-file"),
    ]
    for argv, out, rule in cases:
        _refused(w, capsys, argv, out, rule)
    assert (home / "mine.pt").read_bytes() == b"my model" and not (tmp_path / "~").exists()


def _one_line(capsys, argv: list[str]) -> str:
    try:
        code = main(argv + ["-q"])
    except SystemExit as exc:  # usage mistakes end in argparse's exit (the process exits 2)
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("gensis: error: ") and "Traceback" not in err, err
    return lines[0]


def test_bad_values_and_files_found_by_the_audit_are_one_line(bad_world, capsys, tmp_path) -> None:
    from conftest import _bank_copy, _resave

    w = bad_world
    enc = _resave(w["enc"], tmp_path / "enc_drop.safetensors", backbone_kwargs='{"drop_rate": "x"}')
    assert "metadata 'backbone'/'backbone_kwargs'" in _one_line(
        capsys, ["embed", f"encoder={enc}", f"data_path={w['data']}", f"out={tmp_path / 'e.npy'}", "cache_dir=null"]
    )
    spec = json.loads(__import__("safetensors").safe_open(str(w["gen"]), "pt").metadata()["spec"])
    gen = _resave(w["gen"], tmp_path / "gen_heads.safetensors", spec=json.dumps({**spec, "attention_head_dim": 0}))
    assert "metadata 'spec'" in _one_line(
        capsys, ["generate", f"generator={gen}", f"data_path={w['data']}", f"out={tmp_path / 'b'}", "cache_dir=null"]
    )
    sched = json.loads(__import__("safetensors").safe_open(str(w["gen"]), "pt").metadata()["scheduler"])
    gen = _resave(
        w["gen"], tmp_path / "gen_sched.safetensors", scheduler=json.dumps({**sched, "beta_schedule": "nope"})
    )
    assert "metadata 'scheduler'" in _one_line(
        capsys, ["generate", f"generator={gen}", f"data_path={w['data']}", f"out={tmp_path / 'b2'}", "cache_dir=null"]
    )
    assert not (tmp_path / "b2").exists()  # named before anything is written
    bank = _bank_copy(w["root"], "bank_res_audit", edit=lambda i: {**i, "resolution": 10**12})
    assert "field 'resolution' must be in [8, 1024]" in _one_line(
        capsys, ["generate", f"generator={w['gen']}", f"data_path={w['data']}", f"out={bank}", "cache_dir=null"]
    )
    shutil.rmtree(bank)
    assert "knn_k" in _one_line(
        capsys, ["eval", f"encoder={w['enc']}", f"train_path={w['data']}", f"test_path={w['data']}", "knn_k=[0]"]
    )
    assert "seed" in _one_line(
        capsys,
        [
            "eval",
            f"encoder={w['enc']}",
            f"train_path={w['data']}",
            f"test_path={w['data']}",
            "seed=99999999999999999999999",
        ],
    )
    assert "unrecognized arguments: --force" in _one_line(capsys, ["embed", "--force", f"encoder={w['enc']}"])


def test_the_encoder_a_generator_records_is_an_input_too(bad_world, capsys, tmp_path) -> None:
    """generate and show read the generator's recorded encoder when encoder= is not given: its run is protected."""
    import gensis

    w = bad_world
    gen = gensis.train_generator(
        {
            "model.spec": "tiny",
            "train.batch_size": 6,
            "train.epochs": 1,
            "train.progress": False,
            "data.cache_dir": None,
            "data.path": str(w["data"]),
            "encoder": str(w["pre"]),
            "out": str(tmp_path / "gen"),
        }
    ).generator_path
    for argv, out in (
        (f"generate generator={gen} data_path={w['data']}", w["pre"] / "newbank"),
        (f"show generator={gen} data_path={w['data']}", w["pre"] / "exported" / "pictures"),
    ):
        line = _refused(w, capsys, argv, str(out), "inside-run")
        assert "encoder (recorded in the generator)" in line, line
