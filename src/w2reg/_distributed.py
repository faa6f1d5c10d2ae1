"""Gathering a batch across processes, keeping gradients.

Semantics are those of lightly's and solo-learn's ``gather``: every rank gets the
concatenation of all ranks' rows (in rank order); in backward the incoming gradients are
summed over ranks and each rank keeps the slice of its own rows. Since every rank computes
the same loss on the global batch, DDP's averaging of parameter gradients then yields exactly
the gradient of the single-process computation on the concatenated batch.

Every rank must hold the same number of rows. The counts are compared at every gather of
CPU tensors (gloo: no device to synchronise with, so an uneven last batch is reported with
the counts of all ranks instead of crashing inside gloo). On an accelerator, comparing them
needs the counts on the host (a device synchronisation), so it is done on the first gather
of each process group only -- which catches a wrong setup at the first step -- and on every
call under :func:`w2reg.set_strict_checks` ``(True)``; a later mismatch there surfaces as
the collective's own error, or a hang with NCCL: use ``drop_last=True`` with
``gather_distributed=True``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ._validation import strict_checks

#: id() of the process groups whose row counts were compared (the first gather of each).
_CHECKED_GROUPS: set[int] = set()


def is_distributed() -> bool:
    """True when a default process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """The default process group's size (1 without one)."""
    return dist.get_world_size() if is_distributed() else 1


def sizes_checked() -> bool:
    """Whether the default process group's row counts have been compared already."""
    return is_distributed() and id(dist.group.WORLD) in _CHECKED_GROUPS


def _check_row_counts(x: Tensor, world: int) -> None:
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], dtype=torch.long, device=x.device))
    counts = [int(s) for s in torch.cat(sizes).tolist()]  # one transfer, one sync
    if len(set(counts)) != 1:
        raise ValueError(
            "gather_distributed=True needs the same number of rows on every rank, got "
            f"{counts} (rank {dist.get_rank()} has shape {tuple(x.shape)}); use "
            "drop_last=True in the DataLoader"
        )


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        world = dist.get_world_size()
        group = id(dist.group.WORLD)
        if strict_checks() or group not in _CHECKED_GROUPS or x.device.type == "cpu":
            _check_row_counts(x, world)
            _CHECKED_GROUPS.add(group)
        out = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(out, x.contiguous())
        ctx.rank = dist.get_rank()
        ctx.rows = x.shape[0]
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
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
    rows: Tensor = _GatherWithGrad.apply(x)
    return rows
