"""Input checks shared by every public function: one place, one wording.

Shape and dtype checks read only metadata. The finiteness check reads the data, which on an
accelerator means a device-to-host synchronisation (a stall of the training step); it is
therefore done eagerly only where it is free -- CPU tensors outside ``torch.compile`` -- and
everywhere under :func:`set_strict_checks` ``(True)``. Tensors without data (``meta``
device, fake tensors of ``torch.compile``'s tracing) are checked by shape only.
"""

from __future__ import annotations

import torch
from torch import Tensor

_STRICT = False


def set_strict_checks(enabled: bool) -> bool:
    """Turn on the checks that synchronise the host with the device; returns the old setting.

    Off by default. When on, every call of the core

    * checks its embeddings for NaN/Inf on every device (default: CPU only, where it is
      free), raising ``ValueError`` naming the argument;
    * with ``gather_distributed=True``, compares the row counts of all ranks on every call
      (default: on the first call of the process only), raising ``ValueError`` listing them.

    Use it to debug a run; set it identically on every rank. Not for ``torch.compile``d
    code (the checks need the data on the host).

    Example:
        >>> import w2reg
        >>> old = w2reg.set_strict_checks(True)
        >>> w2reg.set_strict_checks(old)
        True
    """
    global _STRICT
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be True or False, got {enabled!r}")
    previous, _STRICT = _STRICT, enabled
    return previous


def strict_checks() -> bool:
    """Whether :func:`set_strict_checks` is on."""
    return _STRICT


def is_compiling() -> bool:
    """True while ``torch.compile`` (Dynamo) traces the caller; False on torch without it."""
    compiler = getattr(torch, "compiler", None)
    check = getattr(compiler, "is_compiling", None)  # torch >= 2.3
    if check is None:
        dynamo = getattr(torch, "_dynamo", None)
        check = getattr(dynamo, "is_compiling", None)  # torch 2.0 - 2.2
    return bool(check()) if check is not None else False


def has_data(t: Tensor) -> bool:
    """False for tensors that carry only metadata (``meta`` device, FakeTensor)."""
    if t.device.type == "meta":
        return False
    try:
        from torch._subclasses.fake_tensor import FakeTensor
    except ImportError:  # pragma: no cover - very old torch
        return True
    return not isinstance(t, FakeTensor)


def data_is_free(t: Tensor) -> bool:
    """True where reading values on the host costs no device synchronisation."""
    return t.device.type == "cpu" and has_data(t) and not is_compiling()


def check_embeddings(z: Tensor, name: str = "z", *, min_rows: int = 2) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``z`` is a finite ``(N, m)`` float tensor.

    ``N >= min_rows`` and ``m >= 1`` are required. The message always carries the shape and
    dtype that were received, so a user can tell which tensor of theirs was wrong. NaN/Inf
    are detected on CPU, and on every device under :func:`set_strict_checks`; on an
    accelerator they otherwise propagate into the result (checking would stall the step).
    """
    if not isinstance(z, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, m), got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (N, m), got {z.dim()}-D tensor of shape "
            f"{tuple(z.shape)}"
        )
    n, m = z.shape
    if n < min_rows:
        raise ValueError(
            f"{name} needs at least {min_rows} rows (N >= {min_rows}), got shape {tuple(z.shape)}"
        )
    if m < 1:
        raise ValueError(f"{name} needs at least one column (m >= 1), got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise ValueError(
            f"{name} must have a floating dtype, got {z.dtype} with shape {tuple(z.shape)}"
        )
    check_data = data_is_free(z) or (_STRICT and has_data(z) and not is_compiling())
    if check_data and not bool(torch.isfinite(z).all()):
        raise ValueError(
            f"{name} contains NaN or Inf values (shape {tuple(z.shape)}, dtype {z.dtype})"
        )


def check_pair(z1: Tensor, z2: Tensor, names: tuple[str, str] = ("z1", "z2")) -> None:
    """Check two views of the same batch: each valid, and of one shape."""
    check_embeddings(z1, names[0], min_rows=1)
    check_embeddings(z2, names[1], min_rows=1)
    if z1.shape != z2.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape (N, m), got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}"
        )
