"""lightly's own isotropy regularizers as terms of the one line: SIGReg, VICReg, VISReg.

"W2, or the regularizer my library already ships?" These put lightly's implementations
(none is written again here) in the slot of the W2 term, so any of them is added to a model
with the same one line, the same schedule, DDP option and logging::

    from w2reg.adapters import lightly_terms
    from w2reg.adapters.lightly import w2_regularized

    @w2_regularized(term=lightly_terms.sigreg(), weight=lightly_terms.weight("sigreg", "byol"))
    class BYOL(pl.LightningModule):
        ...

=============  ==========================================================================
name           the term of the step's raw projections ``z`` (``(N, D)``, all views)
=============  ==========================================================================
``"sigreg"``   ``lightly.loss.SIGReg()`` (LeJEPA's sketched isotropic-Gaussian test;
               from lightly 1.5.23 on)
``"vicreg"``   ``variance_loss(z) + 0.08 * covariance_loss(z)`` of
               ``lightly.loss.vicreg_loss`` (VICReg's variance and covariance terms)
``"visreg"``   ``visreg_scale_loss + visreg_shape_loss + visreg_center_loss`` of
               ``lightly.loss.visreg_loss`` (VISReg's regularizer; from lightly 1.6 on)
=============  ==========================================================================

Weights (:func:`weight`): each of the three papers sets its regularizer against an
invariance term; with embeddings of the scale these regularizers enforce (per-dimension
standard deviation 1, so ``||z||^2 ~ D``), that invariance term is a multiple of the
alignment ``L_A = ||z/|z| - z'/|z'| ||^2`` of the normalised projections. Per unit of
``L_A`` (:data:`PER_ALIGNMENT`):

* SIGReg: LeJEPA's ``0.95 * invariance + 0.05 * SIGReg``, invariance = the mean squared
  distance to the centre of the two views = ``L_A / 4``: ``0.05 / (0.95 / 4) = 0.21``;
* VICReg: ``25 * MSE + 25 * variance + 1 * (cov_a + cov_b)``, MSE = ``L_A``: variance 1,
  covariance ``2 / 25 = 0.08`` (the ``0.08`` inside the term), so the term gets 1.0;
* VISReg: ``0.4 * invariance + 0.6 * (scale + shape + center)`` (its paper's value for small
  datasets), invariance ``L_A / 4``: ``0.6 / (0.4 / 4) = 6.0``.

A method's weight is that number times the ``L_A`` multiple of its loss
(:attr:`w2reg.adapters.defaults.DefaultWeight.alignment`: MoCo v2 5, SimCLR and NNCLR 2.5,
BYOL and SimSiam 2, AlignUniform 1; Barlow Twins and Zero-CL have no alignment term, hence
no weight here). The terms are computed on the concatenation of the views (the papers
average per view; on two views of one batch the statistics are close).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from torch import Tensor, nn

from w2reg._validation import check_positive_int

from .defaults import DEFAULTS, canonical

__all__ = ["NAMES", "PER_ALIGNMENT", "VICRegVarCov", "VISRegTerm", "make", "sigreg", "weight"]

#: The weight of each term per unit of the alignment ``L_A`` of the method's loss.
PER_ALIGNMENT = MappingProxyType(
    {"sigreg": 0.05 / (0.95 / 4), "vicreg": 1.0, "visreg": 0.6 / (0.4 / 4)}
)

#: The terms this module makes, by name.
NAMES: tuple[str, ...] = tuple(PER_ALIGNMENT)


def _lightly(module: str, name: str, since: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        import lightly

        raise ImportError(
            f"{module}.{name} is not in the installed lightly {lightly.__version__}; it needs "
            f"lightly >= {since} (pip install 'lightly>={since}')"
        ) from err


def sigreg(**kwargs: Any) -> nn.Module:
    """lightly's ``SIGReg(**kwargs)`` (LeJEPA), itself the term (its name in logs: ``sigreg``)."""
    return _lightly("lightly.loss.lejepa_loss", "SIGReg", "1.5.23")(**kwargs)


class VICRegVarCov:
    """VICReg's variance and covariance terms, lightly's functions, as one term.

    ``term(z) = variance_loss(z, eps) + cov_weight * covariance_loss(z)`` with lightly's
    ``lightly.loss.vicreg_loss`` functions; ``cov_weight = 2 / 25`` is VICReg's ``nu / mu``
    with its covariance summed over the two views (see the module's docstring).
    """

    __name__ = "vicreg"

    def __init__(self, *, cov_weight: float = 2.0 / 25.0, eps: float = 1e-4) -> None:
        self.cov_weight = float(cov_weight)
        self.eps = float(eps)

    def __call__(self, z: Tensor) -> Tensor:
        variance = _lightly("lightly.loss.vicreg_loss", "variance_loss", "1.4.26")
        covariance = _lightly("lightly.loss.vicreg_loss", "covariance_loss", "1.4.26")
        out: Tensor = variance(z, eps=self.eps) + self.cov_weight * covariance(z)
        return out

    def __repr__(self) -> str:
        return f"VICRegVarCov(cov_weight={self.cov_weight:g}, eps={self.eps:g})"


class VISRegTerm:
    """VISReg's regularizer (scale + shape + center, equal weights), lightly's functions.

    ``term(z) = visreg_scale_loss(z) + visreg_shape_loss(z, num_slices) +
    visreg_center_loss(z)`` (from lightly 1.6 on, ``lightly.loss.visreg_loss``); the slices are
    drawn fresh at every call, as VISReg does.
    """

    __name__ = "visreg"

    def __init__(self, *, num_slices: int = 4096, eps: float = 1e-4) -> None:
        self.num_slices = check_positive_int(num_slices, "num_slices")
        self.eps = float(eps)

    def __call__(self, z: Tensor) -> Tensor:
        module = "lightly.loss.visreg_loss"
        scale = _lightly(module, "visreg_scale_loss", "1.6.0")
        shape = _lightly(module, "visreg_shape_loss", "1.6.0")
        center = _lightly(module, "visreg_center_loss", "1.6.0")
        out: Tensor = scale(z) + shape(z, num_slices=self.num_slices, eps=self.eps) + center(z)
        return out

    def __repr__(self) -> str:
        return f"VISRegTerm(num_slices={self.num_slices})"


_MAKERS: dict[str, Callable[[], Any]] = {
    "sigreg": sigreg,
    "vicreg": VICRegVarCov,
    "visreg": VISRegTerm,
}


def make(name: str) -> Callable[[Tensor], Tensor]:
    """A new term by its name in :data:`NAMES` (lightly's defaults)."""
    if name not in _MAKERS:
        raise ValueError(f"name must be one of {list(NAMES)}, got {name!r}")
    term: Callable[[Tensor], Tensor] = _MAKERS[name]()
    return term


def weight(name: str, method: str) -> float:
    """The weight of term ``name`` for ``method``'s loss (the ready models' loss scales).

    :data:`PER_ALIGNMENT` times the ``L_A`` multiple of the method's loss.

    Raises:
        ValueError: an unknown term or method, or a method without an alignment term
            (Barlow Twins, Zero-CL).
    """
    if name not in PER_ALIGNMENT:
        raise ValueError(f"name must be one of {list(NAMES)}, got {name!r}")
    entry = DEFAULTS[canonical(method)]
    if entry.alignment is None:
        raise ValueError(
            f"{entry.title}'s loss has no alignment term to set {name}'s weight against; "
            "give the weight yourself"
        )
    return PER_ALIGNMENT[name] * entry.alignment
