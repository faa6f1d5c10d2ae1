"""The regularizer terms of a batch of projections: W2, Wang & Isola's ``L_U``, or any callable.

A *term* maps the ``(N, m)`` projections of one training step (every view, concatenated) to
a scalar that the step's loss carries with a weight. :class:`w2reg.Regularizer` and the
adapters' head hook take one, by name or as a callable:

==============  ===============================================================================
term            value of the ``(N, m)`` projections ``z``
==============  ===============================================================================
``"w2"``        :func:`w2reg.w2_uniformity` (the default; ``normalize`` and ``method`` apply)
``"lu"``        :func:`w2reg.wang_isola_uniformity`, ``t = 2`` (the paper's ``+ L_U`` baseline)
a callable      ``term(z) -> scalar tensor``, e.g. lightly's ``SIGReg()``, or a VICReg
                variance + covariance function; it gets ``z`` as captured (not normalised)
==============  ===============================================================================

With ``gather_distributed=True`` every term sees the rows of all ranks (gathered with
gradients, :func:`w2reg._distributed.gather`), so it is computed on the global batch.

Each term has a ``name``, used for logging (``"w2"``, ``"lu"``; a callable's is its class or
function name in lower case, or what is passed as ``name``).

Example:
    >>> import torch
    >>> from w2reg.terms import as_term
    >>> z = torch.randn(64, 16)
    >>> [as_term(t).name for t in ("w2", "lu", torch.nn.Identity())]
    ['w2', 'lu', 'identity']
    >>> spread = as_term(lambda z: z.var(dim=0).mean(), name="variance")
    >>> spread.name, round(float(spread.value(torch.ones(8, 4))), 3)
    ('variance', 0.0)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from . import functional as Fw
from ._distributed import gather
from ._methods import check_method
from ._validation import check_bool, check_embeddings, check_positive

__all__ = ["TERMS", "CallableTerm", "LUTerm", "Term", "TermLike", "W2Term", "as_term"]

#: The built-in terms, by name; ``"w2"`` is the default everywhere.
TERMS: tuple[str, ...] = ("w2", "lu")


class Term:
    """A scalar function of the step's ``(N, m)`` projections, with a name for logging."""

    name: str = "term"

    def value(self, z: Tensor, *, gather_distributed: bool = False) -> Tensor:
        """The term of ``z`` (the rows of all ranks with ``gather_distributed``), a scalar."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class W2Term(Term):
    """:func:`w2reg.w2_uniformity` of the projections (the rows gathered after normalising).

    Args:
        normalize: L2-normalise the rows first (the paper does).
        method: how the nuclear norm is computed (:data:`w2reg.METHODS`).
    """

    name = "w2"

    def __init__(self, *, normalize: bool = True, method: str = "auto") -> None:
        self.normalize = check_bool(normalize, "normalize")
        self.method = check_method(method)

    def value(self, z: Tensor, *, gather_distributed: bool = False) -> Tensor:
        # float64, autograd-connected; the caller casts (W2Uniformity keeps the float64 value
        # for logging)
        return Fw._w2_float64(
            z,
            normalize=self.normalize,
            squared=False,
            gather_distributed=gather_distributed,
            method=self.method,
        )

    def __repr__(self) -> str:
        return f"W2Term(normalize={self.normalize}, method={self.method!r})"


class LUTerm(Term):
    """Wang & Isola's uniformity :func:`w2reg.wang_isola_uniformity` (``O(N^2)`` memory).

    Args:
        t: the temperature (2, Wang & Isola's and the paper's).
        normalize: L2-normalise the rows first.
    """

    name = "lu"

    def __init__(self, *, t: float = 2.0, normalize: bool = True) -> None:
        self.t = check_positive(t, "t", "the temperature")
        self.normalize = check_bool(normalize, "normalize")

    def value(self, z: Tensor, *, gather_distributed: bool = False) -> Tensor:
        check_embeddings(z, "z")
        x = Fw.normalize_rows(z) if self.normalize else z
        if gather_distributed:
            x = gather(x)
        return Fw.wang_isola_uniformity(x, t=self.t, normalize=False)

    def __repr__(self) -> str:
        return f"LUTerm(t={self.t}, normalize={self.normalize})"


def _default_name(fn: Any) -> str:
    raw = getattr(fn, "__name__", None) or type(fn).__name__
    name = re.sub(r"[^0-9a-zA-Z]+", "_", str(raw)).strip("_").lower()
    return name if name and name != "lambda" else "term"


class CallableTerm(Term):
    """A user's ``fn(z) -> scalar tensor`` as a term.

    ``fn`` gets the concatenated projections as captured (rows of all ranks with
    ``gather_distributed``); an ``nn.Module`` (lightly's ``SIGReg()``) is moved to the
    projections' device on first use, and is kept outside any model's module tree.

    Args:
        fn: the function or module.
        name: its name in the logs (default: the function's or class's name, lower case).

    Raises:
        ValueError: ``fn`` is not callable, or returns something other than a scalar
            floating tensor (when called).
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], *, name: str | None = None) -> None:
        if not callable(fn) or isinstance(fn, (str, bytes)):
            raise ValueError(f"term must be one of {list(TERMS)} or a callable, got {fn!r}")
        if name is not None and (not isinstance(name, str) or not name.isidentifier()):
            raise ValueError(f"name must be an identifier (letters, digits, _), got {name!r}")
        self.fn = fn
        self.name = name or _default_name(fn)

    def value(self, z: Tensor, *, gather_distributed: bool = False) -> Tensor:
        check_embeddings(z, "z")
        x = gather(z) if gather_distributed else z
        fn = self.fn
        if isinstance(fn, nn.Module):
            tensor = next(iter(fn.buffers()), None)
            if tensor is None:
                tensor = next(iter(fn.parameters()), None)
            if tensor is not None and tensor.device != x.device:
                fn.to(x.device)
        out = fn(x)
        if not isinstance(out, Tensor) or out.dim() != 0 or not out.is_floating_point():
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"term {self.name!r} must return a scalar floating tensor, got {got}")
        return out

    def __repr__(self) -> str:
        return f"CallableTerm({self.fn!r}, name={self.name!r})"


#: What a ``term`` argument accepts.
TermLike = str | Term | Callable[[Tensor], Tensor]


def as_term(
    term: TermLike = "w2",
    *,
    normalize: bool = True,
    method: str = "auto",
    name: str | None = None,
) -> Term:
    """A :class:`Term` from a name of :data:`TERMS`, a :class:`Term`, or a callable.

    Args:
        term: ``"w2"`` (default), ``"lu"``, a :class:`Term`, or ``fn(z) -> scalar``.
        normalize: for ``"w2"`` and ``"lu"``: L2-normalise the rows first.
        method: for ``"w2"``: how its nuclear norm is computed.
        name: for a callable: its name in the logs.

    Raises:
        ValueError: an unknown name, or something that is neither a name nor callable; or
            ``method`` given for a term other than ``"w2"`` (the message names it).
    """
    check_bool(normalize, "normalize")
    check_method(method)
    if isinstance(term, Term):
        return term
    if isinstance(term, str):
        if term not in TERMS:
            raise ValueError(f"term must be one of {list(TERMS)} or a callable, got {term!r}")
        if term != "w2" and method != "auto":
            raise ValueError(f"method={method!r} applies to term='w2' only, got term={term!r}")
        if term == "w2":
            return W2Term(normalize=normalize, method=method)
        return LUTerm(normalize=normalize)
    if method != "auto":  # a callable has no nuclear norm to compute
        raise ValueError(f"method={method!r} applies to term='w2' only, got term={term!r}")
    return CallableTerm(term, name=name)


def term_value_dtype(z: Tensor) -> torch.dtype:
    """The dtype a term's logged value keeps: at least float32 (float64 for float64 rows)."""
    return torch.promote_types(z.dtype, torch.float32)
