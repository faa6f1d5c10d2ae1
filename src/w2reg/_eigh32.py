"""``||X||_*`` from a float32 eigendecomposition, checked, with a float64 fallback: ``"eigh32"``.

The CPU's fast path: a float32 eigendecomposition instead of the exact method's float64 one
(the timings: docs/speed.md). This method:

1. eigendecomposes the Gram matrix on the smaller side (``X X^T`` when ``N < m``, else
   ``X^T X``) in **float32**: eigenvectors ``w_i``;
2. recomputes each singular value as a Rayleigh quotient, ``s_i = ||X^T w_i|| / ||w_i||``
   (resp. ``||X w_i||``; the product in float32, the norms accumulated in float64), which is
   second-order accurate in the eigenvector's error (the float32 eigenvalues themselves are
   only accurate to ``eps_32 s_max^2``);
3. trusts the result only if float32 can resolve every direction that matters: no
   ``s_i`` lies in the band ``(NULL_LEVEL, RESOLVED_LEVEL) * s_max = (1e-5, 0.02) * s_max``.
   Above ``0.02 s_max`` float32 eigenvectors are accurate (error about
   ``eps_32 (s_max / s_i)^2 <= 1.5e-4``, measured <= 7e-5 on the gradient); below ``1e-5 s_max``
   a direction is null to float32 (its value is kept, its gradient is damped, below). When
   some ``s_i`` lies in the band (a decaying spectrum: power laws, ``N ~ m``, partial
   collapse), the float64 eigendecomposition of the exact method is computed instead and
   used for value and gradient -- the result is then the exact method's.

Gradient: ``P = sum_i (X w_i) w_i^T / max(s_i, floor)`` (resp. transposed), the polar factor
with a relative floor: ``floor = RESOLVED_LEVEL * s_max`` on the float32 path, so a null
direction (``s_i <= 1e-5 s_max``) gets a damped gradient of at most ``5e-4`` instead of 1;
on the fallback the exact method's floor (``1e-6 s_max``).

Measured (tests/test_methods.py, benchmarks/results/bench_w2_cpu.txt): trusted cases give W2
within 2e-8 and polar factors within 7e-5 (1.5e-6 on Gaussian embeddings) of the float64
oracle; where float32 would not have been accurate (``s_i`` in the band) the projected
gradient error of an unchecked float32 method reaches 1e-2 to 8e-1 (spectra ~ 1/i, 1/i^2),
which is why the check exists. The band test reads the singular values on
the host, which is free on a CPU but a device synchronisation on an accelerator, and is not
``torch.compile``-able: ``"auto"`` picks this method only for eager CPU tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._trace_sqrt import RELATIVE_EIGEN_FLOOR
from ._validation import has_data

#: Directions with s_i above RESOLVED_LEVEL * s_max are resolved by a float32 eigensolver.
RESOLVED_LEVEL = 0.02
#: Directions with s_i below NULL_LEVEL * s_max are numerically null for float32.
NULL_LEVEL = 1e-5

__all__ = ["NULL_LEVEL", "RESOLVED_LEVEL", "eigh32_forward", "eigh32_polar"]


def _factors(x: Tensor, left: bool, use_float32: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Eigenvectors ``w`` (columns), ``y = X^T w`` or ``X w``, and ``s_i = ||y_i|| / ||w_i||``.

    ``w`` and ``y`` are float32 on the float32 path (``s`` accumulated in float64), float64
    on the fallback, where ``s`` are the square roots of the float64 eigenvalues.
    """
    xs = x.to(torch.float32 if use_float32 else torch.float64)
    gram = xs @ xs.mT if left else xs.mT @ xs
    evals, w = torch.linalg.eigh(gram)
    y = xs.mT @ w if left else xs @ w
    if use_float32:
        s = torch.linalg.vector_norm(y, dim=0, dtype=torch.float64)
        s = s / torch.linalg.vector_norm(w, dim=0, dtype=torch.float64)
    else:
        s = evals.clamp_min(0).sqrt()
    return w, y, s


def eigh32_forward(x: Tensor, need_polar: bool) -> tuple[Tensor, tuple[Tensor, ...], bool]:
    """``||x||_*`` by the checked float32 eigendecomposition (module docstring)."""
    n, m = x.shape
    left = n < m
    w, y, s = _factors(x, left, use_float32=True)
    s_max = s.max()
    unresolved = (s > NULL_LEVEL * s_max) & (s < RESOLVED_LEVEL * s_max)
    # a host read: free on CPU, where "auto" uses this method; shape-only tensors skip it
    if has_data(x) and bool(unresolved.any()):
        w, y, s = _factors(x, left, use_float32=False)
        s_max = s.max()
        floor = s_max * RELATIVE_EIGEN_FLOOR**0.5
    else:
        floor = s_max * RESOLVED_LEVEL
    floor = floor.clamp_min(torch.finfo(s.dtype).tiny)
    return s.sum(), (w, y, s, floor), left


def eigh32_polar(x: Tensor, saved: tuple[Tensor, ...], left: bool) -> Tensor:
    """``P = sum_i y_i w_i^T / (max(s_i, floor) |w_i|^2)`` (transposed when ``left``)."""
    w, y, s, floor = saved
    # w is unit-norm only to float32 rounding: divide by |w_i|^2 too; y_i = 0 where s_i = 0
    norm_sq = torch.linalg.vector_norm(w, dim=0, dtype=s.dtype).square()
    scale = torch.where(s > 0, 1.0 / (s.clamp_min(floor) * norm_sq), torch.zeros_like(s))
    scale = scale.clamp_max(torch.finfo(w.dtype).max).to(w.dtype)  # s near float32's tiny
    return (w * scale) @ y.mT if left else (y * scale) @ w.mT
