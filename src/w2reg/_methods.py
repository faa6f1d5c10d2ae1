"""The ways to compute ``||X||_* = tr(S^{1/2})`` and which one ``"auto"`` picks.

=============  ==============================================================================
method         what it does
=============  ==============================================================================
``"exact"``    float64 eigendecomposition of the smaller Gram matrix, closed-form backward
               :mod:`w2reg._trace_sqrt`. Accurate to float64; an eigensolver call (on CUDA:
               cuSOLVER, with a host synchronisation) per step.
``"iterative"``  polar factor by nine float32 matrix-product steps, :mod:`w2reg._polar`. No
               eigensolver, no host synchronisation, ``torch.compile``-able. W2 within 1e-4
               relative, gradient within 1e-3 in every direction above 1e-3 of the top
               singular value; tinier directions get a damped gradient.
``"eigh32"``   float32 eigendecomposition with float64 Rayleigh values, trusted only when the
               spectrum lets float32 resolve it, else the exact method,
               :mod:`w2reg._eigh32`. Reads data on the host: CPU only in practice.
``"auto"``     the default, see :func:`resolve_method`.
=============  ==============================================================================

The accuracies are what tests/test_methods.py checks against a float64 oracle; the speeds,
and so the reasons for ``"auto"``'s choice, are measured in docs/speed.md (and nowhere else).
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
    singular value) on that device and dtype, as measured in docs/speed.md:

    * float64 embeddings, any device: ``"exact"`` (float64 input asks for float64 accuracy,
      which only the float64 eigendecomposition gives);
    * CPU, eager: ``"eigh32"``;
    * CPU under ``torch.compile``, or a tensor without data (meta, fake): ``"exact"`` on
      CPU (no host read), ``"iterative"`` for meta/fake tensors of other devices;
    * CUDA and other accelerators: ``"iterative"`` (no eigensolver latency, no host
      synchronisation).

    Example:
        >>> z = torch.randn(8, 4)
        >>> resolve_method("auto", z), resolve_method("auto", z.double())
        ('eigh32', 'exact')
        >>> resolve_method("auto", z.to("meta")), resolve_method("iterative", z)
        ('iterative', 'iterative')
    """
    if method != "auto":
        return method
    if z.dtype == torch.float64:
        return "exact"
    if z.device.type == "cpu":
        return "eigh32" if data_is_free(z) else "exact"
    return "iterative"
