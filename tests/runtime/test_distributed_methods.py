"""SimCLR, MoCo v3 and Gen-DINO with two processes (torchrun, gloo on the CPU): the 1-process
trajectory with the same global batch, also across a stop and ``--resume`` under 2 processes.

BatchNorm. These runs use a BatchNorm backbone (ResNet-10t) and BatchNorm heads (SimCLR's and
MoCo v3's always; DINO's with ``dino.head_batch_norm``, on in the digits preset). On GPUs gensis
converts them to SyncBatchNorm, so N processes normalize over the global batch as one process
does; PyTorch's SyncBatchNorm has no CPU path, so that is checked by the ``gpu`` test in
test_distributed.py. On the CPU each process normalizes over its own share of the batch, so
here the 2-process run is compared with a 1-process run whose every training-mode BatchNorm
normalizes each half of the batch by that half's own statistics (``_grouped_bn.py``; rank r
keeps the r-th contiguous half). Everything else must be as in one process: which images and
crops each rank keeps, the all-gathered negatives and their gradients, the averaged
gradients, the DINO center, the momentum and teacher updates, the schedules, the resume. A
plain 1-process run differs (checked once below): a CPU user with a BatchNorm model does not
get the 1-process losses, and no test should pretend otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _grouped_bn import grouped_batch_norm
from _processes import run_cli
from _synthetic import write_bank, write_npz

import gensis
from gensis.runtime.checkpoint import load_state

# 48 images, global batch 16 (8 per process): 3 steps per epoch, 6 steps in all.
SETTINGS = {
    "preset": "digits",
    "data.cache_dir": None,
    "train.device": "cpu",
    "model.backbone": "resnet10t",
    "train.batch_size": 16,
    "train.epochs": 2,
    "train.log_every": 1,
    "train.knn_every": 0,
    "train.progress": False,
    "simclr.hidden_dim": 64,
    "simclr.out_dim": 32,
    "mocov3.hidden_dim": 32,
    "mocov3.out_dim": 16,
    "mocov3.predictor_hidden_dim": 32,
    "dino.out_dim": 32,
    "dino.hidden_dim": 32,
    "dino.bottleneck_dim": 16,
}
PART = {"simclr": "loss_ntxent", "mocov3": "loss_mocov3"}


def _two_processes(settings: dict, *flags: str) -> None:
    """``torchrun --nproc_per_node=2 -m gensis.cli pretrain`` with ``settings``."""
    args = [
        f"{k}={'null' if v is None else str(v).lower() if isinstance(v, bool) else v}"
        for k, v in {**SETTINGS, **settings}.items()
    ]
    run_cli("pretrain", "-q", *flags, *args, processes=2)


def _one_process(settings: dict, bn_groups: int = 2) -> None:
    """The 1-process run in this process, with per-half BatchNorm statistics (as 2 CPU processes)."""
    if bn_groups == 1:
        gensis.pretrain({**SETTINGS, **settings})
        return
    with grouped_batch_norm(bn_groups) as calls:
        gensis.pretrain({**SETTINGS, **settings})
    assert calls["grouped"] > 0


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


def _column(records: list[dict], key: str) -> list[float]:
    return [r[key] for r in records]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_npz(tmp_path_factory.mktemp("dist-methods") / "train.npz", 48)


def test_simclr_two_processes_follow_the_one_process_trajectory(data, tmp_path) -> None:
    """NT-Xent over the all-gathered projections of both ranks, with gradients through the
    gather: each rank's loss is the global batch's, and so are the averaged gradients."""
    run = {"method": "simclr", "data.path": str(data)}
    _two_processes({**run, "out": tmp_path / "two"})
    _one_process({**run, "out": str(tmp_path / "one")})
    a, b = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 7))  # rank 0 alone writes
    for key in ("loss", "loss_ntxent"):
        assert _column(a, key) == pytest.approx(_column(b, key), rel=1e-4), key
    assert _column(a, "lr") == _column(b, "lr")
    # Not a vacuous comparison: a plain 1-process run (BatchNorm over all 16 rows) differs.
    _one_process({**run, "out": str(tmp_path / "plain")}, bn_groups=1)
    assert _column(_records(tmp_path / "plain"), "loss")[1:] != pytest.approx(_column(b, "loss")[1:], rel=1e-3)


def test_mocov3_two_processes_stopped_and_resumed_follow_the_one_process_trajectory(data, tmp_path) -> None:
    """MoCo v3 under 2 processes, stopped inside epoch 2 (``train.max_steps=4``) and resumed
    under 2 processes: the keys of both ranks are all-gathered, the momentum encoder, SGD's
    momentum and the step come back from the checkpoint on every rank."""
    run = {"method": "mocov3", "data.path": str(data)}
    cut = tmp_path / "two"
    _two_processes({**run, "out": cut, "train.max_steps": 4})
    assert load_state(cut / "checkpoints" / "last.pt")["step"] == 4
    _two_processes({**run, "out": cut}, "--resume")
    _one_process({**run, "out": str(tmp_path / "one")})
    a, b = _records(tmp_path / "one"), _records(cut)
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 7))  # none logged twice
    # MoCo v3 follows within ~1e-7 here; a momentum encoder not restored on resume is off by ~5e-4.
    for key in ("loss", "loss_mocov3"):
        assert _column(a, key)[:4] == pytest.approx(_column(b, key)[:4], rel=1e-5), f"{key} before the stop"
        assert _column(a, key)[4:] == pytest.approx(_column(b, key)[4:], rel=1e-5), f"{key} after --resume"
    sa, sb = (load_state(p / "checkpoints" / "last.pt") for p in (tmp_path / "one", cut))
    assert sa["step"] == sb["step"] == 6
    for net in ("student", "momentum"):  # parameters; BatchNorm running statistics are rank 0's
        params = [k for k in sa[net] if "running_" not in k and "num_batches" not in k]
        assert all(torch.allclose(sa[net][k], sb[net][k], rtol=1e-3, atol=1e-5) for k in params), net


def test_gen_dino_two_processes_follow_the_one_process_trajectory(data, tmp_path) -> None:
    """Stage 3 from a view bank: every rank draws the global batch's generated pairs and
    interpolations and keeps its share; the DINO center is all-reduced over the ranks."""
    write_bank(tmp_path / "bank", 48, 16)
    run = {"data.path": str(data), "gen.bank": str(tmp_path / "bank"), "gen.lambda_dis": 0.5}
    _two_processes({**run, "out": tmp_path / "two"})
    _one_process({**run, "out": str(tmp_path / "one")})
    a, b = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 7))
    for key in ("loss", "loss_dino", "loss_dis"):
        assert _column(a, key) == pytest.approx(_column(b, key), rel=1e-4), key
    assert _column(a, "generated_fraction") == _column(b, "generated_fraction")
    assert 0 < sum(_column(a, "generated_fraction")) < 6  # real and generated pairs both occur
