"""The W2 uniformity term for lightly models, in one line.

lightly (``lightly >= 1.4.26``; the versions tested are in the documentation's compatibility
table) writes self-supervised models as LightningModules with a ``backbone``, a
``projection_head``, sometimes a ``prediction_head`` and momentum copies, and a lightly
criterion (``examples/pytorch_lightning/*.py`` in lightly). Adding the W2 uniformity
regularizer of Fang et al. (ICLR 2024, arXiv:2403.00642) to such a model is one line::

    from w2reg import LinearDecay
    from w2reg.adapters.lightly import w2_regularized

    @w2_regularized(weight=LinearDecay(30.0, 0.0))   # <- the one line
    class BarlowTwins(pl.LightningModule):
        ...                                          # unchanged lightly example code

or, without touching the class, ``W2BYOL = w2_regularized(BYOL, weight=0.2)``.

What the regularized class does (:mod:`w2reg.adapters._lightning`, on the one capture
mechanism :mod:`w2reg.adapters.head`):

* every output of ``projection_head`` computed *with gradients* during ``training_step``
  (all views, all crops) is captured at the head, before any ``detach`` or memory-bank
  swap, and ``weight_t * W2(concat(outputs))`` is added to the returned loss;
  deep-copied momentum heads and calls under ``torch.no_grad`` are never captured;
* the criterion is called exactly as before, so memory banks advance as before;
* ``weight_t`` follows ``trainer.current_epoch`` / ``trainer.max_epochs`` and its state is
  saved in the checkpoint under ``"w2reg"``;
* no parameters or buffers are added: a checkpoint loads into the plain class with
  ``strict=True``;
* logged with ``self.log``: ``train_w2_uniformity`` (unweighted W2), ``train_w2_weight``
  (``weight_t``) and ``train_w2_loss`` (``weight_t * W2``), per step and per epoch.

Ready models of the eight methods of the paper are in :mod:`w2reg.adapters.lightly_methods`,
re-exported here as :data:`MODELS` (plain), :data:`W2_MODELS` and :func:`create_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from torch import nn

from w2reg.terms import TermLike

from ._lightning import (
    CHECKPOINT_KEY,
    LOG_TERM,
    LOG_W2,
    LOG_WEIGHT,
    WeightSpec,
    check_spec,
    log_keys,
    regularize_class,
)
from .head import HeadRegularizer

M = TypeVar("M", bound=nn.Module)

__all__ = [
    "CHECKPOINT_KEY",
    "LOG_TERM",
    "LOG_W2",
    "LOG_WEIGHT",
    "METHODS",
    "MODELS",
    "W2_METHODS",
    "W2_MODELS",
    "HeadRegularizer",
    "create_model",
    "log_keys",
    "w2_regularized",
]


@overload
def w2_regularized(
    cls: type[M],
    *,
    head: str = ...,
    weight: WeightSpec = ...,
    term: TermLike = ...,
    term_name: str | None = ...,
    normalize: bool = ...,
    gather_distributed: bool = ...,
    name: str | None = ...,
    method: str = ...,
) -> type[M]: ...


@overload
def w2_regularized(
    cls: None = ...,
    *,
    head: str = ...,
    weight: WeightSpec = ...,
    term: TermLike = ...,
    term_name: str | None = ...,
    normalize: bool = ...,
    gather_distributed: bool = ...,
    name: str | None = ...,
    method: str = ...,
) -> Callable[[type[M]], type[M]]: ...


def w2_regularized(
    cls: type[M] | None = None,
    *,
    head: str = "projection_head",
    weight: WeightSpec = 1.0,
    term: TermLike = "w2",
    term_name: str | None = None,
    normalize: bool = True,
    gather_distributed: bool = False,
    name: str | None = None,
    method: str = "auto",
) -> Any:
    """Add ``weight_t * term(online projections)`` (default: W2) to a lightly model's loss.

    Usable as a bare decorator (``@w2_regularized``), a decorator with arguments
    (``@w2_regularized(weight=0.2)``) or a class factory
    (``W2SimCLR = w2_regularized(SimCLR, weight=0.5)``). The given class is not modified;
    a subclass is returned. Every setting is checked here (a ``ValueError`` names a bad one).

    Args:
        cls: the LightningModule class (lightly-style) to regularize.
        head: dotted name of the submodule whose output is the online projection
            (lightly's examples call it ``projection_head``), looked up again at every step.
            A ``ValueError`` naming the model's top-level modules is raised when the model is
            constructed without it, and a ``RuntimeError`` when it produced no output with
            gradients in a step.
        weight: a number, a :class:`w2reg.Schedule` (e.g. ``LinearDecay(30, 0)``, whose
            horizon defaults to ``trainer.max_epochs``), or a callable taking the
            constructed model and returning one (a module-level function, so the class
            pickles). The right number depends on the loss: docs/lightly.md.
        term: ``"w2"`` (default), ``"lu"`` (Wang & Isola's L_U) or a callable
            ``term(z) -> scalar`` of the concatenated projections, e.g. lightly's
            ``SIGReg()`` (:mod:`w2reg.terms`).
        term_name: a callable term's name in the logs (default: its class or function name).
        normalize: L2-normalise the projections first (``"w2"``, ``"lu"``; the paper does).
        gather_distributed: compute the term on the global batch of all ranks (DDP).
        name: ``__name__`` of the returned class. Default: the name of ``cls``, so that a
            decorated class keeps the name it is bound to in its module (and pickles).
        method: how W2's nuclear norm is computed: ``"auto"`` (default: matrix products
            only on a GPU, no host sync), ``"exact"``, ``"iterative"`` or ``"eigh32"``; see
            :func:`w2reg.w2_uniformity`.

    Returns:
        The regularized subclass, or a decorator when ``cls`` is omitted. Its instances
        carry the regularizer as ``model.w2reg`` (``model.w2reg.loss`` is the
        :class:`w2reg.Regularizer`). It logs ``train_w2_uniformity``, ``train_w2_weight``
        and ``train_w2_loss`` (for another term ``<name>``: ``train_<name>``, ...).
    """
    options = {
        "cls": None,
        "head": head,
        "weight": weight,
        "term": term,
        "term_name": term_name,
        "normalize": normalize,
        "gather_distributed": gather_distributed,
        "method": method,
        "options": None,
        "name": name,
    }
    check_spec(options)  # at decoration, before any class is made

    def wrap(target: type[M]) -> type[M]:
        return regularize_class(
            target,
            head=head,
            weight=weight,
            term=term,
            term_name=term_name,
            normalize=normalize,
            gather_distributed=gather_distributed,
            name=name or target.__name__,
            method=method,
        )

    if cls is None:
        return wrap
    if not isinstance(cls, type):
        raise TypeError(
            f"w2_regularized: cls must be a LightningModule class, got {cls!r}; "
            "pass options by keyword (w2_regularized(weight=...))"
        )
    return wrap(cls)


from .lightly_methods import METHODS, MODELS, W2_METHODS, W2_MODELS, create_model  # noqa: E402
