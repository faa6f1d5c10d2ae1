"""``nn.Module`` wrappers of the functional losses and terms (no parameters, no buffers)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import functional as Fw
from ._methods import check_method
from ._validation import check_bool
from .schedules import Schedule, WeightLike, as_schedule
from .terms import Term, TermLike, W2Term, as_term, term_value_dtype


class Regularizer(nn.Module):
    """A weighted term of the projections of one or more views: ``weight_t * term(z)``.

    ``forward(*views)`` concatenates the ``(B, m)`` views (all of one batch: the same ``B``)
    along the batch dimension into ``z`` and returns ``weight * term(z)``, where the term is
    W2 (default), Wang & Isola's ``L_U`` or a callable (:mod:`w2reg.terms`). The weight is a
    number or a :class:`~w2reg.schedules.Schedule`; move a schedule along with
    :meth:`set_epoch`. The last unweighted value and the weight used are kept in
    :attr:`last_value` and :attr:`last_weight` for logging; :attr:`last_value` keeps at least
    float32 precision (float64 for float64 views) whatever the views' dtype, so a value
    logged under bf16 mixed precision is not rounded to bf16's three significant digits. The
    returned term has the dtype of the views.

    The module has no parameters and no buffers: adding it to a model leaves the model's
    ``state_dict`` unchanged (a callable term that is a module is kept out of the tree too).
    Save ``module.schedule.state_dict()`` to resume a schedule.

    Args:
        term: ``"w2"``, ``"lu"``, a :class:`w2reg.terms.Term` or ``fn(z) -> scalar``.
        weight: constant weight or schedule.
        normalize: L2-normalise rows first (``"w2"`` and ``"lu"``; the paper does).
        gather_distributed: compute on the global batch of all ranks.
        method: how W2's nuclear norm is computed (``term="w2"`` only), see
            :func:`w2reg.w2_uniformity`.
        name: a callable term's name in the logs.

    Example:
        >>> import torch
        >>> from w2reg import LinearDecay, Regularizer
        >>> lu = Regularizer("lu", LinearDecay(3.0, 0.0, epochs=10))
        >>> z0, z1 = torch.randn(32, 8), torch.randn(32, 8)
        >>> lu.set_epoch(5)
        >>> loss = lu(z0, z1)  # 1.5 * L_U of the 64 rows
        >>> lu.last_weight, lu.term.name
        (1.5, 'lu')
    """

    #: The term (kept out of the module tree: set with ``object.__setattr__``).
    term: Term

    def __init__(
        self,
        term: TermLike = "w2",
        weight: WeightLike = 1.0,
        *,
        normalize: bool = True,
        gather_distributed: bool = False,
        method: str = "auto",
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.schedule: Schedule = as_schedule(weight)
        # object.__setattr__: a term that is an nn.Module (lightly's SIGReg) stays out of
        # this module's tree, so no model that holds a Regularizer gains its buffers
        object.__setattr__(
            self, "term", as_term(term, normalize=normalize, method=method, name=name)
        )
        self.gather_distributed = check_bool(gather_distributed, "gather_distributed")
        self.last_value: Tensor | None = None
        self.last_weight: float | None = None

    def set_epoch(self, epoch: int, total_epochs: int | None = None) -> None:
        """Move the weight schedule to ``epoch`` (0-based) of ``total_epochs``."""
        self.schedule.set_epoch(epoch, total_epochs)

    @property
    def weight(self) -> float:
        """The weight at the schedule's current epoch."""
        return self.schedule.value

    def forward(self, *views: Tensor) -> Tensor:
        if not views:
            raise ValueError(
                f"{type(self).__name__} needs at least one view of shape (B, m), got none"
            )
        shapes = [tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for v in views]
        if not all(isinstance(v, Tensor) and v.dim() == 2 for v in views):
            raise ValueError(f"views must all be 2-D (B, m), got shapes {shapes}")
        if len({v.shape for v in views}) != 1:
            raise ValueError(
                f"views must be of one batch, all of one shape (B, m), got shapes {shapes}; "
                "concatenate views of different sizes yourself and pass one tensor"
            )
        z = views[0] if len(views) == 1 else torch.cat(views, dim=0)
        value = self.term.value(z, gather_distributed=self.gather_distributed)
        weight = self.weight
        self.last_value = value.detach().to(term_value_dtype(z))
        self.last_weight = weight
        return (weight * value).to(z.dtype)

    def extra_repr(self) -> str:
        return f"term={self.term!r}, weight={self.schedule!r}"


class W2Uniformity(Regularizer):
    """Weighted W2 uniformity regularizer over one or more views: ``weight_t * W2(z)``.

    :class:`Regularizer` with the W2 term (:func:`w2reg.functional.w2_uniformity` of the
    views concatenated); :attr:`normalize` and :attr:`method` are the term's settings.

    Args:
        weight: constant weight or schedule (paper: MoCo v2 1.0, BYOL 0.2, BarlowTwins
            ``LinearDecay(30, 0)``, Zero-CL 30).
        normalize: L2-normalise rows first (the paper does).
        gather_distributed: compute on the global batch of all ranks.
        method: how the nuclear norm is computed, see :func:`w2reg.w2_uniformity`
            (``"auto"``, ``"exact"``, ``"iterative"``, ``"eigh32"``).

    Example:
        >>> import torch
        >>> from w2reg import LinearDecay, W2Uniformity
        >>> _ = torch.manual_seed(0)
        >>> reg = W2Uniformity(LinearDecay(30.0, 0.0, epochs=500))
        >>> z0, z1 = torch.randn(256, 128), torch.randn(256, 128)
        >>> reg.set_epoch(250)
        >>> loss = reg(z0, z1)  # + your method's loss: 15 * W2 of the 512 rows
        >>> reg.last_weight, round(float(reg.last_value), 2), round(float(loss), 1)
        (15.0, 0.26, 3.9)
    """

    term: W2Term

    def __init__(
        self,
        weight: WeightLike = 1.0,
        *,
        normalize: bool = True,
        gather_distributed: bool = False,
        method: str = "auto",
    ) -> None:
        super().__init__(
            "w2",
            weight,
            normalize=normalize,
            gather_distributed=gather_distributed,
            method=method,
        )

    @property
    def normalize(self) -> bool:
        """L2-normalise the rows before W2."""
        return self.term.normalize

    @normalize.setter
    def normalize(self, value: bool) -> None:
        self.term.normalize = check_bool(value, "normalize")

    @property
    def method(self) -> str:
        """How W2's nuclear norm is computed (:data:`w2reg.METHODS`)."""
        return self.term.method

    @method.setter
    def method(self, value: str) -> None:
        self.term.method = check_method(value)

    def extra_repr(self) -> str:
        return f"weight={self.schedule!r}, normalize={self.normalize}, method={self.method!r}"


class AlignUniformLoss(nn.Module):
    """Wang & Isola's alignment + uniformity loss, see :func:`w2reg.align_uniform_loss`.

    ``forward(z1, z2)`` takes the ``(N, m)`` projections of two views.
    """

    def __init__(self, lam: float = 1.0, t: float = 2.0, alpha: float = 2.0) -> None:
        super().__init__()
        self.lam, self.t, self.alpha = lam, t, alpha

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        return Fw.align_uniform_loss(z1, z2, lam=self.lam, t=self.t, alpha=self.alpha)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, t={self.t}, alpha={self.alpha}"
