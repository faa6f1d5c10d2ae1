"""``||X||_*`` and its gradient from matrix products only: the ``"iterative"`` method.

For an ``(N, m)`` matrix ``X = U diag(s) V^T`` the polar factor ``P = U V^T`` gives both

    ||X||_* = sum_i s_i = <P, X>          and          d ||X||_* / dX = P,

so one polar factor is the value and the gradient. ``P`` is computed without any
eigendecomposition (no cuSOLVER latency, no host synchronisation, capturable by CUDA graphs
and ``torch.compile``):

1. ``Y = X / ||X||_F`` (the norm accumulated in float64, so no scale under- or overflows);
   then, from the first Gram product ``A = Y Y^T``, ``Y = Y / ||A||_F^{1/2}``, a tighter
   bound (``s_max^2 <= ||A||_F = (sum s_i^4)^{1/2} <= ||Y||_F^2 = 1``). All ``s_i`` of ``Y``
   are now in ``[0, 1]``.
2. Nine steps ``Y <- a_t Y + b_t (Y Y^T) Y + c_t (Y Y^T)^2 Y``, which map each singular
   value through the odd quintic ``p_t(s) = a_t s + b_t s^3 + c_t s^5`` (singular vectors
   unchanged). The ``(a_t, b_t, c_t)`` are minimax for the interval the values are known to
   lie in at that step, starting from ``[1e-4, 1]`` (Amsel et al., "The Polar Express",
   arXiv:2505.16932; derived by ``tools/polar_coefficients.py``, shipped in
   :mod:`w2reg._polar_coefficients`). After the last step every ``s >= 1e-4`` (relative to the
   bound) is 1 to float32 precision: ``Y = P``.
3. The products are taken on the smaller side: ``Y Y^T`` (``N x N``) when ``N <= m``,
   ``Y^T Y`` (``m x m``) otherwise, so a step costs ``2 N^2 m + N^3`` (resp. ``2 N m^2 + m^3``)
   multiply-adds. The iteration runs on ``X`` itself, never on the Gram matrix alone (which
   squares the condition number and diverges in float32).

Precision: the iteration runs in float32 with TF32 off on CUDA for its duration (the flag is
restored afterwards; TF32's 10-bit mantissa would cap the accuracy near 1e-3). Under
``torch.compile`` the flag is left alone: keep ``torch.backends.cuda.matmul.allow_tf32``
False (PyTorch's default) when compiling a step that uses this method. ``<P, X>`` and
everything around it (mean, ``tr S``, the square root) are accumulated in float64.

The tiniest directions: a singular value ``s`` below about ``1e-4`` of the bound used in
step 1 (which is between ``s_max`` and ``min(N, m)^{1/4} s_max``) is not driven all the way to
1. Such a direction gets ``p(s) < 1``, roughly ``4.8e4 s / bound`` (the product of the
``a_t``) for ``s`` far below it: a *damped* gradient ``p(s) < 1`` instead of 1, and a value
contribution ``s p(s)`` instead of ``s`` (an under-estimate of at most ``s`` per direction).
Exactly zero directions stay exactly zero (``p`` is odd). Float32 rounding noise in
(numerically) null directions grows to at most ``p(noise) < 1``, and ``||P||_2`` stays within
float32 rounding of 1 (tests/test_methods.py asserts ``<= 1 + 1e-3`` under identical rows,
``X = 0``, rank 8 and 32 of 256): the gradient stays finite and bounded under any collapse.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from ._polar_coefficients import COEFFICIENTS, LOWER_BOUND
from ._validation import is_compiling

__all__ = ["COEFFICIENTS", "LOWER_BOUND", "iterative_forward", "iterative_polar", "polar_factor"]


@contextlib.contextmanager
def _full_float32(device: torch.device) -> Iterator[None]:
    """TF32 off for CUDA matmuls inside the block (restored after); a no-op elsewhere."""
    if device.type != "cuda" or is_compiling():
        yield
        return
    flags = torch.backends.cuda.matmul
    previous = flags.allow_tf32
    flags.allow_tf32 = False
    try:
        yield
    finally:
        flags.allow_tf32 = previous


def polar_factor(x: Tensor) -> Tensor:
    """The polar factor ``U V^T`` of an ``(N, m)`` matrix, in float32, by matrix products only.

    ``x`` may be of any floating dtype; it is scaled by its Frobenius norm (accumulated in
    float64, so no scale under- or overflows) and iterated in float32. See the module
    docstring for the method and its accuracy.

    Example:
        >>> x = torch.randn(64, 32, dtype=torch.float64)
        >>> p = polar_factor(x)
        >>> torch.allclose((p.double() * x).sum(), torch.linalg.matrix_norm(x, "nuc"))
        True
    """
    n, m = x.shape
    left = n <= m  # iterate with the N x N Gram when it is the smaller one
    frob = torch.linalg.vector_norm(x, dtype=torch.float64)  # no under/overflow of squares
    inv = torch.where(frob > 0, frob.reciprocal(), torch.zeros_like(frob))  # X = 0 -> P = 0
    inv = inv.clamp_max(torch.finfo(x.dtype).max).to(x.dtype)
    y = (x * inv).to(torch.float32)
    with _full_float32(y.device):
        for step, (a, b, c) in enumerate(COEFFICIENTS):
            gram = y @ y.mT if left else y.mT @ y
            if step == 0:
                # s_max^2 <= ||gram||_F <= 1: a tighter upper bound than ||Y||_F = 1
                bound = torch.linalg.vector_norm(gram).clamp_min(torch.finfo(y.dtype).tiny)
                y = y / bound.sqrt()
                gram = gram / bound
            poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # b A + c A^2
            y = torch.addmm(y, poly, y, beta=a) if left else torch.addmm(y, y, poly, beta=a)
    return y


def iterative_forward(x: Tensor, need_polar: bool) -> tuple[Tensor, tuple[Tensor, ...], bool]:
    """``||x||_* = <P, x>`` with ``P`` the float32 polar factor (kept for the gradient).

    The inner product is accumulated in float64.
    """
    p = polar_factor(x)
    return (p * x).sum(dtype=torch.float64), (p,), x.shape[0] <= x.shape[1]


def iterative_polar(x: Tensor, saved: tuple[Tensor, ...], left: bool) -> Tensor:
    """The polar factor computed in the forward (float32)."""
    return saved[0]
