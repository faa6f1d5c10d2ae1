"""The W2 computation as two autograd functions with hand-written backwards.

Written out so that forward + backward take a handful of passes over the ``(N, m)`` data
instead of the two dozen small kernels plain autograd records (which cost as much as a
float32 eigensolver on a CPU, and a launch each on a GPU).

Precision: the rows are kept in the *work dtype*, float64 for float64 embeddings and
float32 otherwise (bf16/fp16 are widened). Every reduction that enters the value -- row
norms, the mean ``mu``, ``tr S``, ``||X||_*`` -- is accumulated in float64, and the final
assembly (``|mu|^2 + 1 + tr S - 2 ||X||_* / sqrt(m)``, the square root) is float64. Storing
the normalised, centred rows in float32 perturbs W2 by about 1e-9 relative (rounding of
unit-scale entries); the heavy products run in the method's own precision (float64 for
``"exact"``).

``unit_rows(z)``: rows of unit norm. Backward: ``g_z = (g - y (y . g)) / ||z||`` per row. A
zero row stays zero and passes its gradient through unchanged (as if its norm were 1):
finite and defined.

``w2_squared(x, method)``: with ``mu`` the row mean, ``Xc = x - mu`` and
``X = Xc / sqrt(N)``,

    W2^2 = |mu|^2 + 1 + ||X||_F^2 - (2 / sqrt(m)) ||X||_*

and, with ``P = d||X||_*/dX`` the polar factor (from the method) and ``P_bar`` its row mean,

    d W2^2 / dx = 2 mu / N + (2 / sqrt(N)) (X - (P - P_bar) / sqrt(m)).

``P`` is scale-invariant, so the method runs on ``Xc`` and ``1/sqrt(N)`` enters scalars only.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ._methods import IMPLEMENTATIONS


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 embeddings, float32 for every narrower float dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Autocast disabled for ``device``; nothing to disable where it has no autocast (meta).

    The core's losses compute in :func:`work_dtype` inside this block, so an enclosing
    ``torch.autocast`` region does not narrow their products to bf16/fp16.
    """
    if device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


class _UnitRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: Tensor) -> Tensor:
        if z.dtype == torch.float64:
            # float64 squares can under/overflow: divide by each row's largest entry first
            scale = z.abs().amax(dim=1, keepdim=True)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            norm = torch.linalg.vector_norm(z / scale, dim=1, keepdim=True).mul_(scale)
        else:  # squares of float32/16 entries cannot under- or overflow float64
            norm = torch.linalg.vector_norm(z, dim=1, keepdim=True, dtype=torch.float64)
        dtype = work_dtype(z.dtype)
        norm = torch.where(norm > 0, norm, torch.ones_like(norm)).to(dtype)
        y = z.to(dtype) / norm
        ctx.save_for_backward(y, norm)
        ctx.in_dtype = z.dtype
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        y, norm = ctx.saved_tensors
        radial = (y * grad).sum(dim=1, keepdim=True)
        return torch.addcmul(grad, y, radial, value=-1.0).div_(norm).to(ctx.in_dtype)


def unit_rows(z: Tensor) -> Tensor:
    """Rows of unit norm in the work dtype, for any row scale; zero rows stay zero."""
    rows: Tensor = _UnitRows.apply(z)
    return rows


class _W2Squared(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, method: str) -> Tensor:
        n, m = x.shape
        value_of, _ = IMPLEMENTATIONS[method]
        mu = x.mean(dim=0, dtype=torch.float64)
        xc = x - mu.to(x.dtype)
        frob_sq = torch.linalg.vector_norm(xc, dtype=torch.float64).square() / n
        nuc, saved, left = value_of(xc, ctx.needs_input_grad[0])
        w2_sq: Tensor = mu.dot(mu) + 1.0 + frob_sq - (2.0 / math.sqrt(m * n)) * nuc
        ctx.save_for_backward(xc, mu, *saved)
        ctx.method, ctx.left = method, left
        return w2_sq

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        xc, mu, *saved = ctx.saved_tensors
        n, m = xc.shape
        _, polar_of = IMPLEMENTATIONS[ctx.method]
        p = polar_of(xc, tuple(saved), ctx.left).to(xc.dtype)
        # (2/N) (Xc - c (P - P_bar) + mu),  c = sqrt(N/m)
        c = math.sqrt(n / m)
        row = p.mean(dim=0, dtype=torch.float64).mul_(c).add_(mu).to(xc.dtype)
        out = torch.add(xc, p, alpha=-c).add_(row)
        return out.mul_((grad * (2.0 / n)).to(xc.dtype)), None


def w2_squared(x: Tensor, method: str) -> Tensor:
    """``W2^2`` (float64 scalar, not clamped) of the rows ``x`` by a resolved ``method``."""
    value: Tensor = _W2Squared.apply(x, method)
    return value
