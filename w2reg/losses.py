"""``nn.Module`` wrappers of the functional losses (no parameters, no buffers)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import functional as Fw
from ._methods import check_method
from .schedules import Schedule, WeightLike, as_schedule


class W2Uniformity(nn.Module):
    """Weighted W2 uniformity regularizer over one or more views.

    ``forward(*views)`` concatenates the ``(B_i, m)`` views along the batch dimension and
    returns ``weight * W2`` (see :func:`w2reg.functional.w2_uniformity`). The weight is a
    number or a :class:`~w2reg.schedules.Schedule`; move a schedule along with
    :meth:`set_epoch`. The last unweighted value and the weight used are kept in
    :attr:`last_value` and :attr:`last_weight` for logging.

    The module has no parameters and no buffers: adding it to a model leaves the model's
    ``state_dict`` unchanged. Save ``module.schedule.state_dict()`` to resume a schedule.

    :attr:`last_value` keeps at least float32 precision (float64 for float64 views) whatever
    the views' dtype, so that a W2 logged under bf16 mixed precision is not rounded to bf16's
    three significant digits; the returned term has the dtype of the views.

    Args:
        weight: constant weight or schedule (paper: MoCo v2 1.0, BYOL 0.2, BarlowTwins
            ``LinearDecay(30, 0)``, Zero-CL 30).
        normalize: L2-normalise rows first (the paper does).
        gather_distributed: compute on the global batch of all ranks.
        method: how the nuclear norm is computed, see :func:`w2reg.w2_uniformity`
            (``"auto"``, ``"exact"``, ``"iterative"``, ``"eigh32"``).

    Example:
        >>> reg = W2Uniformity(LinearDecay(30.0, 0.0, epochs=500))
        >>> reg.set_epoch(0)
        >>> loss = criterion(z0, z1) + reg(z0, z1)
    """

    def __init__(
        self,
        weight: WeightLike = 1.0,
        *,
        normalize: bool = True,
        gather_distributed: bool = False,
        method: str = "auto",
    ) -> None:
        super().__init__()
        self.schedule: Schedule = as_schedule(weight)
        self.normalize = normalize
        self.gather_distributed = gather_distributed
        self.method = check_method(method)
        self.last_value: Tensor | None = None
        self.last_weight: float | None = None

    def set_epoch(self, epoch: int, total_epochs: int | None = None) -> None:
        """Move the weight schedule to ``epoch`` (0-based) of ``total_epochs``."""
        self.schedule.set_epoch(epoch, total_epochs)

    @property
    def weight(self) -> float:
        """The weight at the schedule's current epoch."""
        return self.schedule.value

    def forward(self, *views: Tensor) -> Tensor:
        if not views:
            raise ValueError("W2Uniformity needs at least one view of shape (B, m), got none")
        widths = {v.shape[-1] if isinstance(v, Tensor) and v.dim() == 2 else None for v in views}
        if len(widths) != 1 or None in widths:
            shapes = [tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for v in views]
            raise ValueError(f"views must all be 2-D (B_i, m) with one m, got shapes {shapes}")
        z = views[0] if len(views) == 1 else torch.cat(views, dim=0)
        value = Fw._w2_float64(
            z,
            normalize=self.normalize,
            squared=False,
            gather_distributed=self.gather_distributed,
            method=self.method,
        )
        weight = self.weight
        self.last_value = value.detach().to(torch.promote_types(z.dtype, torch.float32))
        self.last_weight = weight
        return (weight * value).to(z.dtype)

    def extra_repr(self) -> str:
        return f"weight={self.schedule!r}, normalize={self.normalize}, method={self.method!r}"


class AlignUniformLoss(nn.Module):
    """Wang & Isola's alignment + uniformity loss, see :func:`w2reg.align_uniform_loss`.

    ``forward(z1, z2)`` takes the ``(N, m)`` projections of two views.
    """

    def __init__(self, lam: float = 1.0, t: float = 2.0, alpha: float = 2.0) -> None:
        super().__init__()
        self.lam, self.t, self.alpha = lam, t, alpha

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        return Fw.align_uniform_loss(z1, z2, lam=self.lam, t=self.t, alpha=self.alpha)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, t={self.t}, alpha={self.alpha}"
