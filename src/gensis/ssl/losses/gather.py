"""All-gather helpers for contrastive losses across processes.

Contrastive losses (SimCLR, MoCo v3) use the other ranks' samples as extra negatives. Each
rank keeps only its own rows as anchors, so the positive of local row ``i`` sits at global
column ``rank * B + i``: every rank must therefore hold the same batch size ``B``.

``gather_with_grad`` lets gradients flow back to the rank that produced each row: every
rank holds a copy of every row, so the backward sums the gradients of all copies (an
all-reduce, then each rank keeps its own rows; all backends support it, unlike
reduce-scatter on gloo). With DDP, which averages parameter gradients over ranks, the result
is the gradient of the mean of the per-rank losses, i.e. of the global loss. (A small
autograd Function rather than ``torch.distributed.nn.functional.all_gather``, which recent
PyTorch deprecates.)
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def distributed_active() -> bool:
    """True when torch.distributed is initialized with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialized process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x)
        ctx.rows = x.shape[0]
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) from all ranks in rank order; differentiable."""
    if not distributed_active():
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks, without gradient (e.g. momentum-encoder keys)."""
    if not distributed_active():
        return x.detach()
    x = x.detach().contiguous()
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x)
    return torch.cat(out, dim=0)
