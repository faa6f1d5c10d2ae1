"""Input checks shared by every public function: one place, one wording.

Shape and dtype checks read only metadata. The finiteness check reads the data, which on an
accelerator means a device-to-host synchronisation (a stall of the training step); it is
therefore done eagerly only where it is free -- CPU tensors outside ``torch.compile`` -- and
everywhere under :func:`set_strict_checks` ``(True)``. Tensors without data (``meta``
device, fake tensors of ``torch.compile``'s tracing) are checked by shape only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, Literal, overload

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import FakeTensor

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
    """True while ``torch.compile`` (Dynamo) traces the caller."""
    check = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    if check is None:  # torch 2.1 - 2.2 (the declared floor is 2.1)
        from torch import _dynamo

        check = _dynamo.is_compiling
    return bool(check())


def has_data(t: Tensor) -> bool:
    """False for tensors that carry only metadata (``meta`` device, FakeTensor)."""
    return t.device.type != "meta" and not isinstance(t, FakeTensor)


def data_is_free(t: Tensor) -> bool:
    """True where reading values on the host costs no device synchronisation."""
    return t.device.type == "cpu" and has_data(t) and not is_compiling()


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (a ``numpy.bool_`` too), else ``ValueError``.

    Strings, numbers and ``None`` are refused: ``normalize="no"`` is an error, not true.
    """
    kind = type(value)  # numpy.bool_ is named "bool" from NumPy 2 on
    numpy_bool = kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool")
    if isinstance(value, bool) or numpy_bool:
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def _finite_real(value: Any, name: str, kind: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float if it is a finite real number (not a bool) with ``ok``, else
    ``ValueError``: ``"<name> must be <kind>, got <value>"``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not (math.isfinite(number) and ok(number)):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return number


def check_weight(value: Any, name: str) -> float:
    """``value`` as a float if it is a finite real number ``>= 0`` (not a bool), else
    ``ValueError`` naming ``name`` and the value."""
    return _finite_real(value, name, "a finite, non-negative number", lambda x: x >= 0)


def check_positive(value: Any, name: str, meaning: str = "") -> float:
    """``value`` as a float if it is a finite real number ``> 0`` (not a bool), else
    ``ValueError`` naming ``name``, what it is (``meaning``, e.g. "the whitening ridge") and
    the value."""
    what = f" ({meaning})" if meaning else ""
    return _finite_real(value, name, f"> 0{what}, a finite number", lambda x: x > 0)


@overload
def check_int(value: Any, name: str, *, minimum: int, optional: Literal[False] = False) -> int: ...


@overload
def check_int(value: Any, name: str, *, minimum: int, optional: bool) -> int | None: ...


def check_int(value: Any, name: str, *, minimum: int, optional: bool = False) -> int | None:
    """``value`` as an int if it is an integer ``>= minimum`` (``None`` too when ``optional``).

    ``2.5``, ``"500"`` and ``True`` are errors, not converted; the message names ``name``.
    """
    if value is None and optional:
        return None
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    kind += " or None" if optional else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int if it is an integer ``>= 1``, else ``ValueError`` naming ``name``."""
    return check_int(value, name, minimum=1)


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
