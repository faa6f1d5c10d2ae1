"""``tr((X^T X)^{1/2})``, the nuclear norm of X, in float64: the ``"exact"`` method.

The float64 reference of the three methods (:mod:`w2reg._methods`; ``"iterative"`` and
``"eigh32"`` compute the same trace in float32 arithmetic, within their accuracy target).
With ``X = (Z - mu) / sqrt(N)`` the covariance is ``S = X^T X`` and ``tr(S^{1/2}) =
||X||_*``, the sum of the singular values of ``X``. Only that trace is computed, and on the
smaller side: the eigenvalues of the ``N x N`` Gram ``X X^T`` when ``N < m``, of the
``m x m`` covariance ``X^T X`` otherwise (both share their non-zero eigenvalues).

The gradient is the closed form, not autograd through ``eigh`` (whose backward has
``1 / (l_i - l_j)`` factors that blow up at repeated eigenvalues, i.e. at any collapse):

    d ||X||_* / dX = U V^T = X (X^T X)^{-1/2} = (X X^T)^{-1/2} X

(equivalently, d tr(S^{1/2}) / dS = S^{-1/2} / 2). Eigenvalues are floored *relative* to the
largest one before the inverse square root, so directions with (numerically) zero spread get
a vanishing, finite gradient instead of an infinite one. No ``eps * I`` is added and nothing
is taken ``abs()`` of: the forward value is exact up to float64 rounding.

Interface shared by the methods (:mod:`w2reg._methods`): ``forward(x, need_polar)`` returns
the value, the tensors the gradient needs, and whether the Gram is the ``N x N`` one;
``polar(x, saved, left)`` returns the gradient ``d ||X||_* / dX``. ``x`` may be float32 (the
work dtype of float32 embeddings); this method casts it to float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Eigenvalues of the Gram/covariance below ``RELATIVE_EIGEN_FLOOR * max eigenvalue`` are
#: treated as that floor in the backward (singular values below ``1e-6 * s_max``).
RELATIVE_EIGEN_FLOOR = 1e-12


def gram(x: Tensor) -> tuple[Tensor, bool]:
    """The smaller Gram matrix of ``x`` and whether it is ``x x^T`` (``N < m``)."""
    n, m = x.shape
    if n < m:
        return x @ x.mT, True
    return x.mT @ x, False


def exact_forward(x: Tensor, need_polar: bool) -> tuple[Tensor, tuple[Tensor, ...], bool]:
    """``||x||_*`` from the float64 eigenvalues of the smaller Gram matrix."""
    g, left = gram(x.to(torch.float64))
    if not need_polar:
        return torch.linalg.eigvalsh(g).clamp_min(0).sqrt().sum(), (), left
    evals, evecs = torch.linalg.eigh(g)
    evals = evals.clamp_min(0)
    return evals.sqrt().sum(), (evals, evecs), left


def exact_polar(x: Tensor, saved: tuple[Tensor, ...], left: bool) -> Tensor:
    """``U V^T`` as ``(X X^T)^{-1/2} X`` (or ``X (X^T X)^{-1/2}``), eigenvalues floored."""
    evals, evecs = saved
    floor = (evals.max() * RELATIVE_EIGEN_FLOOR).clamp_min(torch.finfo(evals.dtype).tiny)
    inv_sqrt = evals.clamp_min(floor).rsqrt()
    # W diag(l^{-1/2}) W^T, the (floored) inverse square root of the Gram matrix.
    inv_root = (evecs * inv_sqrt) @ evecs.mT
    x = x.to(torch.float64)
    return inv_root @ x if left else x @ inv_root
