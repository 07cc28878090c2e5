"""A fresh probe of gensis's promises on bad input and odd files (issue 38), tried as a user would:
each variant is one ``gensis`` command line in a subprocess, on a small world built here.

Every variant is judged by the brief's rules, in this order:

* ``hang``: no answer within the time limit (a FIFO read, a device file);
* ``security``: a file outside the world changed (a link followed where gensis writes);
* ``data loss``: a file of the world that the variant does not own changed or vanished;
* ``traceback``: Python's traceback reached the user;
* ``silently wrong``: exit 0 where a refusal was due, or the variant's own check failed;
* ``unclear``: a refusal that is not one ``gensis: error:`` line with exit 2, or a refusal where the
  command should have worked (a false refusal);
* ``ok`` otherwise.

    python benchmarks/trust_probe.py --out /tmp/probe      # ~75 variants, ~8 min on 2 cores
    python benchmarks/trust_probe.py --only zip-dup        # the variants whose id holds the text

Writes ``<out>/probe.md`` (one row per variant) and ``<out>/probe.json``. Linux/macOS only (FIFOs).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TINY_PRE = [
    "preset=digits",
    "data.cache_dir=null",
    "model.backbone=resnet10t",
    "dino.out_dim=64",
    "dino.hidden_dim=64",
    "dino.bottleneck_dim=32",
    "train.batch_size=6",
    "train.epochs=1",
    "train.knn_every=0",
]
TINY_GEN = ["model.spec=tiny", "train.batch_size=6", "train.epochs=1", "data.cache_dir=null"]
TINY_BANK = ["views_per_image=1", "interpolations_per_image=1", "steps=1", "cache_dir=null"]
REFUSE, WORKS, EITHER = "refuse", "works", "either"
NOT_UTF8 = b"/r\xff.json"
USER_LABELS = "file,label\na.png,1\n"  # the most common label table of the field


@dataclass
class World:
    root: Path
    victim: Path  # a user's files outside the world: nothing may ever change here
    p: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Path:
        return self.p[key]


@dataclass
class Variant:
    id: str
    what: str  # the class of the issue it probes
    setup: Callable[[World, Path], tuple[list[str], list[Path]]]  # -> argv, paths the variant may change
    expect: str = REFUSE
    check: Callable[[World, Path, str], str | None] | None = None  # -> what is wrong, or None


# ---- the world --------------------------------------------------------------------------------------


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    imgs = rng.integers(0, 80, size=(n, 8, 8, 3)).astype(np.uint8)
    imgs[labels == 1, 2:6, 2:6] = 220
    return imgs, labels


def image_folder(path: Path, n: int = 12) -> Path:
    imgs, labels = _images(n)
    for i, (img, k) in enumerate(zip(imgs, labels, strict=True)):
        (path / f"c{k}").mkdir(parents=True, exist_ok=True)
        (path / f"c{k}" / f"{i:03d}.png").write_bytes(_png(img))
    return path


def image_zip(path: Path, n: int = 12, extra: list[tuple[str, bytes]] = ()) -> Path:
    imgs, labels = _images(n)
    with zipfile.ZipFile(path, "w") as zf:
        for i, (img, k) in enumerate(zip(imgs, labels, strict=True)):
            zf.writestr(f"c{k}/{i:03d}.png", _png(img))
        for name, data in extra:
            zf.writestr(name, data)
    return path


def build_world(root: Path) -> World:
    import gensis
    from gensis.config.overrides import parse_overrides as kv  # "null" -> None, as the command line reads it

    root.mkdir(parents=True, exist_ok=True)
    w = World(root / "world", root / "victim")
    w.root.mkdir()
    w.victim.mkdir()
    (w.victim / "notes.txt").write_text("my notes\n")
    (w.victim / "labels.csv").write_text("file,label\na.png,1\n")
    np.save(w.victim / "mine.npy", np.arange(4.0))
    imgs, labels = _images(12)
    np.savez(w.root / "data.npz", images=imgs, labels=labels)
    w.p["npz"] = w.root / "data.npz"
    w.p["folder"] = image_folder(w.root / "folder")
    w.p["zip"] = image_zip(w.root / "data.zip")
    w.p["pre"] = gensis.pretrain(
        kv(TINY_PRE) | {"data.path": str(w["npz"]), "out": str(w.root / "pre"), "train.progress": False}
    ).encoder_path.parents[1]
    w.p["enc"] = w["pre"] / "exported" / "encoder.safetensors"
    gensis.pretrain(
        kv(TINY_PRE)
        | {
            "train.epochs": 2,
            "train.max_steps": 1,
            "data.path": str(w["npz"]),
            "out": str(w.root / "pre_stopped"),
            "train.progress": False,
        }
    )
    w.p["pre_stopped"] = w.root / "pre_stopped"  # stopped after one step: --resume continues it
    gen = gensis.train_generator(
        kv(TINY_GEN)
        | {"data.path": str(w["npz"]), "encoder": str(w["enc"]), "out": str(w.root / "gen"), "train.progress": False}
    )
    w.p["gen_run"], w.p["gen"] = w.root / "gen", gen.generator_path
    gensis.generate(
        kv(TINY_BANK)
        | {"generator": str(w["gen"]), "data_path": str(w["npz"]), "out": str(w.root / "bank"), "progress": False}
    )
    w.p["bank"] = w.root / "bank"
    (w.root / "slides").mkdir()
    w.p["slides"] = w.root / "slides"
    return w


def digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "link:" + os.readlink(p)
        elif p.is_file() and p.name != ".gensis.lock" and "cache" not in p.parts:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ---- helpers for the variants --------------------------------------------------------------------


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def link(path: Path, target: Path | str) -> Path:
    os.symlink(target, path)
    return path


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True) if src.is_dir() else shutil.copy(src, dst)
    return dst


def folder_with(v: Path, name: str, make: Callable[[Path], object]) -> Path:
    folder = image_folder(v / "data")
    make(folder / "c0" / name)
    return folder


def zip_twice(v: Path) -> Path:
    imgs, _ = _images(2)
    path = v / "twice.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(12):
            zf.writestr(f"c{i % 2}/{i:03d}.png", _png(imgs[i % 2]))
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns on the duplicate name: that is the point
            zf.writestr("c0/000.png", _png(imgs[1]))
    return path


def config_file(v: Path, text: str) -> Path:
    path = v / "cfg.yaml"
    path.write_text(text)
    return path


def names_in(w: World, out: Path, stderr: str, *names: str) -> str | None:
    missing = [n for n in names if n not in stderr]
    return f"the warning does not name {missing}" if missing else None


def csv_ids(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        return [row["file"] for row in csv.DictReader(f)]


def run_cmd(*argv: str) -> list[str]:
    return list(argv)


# ---- the variants ----------------------------------------------------------------------------------


def variants() -> list[Variant]:
    V = Variant
    EMB = lambda w, data, o: [
        "embed",
        f"encoder={w['enc']}",
        f"data_path={data}",
        f"out={o / 'e.npy'}",
        "cache_dir=null",
    ]
    EVAL = lambda w, data, o: [
        "eval",
        f"encoder={w['enc']}",
        f"train_path={data}",
        f"test_path={data}",
        "linear=false",
        "knn_k=[1]",
        "cache_dir=null",
        f"out={o / 'r.json'}",
    ]
    PRE = lambda w, data, o: ["pretrain", *TINY_PRE, f"data.path={data}", f"out={o / 'run'}"]
    GENERATE = lambda w, data, o: [
        "generate",
        f"generator={w['gen']}",
        f"data_path={data}",
        *TINY_BANK,
        f"out={o / 'bank'}",
    ]
    FG = lambda w, data, o: ["foreground", f"encoder={w['enc']}", f"data_path={data}", f"out={o / 'fg'}"]
    SHOW = lambda w, data, o: ["show", f"generator={w['gen']}", f"data_path={data}", "steps=1", f"out={o / 'show'}"]
    TG = lambda w, data, o: [
        "train-generator",
        *TINY_GEN,
        f"encoder={w['enc']}",
        f"data.path={data}",
        f"out={o / 'gen'}",
    ]
    EG = lambda w, bank, o: [
        "eval-generator",
        f"bank={bank}",
        f"encoder={w['enc']}",
        f"data_path={w['npz']}",
        f"out={o / 'q.json'}",
    ]
    out: list[Variant] = []

    # 1. special files inside a data folder: skipped with a warning naming them, never read
    for cmd, build in (
        ("embed", EMB),
        ("eval", EVAL),
        ("pretrain", PRE),
        ("generate", GENERATE),
        ("foreground", FG),
        ("show", SHOW),
        ("train-generator", TG),
    ):
        out.append(
            V(
                f"{cmd}:data-fifo",
                "special files",
                lambda w, v, b=build: (b(w, folder_with(v, "pipe.png", fifo), v / "o"), [v]),
                WORKS,
                lambda w, v, err: names_in(w, v, err, "pipe.png"),
            )
        )
    for cmd, build in (("embed", EMB), ("eval", EVAL), ("foreground", FG)):
        out.append(
            V(
                f"{cmd}:data-link-dev-zero",
                "special files",
                lambda w, v, b=build: (b(w, folder_with(v, "zero.png", lambda p: link(p, "/dev/zero")), v / "o"), [v]),
                WORKS,
                lambda w, v, err: names_in(w, v, err, "zero.png"),
            )
        )
    out.append(
        V(
            "embed:data-link-to-zip",
            "special files",
            lambda w, v: (EMB(w, link(v / "d.zip", w["zip"]), v / "o"), [v]),
            WORKS,
        )
    )
    # 2. an input that is itself a special file: one line, no hang
    out += [
        V("embed:data-path-fifo", "special files", lambda w, v: (EMB(w, fifo(v / "d.npz"), v / "o"), [v])),
        V(
            "eval:data-path-dev-zero",
            "special files",
            lambda w, v: (EVAL(w, link(v / "d.npz", "/dev/zero"), v / "o"), [v]),
        ),
        V("pretrain:data-path-fifo-zip", "special files", lambda w, v: (PRE(w, fifo(v / "d.zip"), v / "o"), [v])),
        V(
            "embed:encoder-fifo",
            "special files",
            lambda w, v: (
                ["embed", f"encoder={fifo(v / 'e.safetensors')}", f"data_path={w['npz']}", f"out={v / 'o' / 'e.npy'}"],
                [v],
            ),
        ),
        V(
            "eval:encoder-dev-zero",
            "special files",
            lambda w, v: (
                [
                    "eval",
                    f"encoder={link(v / 'e.safetensors', '/dev/zero')}",
                    f"train_path={w['npz']}",
                    f"test_path={w['npz']}",
                    f"out={v / 'r.json'}",
                ],
                [v],
            ),
        ),
        V(
            "generate:generator-dev-null",
            "special files",
            lambda w, v: (["generate", "generator=/dev/null", f"data_path={w['npz']}", f"out={v / 'bank'}"], [v]),
        ),
        V(
            "eval-generator:index-fifo",
            "special files",
            lambda w, v: (EG(w, _bank_with(w, v, "index.json", fifo), v / "o"), [v]),
        ),
        V(
            "eval-generator:shard-dev-zero",
            "special files",
            lambda w, v: (
                EG(w, _bank_with(w, v, "shard-00000.safetensors", lambda p: link(p, "/dev/zero")), v / "o"),
                [v],
            ),
        ),
        V(
            "pretrain:config-fifo",
            "special files",
            lambda w, v: (["pretrain", "--config", str(fifo(v / "c.yaml"))], [v]),
        ),
        V(
            "eval:config-dev-zero",
            "special files",
            lambda w, v: (["eval", "--config", str(link(v / "c.yaml", "/dev/zero"))], [v]),
        ),
        V(
            "tile:slides-fifo",
            "special files",
            lambda w, v: (["tile", f"slides={fifo(v / 's.svs')}", f"out={v / 't.zip'}"], [v]),
        ),
    ]
    # 3. outputs that are links, FIFOs or planted gensis names: nothing written through
    out += [
        V(
            "eval:out-link-to-user-file",
            "links where gensis writes",
            lambda w, v: (EVAL(w, w["npz"], v)[:-1] + [f"out={link(v / 'r.json', w.victim / 'notes.txt')}"], [v]),
        ),
        V(
            "embed:out-link-to-user-npy",
            "links where gensis writes",
            lambda w, v: (EMB(w, w["npz"], v)[:-2] + [f"out={link(v / 'e.npy', w.victim / 'mine.npy')}"], [v]),
        ),
        V(
            "export:out-link-to-user-file",
            "links where gensis writes",
            lambda w, v: (["export", f"encoder={w['enc']}", f"out={link(v / 'e.pt2', w.victim / 'notes.txt')}"], [v]),
        ),
        V(
            "eval-generator:out-dangling-link",
            "links where gensis writes",
            lambda w, v: (EG(w, w["bank"], v)[:-1] + [f"out={link(v / 'q.json', w.victim / 'new.json')}"], [v]),
            EITHER,
        ),
        V(
            "embed:out-fifo",
            "special files",
            lambda w, v: (EMB(w, w["npz"], v)[:-2] + [f"out={fifo(v / 'e.npy')}"], [v]),
        ),
        V(
            "eval:out-fifo",
            "special files",
            lambda w, v: (EVAL(w, w["npz"], v)[:-1] + [f"out={fifo(v / 'r.json')}"], [v]),
        ),
        V(
            "tile:out-fifo",
            "special files",
            lambda w, v: (["tile", f"slides={w['slides']}", f"out={fifo(v / 't.zip')}"], [v]),
        ),
        V(
            "pretrain:resume-lock-link",
            "links where gensis writes",
            lambda w, v: (_resume(w, v, ".gensis.lock", lambda p: link(p, w.victim / "notes.txt")), [v]),
            EITHER,
        ),
        V(
            "pretrain:resume-metrics-link",
            "links where gensis writes",
            lambda w, v: (_resume(w, v, "metrics.jsonl", lambda p: link(p, w.victim / "notes.txt")), [v]),
            EITHER,
        ),
        V(
            "pretrain:resume-train-log-hardlink",
            "links where gensis writes",
            lambda w, v: (_resume(w, v, "train.log", lambda p: os.link(w.victim / "notes.txt", p)), [v]),
            EITHER,
        ),
        V(
            "pretrain:resume-export-link",
            "links where gensis writes",
            lambda w, v: (
                _resume(w, v, "exported/encoder.safetensors", lambda p: link(p, w.victim / "notes.txt")),
                [v],
            ),
            EITHER,
        ),
        V(
            "generate:bank-index-link",
            "links where gensis writes",
            lambda w, v: (
                GENERATE(w, w["npz"], v)[:-1]
                + [f"out={_bank_with(w, v, 'index.json', lambda p: link(p, w.victim / 'notes.txt'))}"],
                [v],
            ),
            EITHER,
        ),
        V(
            "pretrain:out-user-folder-with-lock",
            "ownership",
            lambda w, v: (PRE(w, w["npz"], v)[:-1] + [f"out={_user_folder(v, ['.gensis.lock', 'notes.txt'])}"], [v]),
        ),
    ]
    # 4. names: not UTF-8, newlines, commas and quotes, spaces
    out += [
        V(
            "embed:name-not-utf8",
            "names",
            lambda w, v: (EMB(w, _named(v, b"caf\xe9.png"), v / "o"), [v]),
            WORKS,
            lambda w, v, err: _rows(v / "o" / "e.csv", 13),
        ),
        V("eval:class-not-utf8", "names", lambda w, v: (EVAL(w, _named(v, b"\xff/x.png"), v / "o"), [v]), WORKS),
        V(
            "embed:name-newline",
            "names",
            lambda w, v: (EMB(w, _named(v, b"a\nb.png"), v / "o"), [v]),
            WORKS,
            lambda w, v, err: _rows(v / "o" / "e.csv", 13),
        ),
        V(
            "embed:name-comma-quote",
            "names",
            lambda w, v: (EMB(w, _named(v, b'a,"b".png'), v / "o"), [v]),
            WORKS,
            lambda w, v, err: None if 'c0/a,"b".png' in csv_ids(v / "o" / "e.csv") else "the id is not read back",
        ),
        V(
            "eval:out-not-utf8",
            "names",
            lambda w, v: (EVAL(w, w["npz"], v)[:-1] + ["out=" + os.fsdecode(bytes(v) + NOT_UTF8)], [v]),
            WORKS,
        ),
        V(
            "pretrain:data-path-spaces-unicode",
            "names",
            lambda w, v: (PRE(w, copy(w["npz"], v / "my données 1.npz"), v / "o"), [v]),
            WORKS,
        ),
    ]
    # 5. zips: a member twice, a member too large, a path out of the zip, a cut zip
    for cmd, build in (("embed", EMB), ("eval", EVAL), ("pretrain", PRE), ("generate", GENERATE), ("foreground", FG)):
        out.append(V(f"{cmd}:zip-dup-member", "zips", lambda w, v, b=build: (b(w, zip_twice(v), v / "o"), [v])))
    out += [
        V(
            "pretrain:zip-member-over-cap",
            "zips",
            lambda w, v: (
                PRE(
                    w,
                    image_zip(
                        v / "big.zip", extra=[("c0/big.png", _png(np.zeros((300, 300, 3), np.uint8)) + b"\0" * 400_000)]
                    ),
                    v / "o",
                )
                + ["data.max_image_bytes=100000"],
                [v],
            ),
            WORKS,
            lambda w, v, err: names_in(w, v, err, "big.png"),
        ),
        V(
            "embed:zip-member-dotdot",
            "zips",
            lambda w, v: (
                EMB(w, image_zip(v / "dd.zip", extra=[("../evil.png", _png(_images(1)[0][0]))]), v / "o"),
                [v],
            ),
            EITHER,
            lambda w, v, err: "a file was written outside" if (v.parent / "evil.png").exists() else None,
        ),
        V("eval:zip-cut-short", "zips", lambda w, v: (EVAL(w, _cut(image_zip(v / "cut.zip")), v / "o"), [v])),
    ]
    # 6. ownership: tables and folders of the user's
    out += [
        V(
            "embed:user-label-csv-beside",
            "ownership",
            lambda w, v: (
                EMB(w, w["npz"], v)[:-2]
                + ["out=" + str(_write(v / "labels.npy", None, v / "labels.csv", USER_LABELS))],
                [],
            ),
        ),
        V(
            "embed:user-csv-file-class",
            "ownership",
            lambda w, v: (
                EMB(w, w["npz"], v)[:-2] + ["out=" + str(_write(v / "e.csv", "file,class\na.png,cat\n"))],
                [],
            ),
        ),
        V(
            "embed:planted-sidecar",
            "ownership",
            lambda w, v: (EMB(w, w["npz"], v)[:-2] + [f"out={_planted_sidecar(v)}"], []),
        ),
        V(
            "eval:user-json",
            "ownership",
            lambda w, v: (EVAL(w, w["npz"], v)[:-1] + [f"out={_write(v / 'r.json', json.dumps({'mine': 1}))}"], []),
        ),
        V(
            "pretrain:user-config-yaml",
            "ownership",
            lambda w, v: (PRE(w, w["npz"], v)[:-1] + [f"out={_user_folder(v, ['config.yaml'])}"], []),
        ),
        V(
            "run:user-pipeline-json",
            "ownership",
            lambda w, v: (["run", f"data.path={w['npz']}", f"out={_user_folder(v, ['pipeline.json'])}"], []),
        ),
    ]
    # 7. empty paths and --config sections of the wrong type
    out += [
        V("eval:out-empty", "empty paths", lambda w, v: (EVAL(w, w["npz"], v)[:-1] + ["out="], [])),
        V("embed:data-path-empty", "empty paths", lambda w, v: (EMB(w, "", v / "o"), [])),
        V(
            "generate:generator-empty",
            "empty paths",
            lambda w, v: (["generate", "generator=", f"data_path={w['npz']}", f"out={v / 'b'}"], []),
        ),
        V("tile:out-empty", "empty paths", lambda w, v: (["tile", f"slides={w['slides']}", "out="], [])),
        V(
            "pretrain:config-section-int",
            "config types",
            lambda w, v: (
                [
                    "pretrain",
                    "--config",
                    str(config_file(v, f"data: {{path: {w['npz']}}}\ntrain: 5\nout: {v / 'o'}\n")),
                ],
                [],
            ),
        ),
        V(
            "pretrain:config-epochs-text",
            "config types",
            lambda w, v: (
                [
                    "pretrain",
                    "--config",
                    str(config_file(v, f"data: {{path: {w['npz']}}}\ntrain: {{epochs: ten}}\nout: {v / 'o'}\n")),
                ],
                [],
            ),
        ),
        V(
            "eval:config-knn-mapping",
            "config types",
            lambda w, v: (
                [
                    "eval",
                    "--config",
                    str(
                        config_file(
                            v,
                            f"encoder: {w['enc']}\ntrain_path: {w['npz']}\n"
                            f"test_path: {w['npz']}\nknn_k: {{a: 1}}\nout: {v / 'r.json'}\n",
                        )
                    ),
                ],
                [],
            ),
        ),
        V(
            "embed:config-list",
            "config types",
            lambda w, v: (["embed", "--config", str(config_file(v, "- 1\n- 2\n"))], []),
        ),
        V(
            "pretrain:config-path-list",
            "config types",
            lambda w, v: (
                ["pretrain", "--config", str(config_file(v, f"data: {{path: [a, b]}}\nout: {v / 'o'}\n"))],
                [],
            ),
        ),
        V(
            "pretrain:config-bad-yaml",
            "config types",
            lambda w, v: (["pretrain", "--config", str(config_file(v, "data: {path: [\n"))], []),
        ),
    ]
    # 8. checks before side effects: nothing created on a refusal
    no_folder = lambda w, v, err: "a folder was created" if (v / "o").exists() else None
    out += [
        V(
            "pretrain:unknown-backbone",
            "before side effects",
            lambda w, v: (PRE(w, w["npz"], v)[:-1] + ["model.backbone=resnet_nope", f"out={v / 'o'}"], []),
            REFUSE,
            no_folder,
        ),
        V(
            "train-generator:unknown-spec",
            "before side effects",
            lambda w, v: (TG(w, w["npz"], v)[:-1] + ["model.spec=huge_nope", f"out={v / 'o'}"], []),
            REFUSE,
            no_folder,
        ),
        V(
            "generate:negative-views",
            "before side effects",
            lambda w, v: (GENERATE(w, w["npz"], v)[:-1] + ["views_per_image=-1", f"out={v / 'o'}"], []),
            REFUSE,
            no_folder,
        ),
        V(
            "pretrain:out-dim-zero",
            "before side effects",
            lambda w, v: (PRE(w, w["npz"], v)[:-1] + ["dino.out_dim=0", f"out={v / 'o'}"], []),
            REFUSE,
            no_folder,
        ),
        V(
            "run:stage-key-typo",
            "before side effects",
            lambda w, v: (["run", f"data.path={w['npz']}", "pretrian.train.epochs=1", f"out={v / 'o'}"], []),
            REFUSE,
            no_folder,
        ),
        V(
            "foreground:missing-encoder",
            "before side effects",
            lambda w, v: (
                ["foreground", f"encoder={v / 'nope.safetensors'}", f"data_path={w['npz']}", f"out={v / 'o'}"],
                [],
            ),
            REFUSE,
            no_folder,
        ),
        V(
            "pretrain:missing-data",
            "before side effects",
            lambda w, v: (PRE(w, v / "nope.npz", v)[:-1] + [f"out={v / 'o'}"], []),
            REFUSE,
            no_folder,
        ),
    ]
    # 9. moved and copied folders resume and generate
    out += [
        V(
            "generate:moved-generator-run",
            "moved folders",
            lambda w, v: (
                GENERATE(w, w["npz"], v)[:1] + [f"generator={_moved(w['gen_run'], v)}"] + GENERATE(w, w["npz"], v)[2:],
                [v],
            ),
            WORKS,
        ),
        V(
            "export:moved-pretrain-run",
            "moved folders",
            lambda w, v: (["export", f"encoder={_moved(w['pre'], v)}", f"out={v / 'e.pt2'}"], [v]),
            WORKS,
        ),
        V(
            "pretrain:moved-run-resumes",
            "moved folders",
            lambda w, v: (
                ["pretrain", "--resume", *TINY_PRE, f"data.path={w['npz']}", f"out={_moved(w['pre'], v)}"],
                [v],
            ),
            WORKS,
        ),
        V(
            "eval-generator:moved-bank",
            "moved folders",
            lambda w, v: (EG(w, _moved(w["bank"], v), v / "o"), [v]),
            WORKS,
        ),
        V(
            "show:copied-generator-run",
            "moved folders",
            lambda w, v: (
                SHOW(w, w["npz"], v)[:1] + [f"generator={copy(w['gen_run'], v / 'g')}"] + SHOW(w, w["npz"], v)[2:],
                [v],
            ),
            WORKS,
        ),
        V(
            "train-generator:moved-encoder-run",
            "moved folders",
            lambda w, v: (
                TG(w, w["npz"], v)[:-3]
                + [f"encoder={_moved(w['pre'], v)}", f"data.path={w['npz']}", f"out={v / 'gen'}"],
                [v],
            ),
            WORKS,
        ),
    ]
    # 10. data that changed under a run
    out += [
        V(
            "pretrain:resume-data-grew",
            "data changes",
            lambda w, v: (_grown(w, v), [v]),
            REFUSE,
            lambda w, v, err: None if "other data" in err else "the refusal does not say the data changed",
        )
    ]
    return out


def _bank_with(w: World, v: Path, name: str, make: Callable[[Path], object]) -> Path:
    bank = copy(w["bank"], v / "bank")
    (bank / name).unlink()
    make(bank / name)
    return bank


def _resume(w: World, v: Path, name: str, make: Callable[[Path], object]) -> list[str]:
    """A stopped run with ``name`` replaced by ``make``, resumed: it writes there, or refuses."""
    run = copy(w["pre_stopped"], v / "run")
    target = run / name
    if target.exists() or target.is_symlink():
        target.unlink()
    make(target)
    return [
        "pretrain",
        "--resume",
        *TINY_PRE[:-2],
        "train.epochs=2",
        "train.knn_every=0",
        f"data.path={w['npz']}",
        f"out={run}",
    ]


def _user_folder(v: Path, names: list[str]) -> Path:
    folder = v / "mine"
    folder.mkdir()
    for n in names:
        (folder / n).write_text("mine\n")
    return folder


def _named(v: Path, name: bytes) -> Path:
    folder = image_folder(v / "data")
    target = os.fsencode(folder / "c0") + b"/" + name
    if b"/" in name:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as f:
        f.write(_png(_images(1)[0][0]))
    return folder


def _rows(table: Path, n: int) -> str | None:
    if not table.is_file():
        return f"{table.name} was not written"
    ids = csv_ids(table)
    return None if len(ids) == n else f"{table.name} has {len(ids)} rows for {n} images"


def _cut(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _write(path: Path, text: str | None, other: Path | None = None, other_text: str = "") -> Path:
    if text is not None:
        path.write_text(text)
    if other is not None:
        other.write_text(other_text)
    return path


def _planted_sidecar(v: Path) -> Path:
    out = v / "e.npy"
    np.save(out, np.ones(3))
    (v / "e.gensis.json").write_text(json.dumps({"format": "gensis.embeddings-files/1", "files": {"e.npy": "0" * 64}}))
    return out


def _moved(src: Path, v: Path) -> Path:
    """A copy of a run moved away from its siblings (the original stays for the other variants)."""
    staged = copy(src, v / "staging" / src.name)
    dst = v / "moved" / src.name
    dst.parent.mkdir(parents=True)
    shutil.move(staged, dst)
    return dst


def _grown(w: World, v: Path) -> list[str]:
    data = copy(w["npz"], v / "d.npz")
    run_out = v / "run"
    subprocess.run(
        [sys.executable, "-m", "gensis", "pretrain", *TINY_PRE, f"data.path={data}", f"out={run_out}", "-q"],
        check=True,
        capture_output=True,
    )
    imgs, labels = _images(13)
    np.savez(data, images=imgs, labels=labels)
    return ["pretrain", "--resume", *TINY_PRE, f"data.path={data}", f"out={run_out}"]


# ---- running and judging ---------------------------------------------------------------------------


def judge(v: Variant, rc: int | None, err: str, changed: list[str], outside: list[str], extra: str | None) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING"))]
    if rc is None:
        return "hang"
    if outside:
        return "security"
    if changed:
        return "data loss"
    if "Traceback" in err:
        return "traceback"
    if v.expect == REFUSE and rc == 0:
        return "silently wrong"
    if extra:
        return "silently wrong" if rc == 0 or v.expect == REFUSE else "unclear"
    if rc != 0:
        errors = [ln for ln in err.splitlines() if ln.startswith("gensis: error:")]
        if rc != 2 or len(errors) != 1 or len([ln for ln in lines if "error" in ln.lower()]) != 1:
            return "unclear"
        if v.expect == WORKS:
            return "unclear"  # a false refusal
    return "ok"


def run_variant(v: Variant, w: World, scratch: Path, timeout: float) -> dict:
    folder = scratch / v.id.replace(":", "__")
    folder.mkdir(parents=True)
    argv, own = v.setup(w, folder)
    quiet = [] if v.expect in (WORKS, EITHER) and v.check is not None else ["-q"]
    before, victim = digest(w.root), digest(w.victim)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "gensis", *argv, *quiet],
            capture_output=True,
            timeout=timeout,
            cwd=folder,
            stdin=subprocess.DEVNULL,
        )
        rc, err = proc.returncode, proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as exc:
        rc, err = None, (exc.stderr or b"").decode(errors="replace")
    seconds = time.perf_counter() - t0
    after = digest(w.root)
    own_s = [str(p) for p in own] + [str(folder)]
    changed = sorted(k for k in before if after.get(k) != before[k] and not k.startswith(tuple(own_s)))
    outside = sorted(k for k, h in digest(w.victim).items() if victim.get(k) != h) + sorted(
        set(victim) - set(digest(w.victim))
    )
    extra = v.check(w, folder, err) if v.check is not None and rc is not None else None
    verdict = judge(v, rc, err, changed, outside, extra)
    said = next(
        (ln for ln in err.splitlines() if ln.startswith("gensis: error:")),
        err.strip().splitlines()[-1] if err.strip() else "",
    )
    return {
        "id": v.id,
        "class": v.what,
        "expect": v.expect,
        "rc": rc,
        "verdict": verdict,
        "seconds": round(seconds, 1),
        "said": said[:300],
        "changed": changed[:5],
        "outside": outside[:5],
        "check": extra,
    }


def markdown(rows: list[dict]) -> str:
    counts = Counter(r["verdict"] for r in rows)
    head = (
        f"{len(rows)} variants: "
        + ", ".join(
            f"{k} {counts[k]}"
            for k in ("ok", "data loss", "security", "traceback", "silently wrong", "hang", "unclear")
        )
        + "\n\n"
    )
    table = [
        "| variant | class | expected | exit | verdict | what it said (or what is wrong) |",
        "|---|---|---|---:|---|---|",
    ]
    for r in rows:
        what = r["check"] or (f"changed {r['changed']}" if r["changed"] else "") or r["said"]
        table.append(
            f"| {r['id']} | {r['class']} | {r['expect']} | {r['rc']} | {r['verdict']} | "
            f"{what.replace('|', '/').replace(chr(10), ' ')[:160]} |"
        )
    return head + "\n".join(table) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="a new folder for the world, the scratch and the table")
    ap.add_argument(
        "--only", default="", help="run only the variants whose id holds one of these texts (comma-separated)"
    )
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a variant counts as a hang")
    args = ap.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        print(f"trust_probe: --out {args.out} is not empty; give a new folder", file=sys.stderr)
        return 2
    w = build_world(args.out)
    rows = []
    for v in variants():
        if any(text in v.id for text in args.only.split(",")):
            rows.append(run_variant(v, w, args.out / "scratch", args.timeout))
            print(f"{rows[-1]['verdict']:>15}  {v.id}  {rows[-1]['said'][:110]}", flush=True)
    (args.out / "probe.json").write_text(json.dumps(rows, indent=1))
    (args.out / "probe.md").write_text(markdown(rows))
    print(markdown(rows).splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
