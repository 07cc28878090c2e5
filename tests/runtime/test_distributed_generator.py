"""Stage 2 with two processes (gloo on the CPU): the same generator and view bank as one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _synthetic import random_encoder, write_npz

import gensis
from gensis.bank import ViewBank
from gensis.bank import store as bank_store
from gensis.generator import generate as generate_module
from gensis.generator import make_scheduler, training_loss
from gensis.generator.unet import EmbeddingConditionedUNet, unet_spec

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
# The tiny UNet (GroupNorm, no dropout): nothing depends on the per-process batch.
TRAIN = [
    "-q",
    "model.spec=tiny",
    "train.batch_size=8",
    "train.epochs=2",
    "train.warmup_steps=2",
    "train.log_every=1",
    "train.progress=false",
    "train.ema_decay=0.9",
    "data.cache_dir=null",
]
GENERATE = [
    "-q",
    "views_per_image=2",
    "interpolations_per_image=1",
    "shard_size=3",
    "steps=2",
    "batch_size=4",
    "progress=false",
    "cache_dir=null",
    "quality_sources=4",
]


def _gensis(args: list[str], processes: int = 1) -> None:
    if processes == 1:
        cmd = [sys.executable, "-m", "gensis.cli", *args]
    else:
        with socket.socket() as sock:  # a free port for the rendezvous (port 0 hangs)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={processes}",
            f"--master_port={port}",
            "-m",
            "gensis.cli",
            *args,
        ]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_training_loss_rows_take_their_share_of_the_global_draws() -> None:
    torch.manual_seed(0)
    model, sched = EmbeddingConditionedUNet(unet_spec("tiny", p_uncond=0.5)), make_scheduler("ddpm")
    x0, emb = torch.rand(8, 3, 8, 8) * 2 - 1, torch.randn(8, 16)
    full = training_loss(model, sched, x0, emb, torch.Generator().manual_seed(1))
    halves = [
        training_loss(model, sched, x0, emb, torch.Generator().manual_seed(1), rows=slice(i, i + 4)) for i in (0, 4)
    ]
    assert torch.allclose((halves[0] + halves[1]) / 2, full, rtol=1e-5)
    own = training_loss(model, sched, x0[4:], emb[4:], torch.Generator().manual_seed(1))
    assert not torch.allclose(own, halves[1])  # rank 1 drawing for its rows alone would differ


def _losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny generator trained with one and with two processes."""
    root = tmp_path_factory.mktemp("distgen")
    enc = random_encoder(root / "encoder.safetensors")
    data = write_npz(root / "images.npz", 24, size=8)
    common = ["train-generator", *TRAIN, f"encoder={enc}", f"data.path={data}"]
    _gensis([*common, f"out={root / 'one'}"])
    _gensis([*common, f"out={root / 'two'}"], processes=2)
    return root, data


def test_two_processes_train_the_one_process_generator(trained) -> None:
    root, _ = trained
    a, b = _losses(root / "one"), _losses(root / "two")
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, rel=1e-4), (a, b)
    assert len((root / "two" / "metrics.jsonl").read_text().splitlines()) == 6  # written by rank 0 only
    assert (root / "two" / "exported" / "generator.safetensors").is_file()


def _entries(bank: ViewBank) -> list[dict[str, torch.Tensor]]:
    return [bank.entries(i) for i in range(bank.index.n_sources)]


def test_two_processes_generate_the_one_process_bank(trained, tmp_path) -> None:
    root, data = trained
    common = ["generate", *GENERATE, f"generator={root / 'one'}", f"data_path={data}"]
    _gensis([*common, f"out={tmp_path / 'one'}"])
    _gensis([*common, f"out={tmp_path / 'two'}"], processes=2)
    index = json.loads((tmp_path / "two" / "index.json").read_text())
    assert index["shards"] == list(range(8))  # 24 sources in shards of 3, merged by rank 0
    two = ViewBank(tmp_path / "two")
    sources = torch.cat([two._read_shard(s)["source"] for s in range(8)])
    partners = torch.cat([two._read_shard(s)["partner"] for s in range(8)])
    for i in range(24):  # each source's views written exactly once across all shards
        assert int(((sources == i) & (partners < 0)).sum()) == 2
        assert int(((sources == i) & (partners >= 0)).sum()) == 1
    one = ViewBank(tmp_path / "one")
    assert one.index == two.index
    for a, b in zip(_entries(one), _entries(two), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "two" / "quality.json").is_file()


def test_shard_file_outside_the_index_is_adopted_not_regenerated(trained, tmp_path, monkeypatch) -> None:
    root, data = trained
    settings = {
        "generator": str(root / "one"),
        "data_path": str(data),
        "out": str(tmp_path / "bank"),
        "views_per_image": 1,
        "interpolations_per_image": 0,
        "shard_size": 12,
        "steps": 1,
        "progress": False,
        "cache_dir": None,
        "quality_sources": 4,
        "shards": [0],
    }
    gensis.generate(settings)
    index_file = tmp_path / "bank" / "index.json"
    index = json.loads(index_file.read_text())
    shard_file = bank_store.shard_path(tmp_path / "bank", 0)
    before = shard_file.read_bytes()
    index_file.write_text(json.dumps({**index, "shards": []}))  # as a 2-process run killed before its merge
    bank_store.shard_path(tmp_path / "bank", 1).write_bytes(b"not a shard")  # a stray file is not adopted
    made = []
    real = generate_module._generate_shard

    def record(cfg, synth, emb, sources, shard, *rest, **kw):
        made.append(shard)
        return real(cfg, synth, emb, sources, shard, *rest, **kw)

    monkeypatch.setattr(generate_module, "_generate_shard", record)
    result = gensis.generate({**settings, "shards": None})
    assert made == [1] and result.n_images == 12  # shard 0 kept, shard 1 (unreadable) regenerated
    assert json.loads(index_file.read_text())["shards"] == [0, 1]
    assert shard_file.read_bytes() == before
