"""The ways to compute ``||X||_* = tr(S^{1/2})`` and which one ``"auto"`` picks.

=============  ==============================================================================
method         what it does
=============  ==============================================================================
``"exact"``    float64 eigendecomposition of the smaller Gram matrix, closed-form backward
               :mod:`w2reg._trace_sqrt`. Accurate to float64; on CUDA pays cuSOLVER's latency
               and a host synchronisation per call.
``"iterative"``  polar factor by nine float32 matrix-product steps, :mod:`w2reg._polar`. No
               eigensolver, no host synchronisation, ``torch.compile``-able. W2 within 1e-4
               relative (1e-8 on Gaussian embeddings), gradient within 1e-3 in every
               direction above 1e-3 of the top singular value; tinier directions get a
               damped gradient.
``"eigh32"``   float32 eigendecomposition with float64 Rayleigh values, trusted only when the
               spectrum lets float32 resolve it, else the exact method,
               :mod:`w2reg._eigh32`. Reads data on the host: CPU only in practice.
``"auto"``     the default, see :func:`resolve_method`.
=============  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._eigh32 import eigh32_forward, eigh32_polar
from ._polar import iterative_forward, iterative_polar
from ._trace_sqrt import exact_forward, exact_polar
from ._validation import data_is_free

#: ``forward(x, need_polar) -> (||x||_*, saved tensors, left)``
Forward = Callable[[Tensor, bool], tuple[Tensor, tuple[Tensor, ...], bool]]
#: ``polar(x, saved, left) -> d||x||_* / dx``
Polar = Callable[[Tensor, tuple[Tensor, ...], bool], Tensor]

#: The accepted values of every ``method`` / ``w2_method`` option, "auto" first.
METHODS: tuple[str, ...] = ("auto", "exact", "iterative", "eigh32")

#: The implementation of every resolved method.
IMPLEMENTATIONS: dict[str, tuple[Forward, Polar]] = {
    "exact": (exact_forward, exact_polar),
    "iterative": (iterative_forward, iterative_polar),
    "eigh32": (eigh32_forward, eigh32_polar),
}


def check_method(method: object, name: str = "method") -> str:
    """Return ``method`` if it is one of :data:`METHODS`, else raise ``ValueError`` naming it."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"{name} must be one of {list(METHODS)}, got {method!r}")
    return method


def resolve_method(method: str, z: Tensor) -> str:
    """The method ``"auto"`` stands for with embeddings ``z``; other values pass through.

    ``"auto"`` is the fastest method that meets the accuracy target (W2 within 1e-4 relative
    of the float64 oracle, gradient within 1e-3 in the directions above 1e-3 of the top
    singular value; 1e-6 on Gaussian embeddings) on that device and dtype:

    * float64 embeddings, any device: ``"exact"`` -- a float64 input asks for float64
      accuracy, which only the float64 eigendecomposition gives.
    * CPU, eager: ``"eigh32"``. Measured at (512, 256), 1 thread, forward + backward
      (benchmarks/results/bench_w2_cpu.txt): about 1.2x the speed of the float32
      eigh-and-reconstruct recipe, where ``"exact"`` is 0.7-0.8x and ``"iterative"`` 0.5x
      (CPU matrix products are slow next to LAPACK's float32 eigensolver); on non-square
      Gaussian embeddings from (128, 256) to (8192, 256) and (256, 8192) it ran 0.97-3.1x
      the speed of ``"exact"``, typically 1.2-1.7x (benchmarks/results/bench_w2_cpu.txt,
      bench_scaling_cpu.txt; single runs on a shared machine). Where float32 cannot resolve
      the spectrum (decaying spectra, ``N`` close to ``m``) it falls back to the exact result,
      paying the float32 attempt on top (1.7x ``"exact"`` at 512 x 512, about 1x from
      1024 x 1024 on).
    * CPU under ``torch.compile``, or a tensor without data (meta, fake): ``"exact"`` on
      CPU (no host read), ``"iterative"`` for meta/fake tensors of other devices.
    * CUDA and other accelerators: ``"iterative"``. Not measured here (no GPU); chosen from
      the committed H200 numbers (benchmarks/results/bench_w2_h200.txt: the exact method
      takes 5.0 ms at (512, 256) and 8.0 ms at (512, 2048), almost all of it the fixed
      latency of cuSOLVER's eigensolver, which also synchronises the host every step) and
      the iteration's cost, about 27 float32 GEMMs of at most ``N x min(N, m)^2``
      (1.5 GFLOP at (512, 256), well under a millisecond on an H200).
      ``benchmarks/gpu_run.sh`` measures it.
    """
    if method != "auto":
        return method
    if z.dtype == torch.float64:
        return "exact"
    if z.device.type == "cpu":
        return "eigh32" if data_is_free(z) else "exact"
    return "iterative"
