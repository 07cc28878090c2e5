"""Two processes with gloo on the CPU: the same run as one process with the same global batch.
SimCLR, MoCo v3, Gen-DINO, BatchNorm models and resume are in test_distributed_methods.py; the
``gpu`` test at the end checks SyncBatchNorm on two GPUs."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _processes import losses, run_cli
from _synthetic import write_npz

from gensis.ssl.losses.dino_loss import DINOLoss

# A ViT (LayerNorm only) and a head without BatchNorm: nothing depends on the per-process
# batch, so 2 processes must reproduce 1 process up to the order of float sums.
ARGS = [
    "-q",
    "preset=digits",
    "data.cache_dir=null",
    "train.device=cpu",
    "model.backbone=vit_tiny_patch16_224",
    "model.backbone_kwargs.patch_size=4",
    "model.cifar_stem=false",
    "dino.out_dim=64",
    "dino.hidden_dim=64",
    "dino.bottleneck_dim=32",
    "dino.head_batch_norm=false",
    "train.batch_size=32",
    "train.epochs=2",
    "train.log_every=1",
    "train.knn_every=0",
    "train.progress=false",
]


def test_two_processes_follow_the_one_process_trajectory(tmp_path) -> None:
    data = write_npz(tmp_path / "d.npz", 96)
    common = [*ARGS, f"data.path={data}"]
    run_cli("pretrain", *common, f"out={tmp_path / 'one'}")
    run_cli("pretrain", *common, f"out={tmp_path / 'two'}", processes=2)
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, rel=1e-4), (a, b)
    assert (tmp_path / "two" / "exported" / "encoder.safetensors").is_file()
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 6  # written by rank 0 only


def _center_worker(rank: int, world: int, rdv: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rdv}", rank=rank, world_size=world)
    torch.manual_seed(0)
    logits = torch.randn(2 * world, 8)[2 * rank : 2 * rank + 2]  # each rank its own two rows
    loss = DINOLoss(8)
    loss.update_center(logits)
    torch.save(loss.center, f"{out}/center{rank}.pt")
    dist.destroy_process_group()


def test_center_is_identical_on_every_rank_and_equals_the_global_mean(tmp_path) -> None:
    mp.spawn(_center_worker, args=(2, str(tmp_path / "rdv"), str(tmp_path)), nprocs=2, join=True)
    c0, c1 = (torch.load(tmp_path / f"center{r}.pt", weights_only=True) for r in range(2))
    torch.manual_seed(0)
    single = DINOLoss(8, gather_distributed=False)
    single.update_center(torch.randn(4, 8))
    assert torch.equal(c0, c1) and torch.allclose(c0, single.center, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="two NCCL processes need two GPUs")
@pytest.mark.parametrize("method", ["dino", "simclr", "mocov3"])
def test_two_gpus_with_sync_batchnorm_follow_one_gpu(method, tmp_path) -> None:
    """On GPUs BatchNorm is synchronized (the student in DDP, DINO's teacher and MoCo v3's
    momentum network too), so a BatchNorm model (ResNet-10t, BatchNorm heads) on 2 GPUs follows
    the 1-GPU run with no per-process statistics (on the CPU see test_distributed_methods.py)."""
    data = write_npz(tmp_path / "d.npz", 48)
    common = [
        "-q",
        "preset=digits",
        "data.cache_dir=null",
        "train.device=cuda",
        "train.precision=fp32",
        f"method={method}",
        "model.backbone=resnet10t",
        "train.batch_size=16",
        "train.epochs=2",
        "train.log_every=1",
        "train.knn_every=0",
        "train.progress=false",
        "dino.out_dim=32",
        "dino.hidden_dim=32",
        "dino.bottleneck_dim=16",
        "simclr.hidden_dim=64",
        "simclr.out_dim=32",
        "mocov3.hidden_dim=32",
        "mocov3.out_dim=16",
        "mocov3.predictor_hidden_dim=32",
        f"data.path={data}",
    ]
    run_cli("pretrain", *common, f"out={tmp_path / 'one'}")
    run_cli("pretrain", *common, f"out={tmp_path / 'two'}", processes=2)
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, rel=1e-3), (a, b)
