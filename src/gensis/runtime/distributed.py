"""Multi-process training with PyTorch's own engine (``torchrun``, ``accelerate launch``).

The launcher sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; gensis then joins the process
group (NCCL on GPUs, gloo on the CPU), puts each process on its local GPU and wraps the
student in DDP. Every rank draws the *global* batch and its augmentations from the same
``(seed, step)`` stream and keeps its own contiguous slice, so N processes see exactly the
images and crops of a 1-process run with the same global batch; only rank 0 writes the run
folder.

    torchrun --nproc_per_node=8 -m gensis.cli pretrain preset=cifar10 train.batch_size=512 ...
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$HOST:29500 \\
        -m gensis.cli pretrain ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.distributed as dist

from gensis.errors import ConfigError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_slice(self, global_batch: int) -> slice:
        """This rank's contiguous share of a global batch."""
        per = global_batch // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)


def from_environment() -> Dist:
    """The launcher's ranks, or a single process when none is set."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(info: Dist, device: torch.device) -> torch.device:
    """Join the process group (once) and return this process's device."""
    if not info.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def check_batch(info: Dist, batch_size: int) -> None:
    if batch_size % info.world_size:
        raise ConfigError(
            f"train.batch_size={batch_size} is the global batch and must be divisible by "
            f"the {info.world_size} processes"
        )


def barrier(info: Dist) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_finite(loss: torch.Tensor, info: Dist) -> bool:
    """Whether the loss is finite on every rank (so that all ranks stop together)."""
    ok = torch.isfinite(loss.detach()).float()
    if info.enabled:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def mean(values: dict[str, torch.Tensor], info: Dist) -> dict[str, float]:
    """Scalars averaged over ranks (one all-reduce), as Python floats."""
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()])
    if info.enabled:
        dist.all_reduce(stacked)
        stacked /= info.world_size
    return dict(zip(values, stacked.tolist(), strict=True))


def any_rank(flag: bool, info: Dist) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a signal arrived)."""
    if not info.enabled:
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors only
    t = torch.tensor(float(flag), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast(tensor: torch.Tensor | None, info: Dist) -> torch.Tensor:
    """Rank 0's tensor on every rank (the others pass None): computed once, bit-identical everywhere.

    Other ranks get it on the communication device (their GPU with NCCL, else the CPU).
    """
    if not info.enabled:
        return cast(torch.Tensor, tensor)  # one process: rank 0's own
    # (shape, dtype): None until rank 0's broadcast fills it in on the other ranks
    meta: list[Any] = [(tuple(tensor.shape), tensor.dtype) if info.is_main and tensor is not None else None]
    dist.broadcast_object_list(meta, src=0)
    shape, dtype = meta[0]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    # rank 0 passed a tensor: its meta unpacked above
    buf = cast(torch.Tensor, tensor).to(device) if info.is_main else torch.empty(shape, dtype=dtype, device=device)
    dist.broadcast(buf, src=0)
    return cast(torch.Tensor, tensor) if info.is_main else buf


def broadcast_object(obj, info: Dist):
    """Rank 0's picklable ``obj`` on every rank (small things: an index, an error flag)."""
    if not info.enabled:
        return obj
    box = [obj if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap_ddp(module: torch.nn.Module, info: Dist, device: torch.device) -> torch.nn.Module:
    """DDP around ``module``; BatchNorm becomes SyncBatchNorm on GPUs (PyTorch has no CPU SyncBN)."""
    if not info.enabled:
        return module
    if device.type == "cuda":
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module
