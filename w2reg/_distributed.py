"""Gathering a batch across processes, keeping gradients.

Semantics are those of lightly's and solo-learn's ``gather``: every rank gets the
concatenation of all ranks' rows (in rank order); in backward the incoming gradients are
summed over ranks and each rank keeps the slice of its own rows. Since every rank computes
the same loss on the global batch, DDP's averaging of parameter gradients then yields exactly
the gradient of the single-process computation on the concatenated batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a default process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        world = dist.get_world_size()
        sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([x.shape[0]], dtype=torch.long, device=x.device))
        counts = [int(s.item()) for s in sizes]
        if len(set(counts)) != 1:
            raise ValueError(
                "gather_distributed=True needs the same number of rows on every rank, got "
                f"{counts} (rank {dist.get_rank()} has shape {tuple(x.shape)})"
            )
        out = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(out, x.contiguous())
        ctx.rank = dist.get_rank()
        ctx.rows = x.shape[0]
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows]


def gather(x: Tensor) -> Tensor:
    """All-gather the rows of ``x`` over the default process group, with gradients.

    A no-op (returns ``x``) when no process group with more than one rank is initialised.
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)
