"""tr((X^T X)^{1/2}), the nuclear norm of X, with a closed-form, collapse-safe backward.

This is the one piece of linear algebra the W2 uniformity loss needs. With
``X = (Z - mu) / sqrt(N)`` the covariance is ``S = X^T X`` and ``tr(S^{1/2}) = ||X||_*``,
the sum of the singular values of ``X``. Only that trace is computed, and on the smaller
side: the eigenvalues of the ``N x N`` Gram ``X X^T`` when ``N < m``, of the ``m x m``
covariance ``X^T X`` otherwise (both share their non-zero eigenvalues).

The backward is the closed form, not autograd through ``eigh`` (whose backward has
``1 / (l_i - l_j)`` factors that blow up at repeated eigenvalues, i.e. at any collapse):

    d ||X||_* / dX = U V^T = X (X^T X)^{-1/2} = (X X^T)^{-1/2} X

(equivalently, d tr(S^{1/2}) / dS = S^{-1/2} / 2). Eigenvalues are floored *relative* to the
largest one before the inverse square root, so directions with (numerically) zero spread get
a vanishing, finite gradient instead of an infinite one. No ``eps * I`` is added and nothing
is taken ``abs()`` of: the forward value is exact up to float64 rounding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

#: Eigenvalues of the Gram/covariance below ``RELATIVE_EIGEN_FLOOR * max eigenvalue`` are
#: treated as that floor in the backward (singular values below ``1e-6 * s_max``).
RELATIVE_EIGEN_FLOOR = 1e-12


def _gram(x: Tensor) -> tuple[Tensor, bool]:
    n, m = x.shape
    if n < m:
        return x @ x.transpose(0, 1), True
    return x.transpose(0, 1) @ x, False


class _TraceSqrt(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        gram, left = _gram(x)
        if not ctx.needs_input_grad[0]:
            evals = torch.linalg.eigvalsh(gram)
            return evals.clamp_min(0).sqrt().sum()
        evals, evecs = torch.linalg.eigh(gram)
        evals = evals.clamp_min(0)
        ctx.save_for_backward(x, evals, evecs)
        ctx.left = left
        return evals.sqrt().sum()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        x, evals, evecs = ctx.saved_tensors
        floor = (evals.max() * RELATIVE_EIGEN_FLOOR).clamp_min(torch.finfo(evals.dtype).tiny)
        inv_sqrt = evals.clamp_min(floor).rsqrt()
        # W diag(l^{-1/2}) W^T, the (floored) inverse square root of the Gram matrix.
        inv_root = (evecs * inv_sqrt) @ evecs.transpose(0, 1)
        g = inv_root @ x if ctx.left else x @ inv_root
        return grad * g


def trace_sqrt_gram(x: Tensor) -> Tensor:
    """``tr((X^T X)^{1/2})`` of an ``(N, m)`` matrix (its nuclear norm), see module docstring."""
    return _TraceSqrt.apply(x)
