"""Bad-input sweep, part 2 (issue 14): outputs never written over inputs or finished runs,
checkpoints and banks tied to their run and data, every file read validated, evaluation
classes matched by name. Each case: one line naming the file or key, exit 2, no traceback,
and every file written before (inputs, runs, banks) byte for byte unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from _refusal import assert_refused

import gensis

GEN = "model.spec=tiny train.batch_size=6 train.epochs=1 data.cache_dir=null data.path={data} encoder={enc}"
PRE = (
    "preset=digits data.cache_dir=null model.backbone=resnet10t dino.out_dim=64 dino.hidden_dim=64 "
    "dino.bottleneck_dim=32 train.batch_size=6 train.epochs=1 train.knn_every=0 data.path={grow}"
)
STAGE3 = (
    "preset=digits data.resolution=8 augment.global_crop_size=8 augment.local_crop_size=4 "
    "augment.n_local_crops=0 model.backbone=resnet10t train.batch_size=4 data.cache_dir=null"
)
EVAL = "eval encoder={enc} train_path={data} linear=false knn_k=[1] cache_dir=null"


@pytest.fixture(scope="module")
def world(bad_world) -> dict[str, Path]:
    return bad_world  # built once per session in conftest.py


CASES = [
    # 1. no command writes over an input or a finished result
    ("embed encoder={enc} data_path={zip} out={zip} cache_dir=null", "out={zip} is the input data_path"),
    ("embed encoder={enc} data_path={odd} out={odd}/e.safetensors", "lies inside the input data_path"),
    ("embed encoder={enc} data_path={data} out={enc}", "is the input encoder"),
    ("eval encoder={enc} train_path={data} test_path={zip} out={zip}", "is the input test_path"),
    ("eval encoder={enc} train_path={zip} test_path={data} out={zip}", "is the input train_path"),
    ("eval encoder={enc} train_path={data} test_path={data} out={enc}", "is the input encoder"),
    ("eval-generator bank={bank} encoder={enc} data_path={data} out={bank}/q.json", "inside the input bank"),
    ("eval-generator bank={bank} encoder={enc} data_path={data} out={data}", "is the input data_path"),
    ("show generator={gen} data_path={odd} out={odd}/pictures", "inside the input data_path"),
    ("show generator={gen_run} data_path={data} out={gen_run}/pictures", "inside the input generator"),
    ("foreground encoder={enc} data_path={odd} out={odd}/fg", "inside the input data_path"),
    ("generate generator={gen} data_path={data} out={data}", "is the input data_path"),
    ("generate generator={gen} data_path={odd} out={odd}/bank", "inside the input data_path"),
    ("pretrain data.path={odd} out={odd}/run", "inside the input data.path"),
    ("pretrain data.path={data} init_from={pre} out={pre}/exported", "inside the input init_from"),
    ("train-generator encoder={enc} data.path={data} out={data}", "is the input data.path"),
    ("train-generator encoder={pre} data.path={data} out={pre}/gen", "inside the input encoder"),
    ("run data.path={odd} out={odd}/run", "inside the input data.path"),
    ("tile slides={slides} out={slides}/tiles", "inside the input slides"),
    ("pretrain data.path={data} out={gen_run}", "holds a gensis generator run; this command writes a pretrain run"),
    (
        "pretrain data.path={data} out={gen_stripped}",
        "holds a gensis generator run; this command writes a pretrain run",
    ),
    (
        "pretrain data.path={data} out={pre_stripped}",
        "already holds a run (exported/encoder.safetensors, metrics.jsonl",
    ),
    ("train-generator " + GEN + " out={gen_stripped} train.seed=5", "already holds a run"),
    (
        "train-generator " + GEN + " out={pre_stripped}",
        "holds a gensis pretrain run; this command writes a generator run",
    ),
    ("pretrain data.path={data} out={foreign}", "foreign is a folder of other files, not an output of this command"),
    ("train-generator " + GEN + " out={foreign}", "foreign is a folder of other files, not an output of this command"),
    ("run data.path={data} out={foreign}", "foreign is a folder of other files, not an output of this command"),
    # 2. checkpoints, banks and resumes tied to their run and data
    (
        "train-generator --resume " + GEN + " out={gen_swapped}",
        "gen_swapped/checkpoints/last.pt: saved by a run with other settings",
    ),
    ("pretrain --resume " + PRE + " out={pre}", "pre/checkpoints/last.pt: trained on other data"),
    (
        "generate generator={gen} data_path={other} out={bank} views_per_image=1 interpolations_per_image=1 steps=1",
        "generated from other images than {other}",
    ),
    ("eval-generator bank={bank} encoder={enc} data_path={other}", "generated from other images"),
    (
        "pretrain " + STAGE3 + " data.path={other} gen.bank={bank} out={out}",
        "gen.bank: {bank} was generated from other images",
    ),
    (
        "pretrain " + STAGE3 + " data.path={data} gen.bank={bank_missing} out={out}",
        "shard-00000.safetensors: listed in index.json but missing",
    ),
    (
        "pretrain " + STAGE3 + " data.path={data} gen.bank={bank_trunc} out={out}",
        "shard-00000.safetensors: listed in index.json but truncated",
    ),
    # 4. every file read is validated before use
    (EVAL + " test_path={data} encoder={enc_kwargs}", "enc_kwargs.safetensors: metadata 'backbone_kwargs'"),
    (EVAL + " test_path={data} encoder={enc_negres}", "enc_negres.safetensors: metadata 'resolution'"),
    (EVAL + " test_path={data} encoder={enc_mean2}", "enc_mean2.safetensors: metadata 'mean'"),
    (EVAL + " test_path={data} encoder={enc_stem}", "enc_stem.safetensors: metadata 'cifar_stem'"),
    (EVAL + " test_path={data} encoder={enc_std0}", "enc_std0.safetensors: metadata 'std'"),
    (EVAL + " test_path={data} encoder={enc_dim}", "enc_dim.safetensors: metadata 'embed_dim' is not valid JSON"),
    (
        "export encoder={enc_steps} out={out}.pt2",
        "enc_steps.safetensors: metadata 'trained_steps' must be an integer >= 0",
    ),
    ("embed encoder={enc_mean2} data_path={data} out={out}.safetensors", "metadata 'mean'"),
    # an encoder without mean/std: refused by every command that embeds images, before its data is read
    ("embed encoder={enc_bare} data_path={absent} out={out}.safetensors", "enc_bare.safetensors: no mean/std"),
    ("foreground encoder={enc_bare} data_path={absent} out={out}", "enc_bare.safetensors: no mean/std"),
    ("eval encoder={enc_bare} train_path={absent} test_path={absent}", "enc_bare.safetensors: no mean/std"),
    ("train-generator encoder={enc_bare} data.path={absent} out={out}", "enc_bare.safetensors: no mean/std"),
    ("export encoder={enc_bare} out={out}.pt", "enc_bare.safetensors: no mean/std"),
    ("generate generator={gen_spec} data_path={data} out={out}", "gen_spec.safetensors: metadata 'spec'"),
    ("generate generator={gen_latent} data_path={data} out={out}", "gen_latent.safetensors: metadata 'vae'"),
    ("show generator={gen_space} data_path={data} out={out}", "gen_space.safetensors: metadata 'space'"),
    ("generate generator={gen_sha} data_path={data} out={out}", "gen_sha.safetensors: metadata 'encoder_sha256'"),
    ("eval-generator bank={bank_types} encoder={enc} data_path={data}", "bank_types/index.json: field 'n_sources'"),
    ("eval-generator bank={bank_neg} encoder={enc} data_path={data}", "bank_neg/index.json: field 'resolution'"),
    ("eval-generator bank={bank_list} encoder={enc} data_path={data}", "bank_list/index.json: corrupt bank index"),
    ("eval-generator bank={bank_shard99} encoder={enc} data_path={data}", "bank_shard99/index.json: field 'shards'"),
    ("train-generator --resume " + GEN + " out={gen_empty_pt}", "gen_empty_pt/checkpoints/last.pt: empty file"),
    ("eval-generator bank={bank_missing} encoder={enc} data_path={data}", "bank_missing/shard-00000.safetensors"),
    ("eval-generator bank={bank_trunc} encoder={enc} data_path={data}", "bank_trunc/shard-00000.safetensors"),
    (
        "eval-generator bank={bank} encoder={enc} data_path={data} max_images=6",
        "6 images, but the bank was generated from 12",
    ),
    (
        "foreground encoder={enc_kwargs} data_path={data} out={out}",
        "enc_kwargs.safetensors: metadata 'backbone_kwargs'",
    ),
    (
        "train-generator encoder={enc_negres} data.path={data} out={out}",
        "enc_negres.safetensors: metadata 'resolution'",
    ),
    ("pretrain data.path={text_npz} out={out}", "text.npz: not an .npz archive"),
    # 5. evaluation matches classes by name
    (EVAL + " test_path={disjoint}", "disjoint.npz: no class in common"),
    ("pretrain " + PRE + " data.eval_path={disjoint} out={out}", "no class in common"),
    # 7. smaller ones
    ("config eval knn_kk=3", "unknown key 'knn_kk'"),
    ("config embed batch_size=0", "batch_size"),
    ("config run gen_dino=3", "gen_dino"),
    ("demo out={out} gen_dino.gen.p_gen=3", "gen.p_gen"),
    ("pretrain " + PRE + " out={pre}", "already holds a run (checkpoints/last.pt"),
]


@pytest.mark.parametrize("argv,fragment", CASES, ids=[c[0].split()[0] + ":" + c[1][:40] for c in CASES])
def test_refused_with_one_line_and_nothing_changed(world, capsys, tmp_path, argv: str, fragment: str) -> None:
    assert_refused(world, capsys, tmp_path / "r", argv, fragment)


def test_export_is_byte_identical(tmp_path) -> None:
    """The same tensors and metadata give the same file (safetensors orders its header by hash map)."""
    from gensis.config.schema import ModelConfig
    from gensis.models.backbones import build_encoder
    from gensis.runtime.checkpoint import export_encoder

    encoder = build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8)
    meta = {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]", "method": "dino", "trained_steps": "2"}
    paths = [tmp_path / f"{i}.safetensors" for i in range(4)]
    for p in paths:
        export_encoder(p, encoder, meta)
    assert len({p.read_bytes() for p in paths}) == 1
    info = gensis.load_encoder(paths[0]).info
    assert (info.method, info.trained_steps) == ("dino", 2)


def test_moved_finished_run_resumes_as_a_no_op(world, tmp_path) -> None:
    """A finished run moved elsewhere resumes; its export keeps its bytes (generators and banks check them)."""
    import shutil

    settings = {
        "preset": "digits",
        "data.cache_dir": None,
        "model.backbone": "resnet10t",
        "dino.out_dim": 64,
        "dino.hidden_dim": 64,
        "dino.bottleneck_dim": 32,
        "train.batch_size": 6,
        "train.epochs": 1,
        "train.knn_every": 0,
        "train.progress": False,
        "data.path": str(world["data"]),
    }
    first = gensis.pretrain({**settings, "out": str(tmp_path / "a")})
    exported = first.encoder_path.read_bytes()
    shutil.move(tmp_path / "a", tmp_path / "b")
    again = gensis.pretrain({**settings, "out": str(tmp_path / "b")}, resume=True)
    assert again.steps == first.steps and again.encoder_path.read_bytes() == exported


def _labelled_zip_without(world, tmp_path: Path, drop: str) -> Path:
    import zipfile

    out = tmp_path / f"without_{drop}.zip"
    with zipfile.ZipFile(world["zip"]) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if not name.startswith(f"{drop}/"):
                dst.writestr(name, src.read(name))
    return out


def test_eval_matches_classes_by_name(world, tmp_path, caplog) -> None:
    """A test set missing one class scores its images as in the full set (k=1 on the train images: 100 %)."""
    part = _labelled_zip_without(world, tmp_path, "a")
    kw = dict(encoder=str(world["enc"]), train_path=str(world["zip"]), knn_k=[1], linear=False, cache_dir=None)
    full = gensis.evaluate(test_path=str(world["zip"]), **kw)
    with caplog.at_level("WARNING", logger="gensis"):
        result = gensis.evaluate(test_path=str(part), **kw)
    assert full["knn_top1"]["1"] == result["knn_top1"]["1"] == 100.0 and result["n_test"] == 9
    # One warning naming the test set and the one train class it lacks ("a"), nothing else.
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"train classes absent from {part} (scored on the others): a"], warnings


def test_npz_labels_renumbered_with_their_names(tmp_path) -> None:
    """Any label values (9e12) become 0..K-1, named by their value, so kNN needs K classes, not 9e12."""
    images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "huge.npz", images=images, labels=np.array([9_000_000_000_000, 7, 7, 9_000_000_000_000]))
    data = gensis.load_images(str(tmp_path / "huge.npz"), 8, cache_dir=None)
    assert data.labels.tolist() == [1, 0, 0, 1] and data.class_names == ["7", "9000000000000"]


def test_generate_remakes_a_listed_shard_that_is_missing_or_cut_short(world, tmp_path) -> None:
    import shutil

    from gensis.bank import ViewBank

    original = (world["bank"] / "shard-00000.safetensors").read_bytes()
    for name, damage in (("cut", lambda p: p.write_bytes(original[:-100])), ("gone", lambda p: p.unlink())):
        bank = tmp_path / name
        shutil.copytree(world["bank"], bank)
        damage(bank / "shard-00000.safetensors")
        assert not ViewBank(bank).complete
        result = gensis.generate(
            {
                "generator": str(world["gen"]),
                "data_path": str(world["data"]),
                "out": str(bank),
                "views_per_image": 1,
                "interpolations_per_image": 1,
                "steps": 1,
                "progress": False,
                "cache_dir": None,
            }
        )
        assert result.n_images > 0 and ViewBank(bank).complete
        assert (bank / "shard-00000.safetensors").read_bytes() == original  # the same shard, remade exactly


def test_run_that_died_before_its_first_checkpoint_starts_over(world, tmp_path) -> None:
    """Only config.yaml and a few metrics (gensis's, same settings): a fresh run may use the folder."""
    settings = {
        "preset": "digits",
        "data.cache_dir": None,
        "model.backbone": "resnet10t",
        "dino.out_dim": 64,
        "dino.hidden_dim": 64,
        "dino.bottleneck_dim": 32,
        "train.batch_size": 6,
        "train.epochs": 1,
        "train.knn_every": 0,
        "train.progress": False,
        "data.path": str(world["data"]),
        "out": str(tmp_path / "r"),
    }
    gensis.pretrain(settings)
    run = tmp_path / "r"
    import shutil

    shutil.rmtree(run / "checkpoints")
    shutil.rmtree(run / "exported")
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    result = gensis.pretrain(settings)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert result.encoder_path.is_file() and records and {"step": 1, "loss": 1.0} not in records  # stale ones gone


def test_signal_caught_by_a_stage_reaches_the_pipeline() -> None:
    """SIGTERM in a stage's last step: the stage finishes, `gensis run` (the outer block) still knows,
    and the outermost block stops its caller (a script calling the API) instead of returning."""
    import os
    import signal

    from gensis.runtime.signals import GracefulStop, Interrupted

    after_stage = None
    with pytest.raises(Interrupted, match="stopped by SIGTERM") as stopped:
        with GracefulStop() as pipeline:
            with GracefulStop() as stage:
                os.kill(os.getpid(), signal.SIGTERM)
            after_stage = (stage.signal, pipeline.signal)  # the inner block returned normally
    assert after_stage == (signal.SIGTERM, signal.SIGTERM) and stopped.value.exit_code == 143
    with GracefulStop() as quiet:  # no signal: no stop, and the handlers are the caller's again
        pass
    assert quiet.signal is None and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_sigterm_during_generate_stops_after_the_shard_with_a_message(world, tmp_path) -> None:
    """The bank keeps the finished shard; exit 143 and one line, as the training stages do."""
    import subprocess
    import sys

    from gensis.bank.store import read_index

    bank = tmp_path / "bank"
    script = (
        "import os, signal, sys\n"
        "import gensis.generator.generate as g\n"
        "real = g._generate_shard\n"
        "def first_then_term(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # arrives while shard 0 is made\n"
        "    return real(*a, **k)\n"
        "g._generate_shard = first_then_term\n"
        "from gensis.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = [
        f"generator={world['gen']}",
        f"data_path={world['data']}",
        f"out={bank}",
        "shard_size=6",
        "steps=1",
        "views_per_image=1",
        "interpolations_per_image=0",
        "cache_dir=null",
        "progress=false",
        "-q",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(gensis.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", script, "generate", *args], capture_output=True, text=True, env=env, timeout=300
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 143 and len(lines) == 1, done.stderr
    assert lines[0].startswith("gensis: stopped by SIGTERM after shard 0") and read_index(bank).shards == [0]


def test_generator_records_its_encoder_as_an_absolute_path(world, tmp_path, monkeypatch) -> None:
    from safetensors import safe_open

    monkeypatch.chdir(world["root"])
    gen = gensis.train_generator(
        {
            "model.spec": "tiny",
            "train.batch_size": 6,
            "train.epochs": 1,
            "train.progress": False,
            "data.cache_dir": None,
            "data.path": "images.npz",
            "encoder": "encoder.safetensors",
            "out": str(tmp_path / "gen"),
        }
    ).generator_path
    with safe_open(str(gen), framework="pt") as f:
        assert Path(f.metadata()["encoder"]) == world["enc"].resolve()


def test_eval_generator_takes_the_banks_max_images(world, tmp_path) -> None:
    common = {"data_path": str(world["data"]), "max_images": 6, "cache_dir": None}
    gensis.generate(
        {
            **common,
            "generator": str(world["gen"]),
            "out": str(tmp_path / "b"),
            "views_per_image": 1,
            "interpolations_per_image": 0,
            "steps": 1,
            "progress": False,
        }
    )
    result = gensis.eval_generator({**common, "bank": str(tmp_path / "b"), "encoder": str(world["enc"])})
    # All 6 sources measured (one view each), the same figures generate wrote for that bank.
    assert (result["sources"], result["views"], result["chance"]["images"]) == (6, 6, 6)
    assert result.pop("bank_shards") == {"done": 1, "total": 1}
    assert result == json.loads((tmp_path / "b" / "quality.json").read_text())


def test_unknown_vae_hub_id_offline_fails_at_once(monkeypatch) -> None:
    import socket
    import time

    from gensis.autoencoder.latent import load_vae
    from gensis.errors import CheckpointError

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="unreachable"):
        load_vae("no-such-org/no-such-vae")
    assert time.perf_counter() - t0 < 10


def test_sigterm_in_a_stage_stops_gensis_run_after_it(world, tmp_path) -> None:
    """A signal the embed stage does not act on: the stage ends, then `gensis run` stops (143, one line)."""
    import subprocess
    import sys

    script = (
        "import os, signal, sys\n"
        "import gensis.eval.embed_io as embed_io\n"
        "real = embed_io.run_embed\n"
        "def embed_then_term(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(*a, **k)\n"
        "embed_io.run_embed = embed_then_term\n"
        "from gensis.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = [
        "run",
        f"data.path={world['data']}",
        f"out={tmp_path / 'run'}",
        "preset=digits",
        "data.cache_dir=null",
        "pretrain.model.backbone=resnet10t",
        "pretrain.dino.out_dim=64",
        "pretrain.dino.hidden_dim=64",
        "pretrain.dino.bottleneck_dim=32",
        "pretrain.train.batch_size=6",
        "pretrain.train.epochs=1",
        "pretrain.train.knn_every=0",
        "-q",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(gensis.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert done.returncode == 143 and lines == [
        "gensis: stopped by SIGTERM after stage embed (ran); rerun the same command to continue"
    ], done.stderr
    assert (tmp_path / "run" / "embeddings.safetensors").is_file() and not (tmp_path / "run" / "generator").exists()


def test_encoder_resolution_outside_the_config_range_is_refused(world, capsys, tmp_path) -> None:
    """Encoder metadata is held to the config's own range (data.resolution: 8..1024)."""
    from conftest import _resave

    from gensis.cli import main

    for value in ("4096", "4"):
        bad = _resave(world["enc"], tmp_path / f"enc_{value}.safetensors", resolution=value)
        code = main(
            [
                "embed",
                f"encoder={bad}",
                f"data_path={world['data']}",
                f"out={tmp_path / 'e.npy'}",
                "cache_dir=null",
                "-q",
            ]
        )
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.count("\n") == 0 and "metadata 'resolution' must be an integer in [8, 1024]" in err, (
            err
        )
