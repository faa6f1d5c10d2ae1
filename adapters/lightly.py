"""The W2 uniformity term for lightly models, in one line.

lightly (1.5.8 and later, 1.6) writes self-supervised models as LightningModules with a
``backbone``, a ``projection_head``, sometimes a ``prediction_head`` and momentum copies, and
a lightly criterion (``examples/pytorch_lightning/*.py`` in lightly). Adding the W2 uniformity
regularizer of Fang et al. (ICLR 2024, arXiv:2403.00642) to such a model is one line::

    from w2reg import LinearDecay
    from w2reg.adapters.lightly import w2_regularized

    @w2_regularized(weight=LinearDecay(30.0, 0.0))   # <- the one line
    class BarlowTwins(pl.LightningModule):
        ...                                          # unchanged lightly example code

or, without touching the class, ``W2BYOL = w2_regularized(BYOL, weight=0.2)``.

What the regularized class does (see :mod:`w2reg.adapters._lightning`):

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
re-exported here as :data:`METHODS` and :func:`create_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from torch import nn

from ._lightning import (
    CHECKPOINT_KEY,
    LOG_TERM,
    LOG_W2,
    LOG_WEIGHT,
    HeadRegularizer,
    WeightSpec,
    regularize_class,
)

M = TypeVar("M", bound=nn.Module)

__all__ = [
    "CHECKPOINT_KEY",
    "LOG_TERM",
    "LOG_W2",
    "LOG_WEIGHT",
    "METHODS",
    "W2_METHODS",
    "HeadRegularizer",
    "create_model",
    "w2_regularized",
]


@overload
def w2_regularized(
    cls: type[M],
    *,
    head: str = ...,
    weight: WeightSpec = ...,
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
    normalize: bool = True,
    gather_distributed: bool = False,
    name: str | None = None,
    method: str = "auto",
) -> Any:
    """Add ``weight_t * W2(online projections)`` to a lightly LightningModule's loss.

    Usable as a bare decorator (``@w2_regularized``), a decorator with arguments
    (``@w2_regularized(weight=0.2)``) or a class factory
    (``W2SimCLR = w2_regularized(SimCLR, weight=0.5)``). The given class is not modified;
    a subclass is returned.

    Args:
        cls: the LightningModule class (lightly-style) to regularize.
        head: dotted name of the submodule whose output is the online projection
            (lightly's examples call it ``projection_head``). A ``ValueError`` naming the
            model's top-level modules is raised when the model is constructed without it,
            and a ``RuntimeError`` when it produced no output with gradients in a step.
        weight: a number, a :class:`w2reg.Schedule` (e.g. ``LinearDecay(30, 0)``, whose
            horizon defaults to ``trainer.max_epochs``), or a callable taking the
            constructed model and returning one. Paper values: MoCo v2 1.0, BYOL 0.2,
            BarlowTwins ``LinearDecay(30, 0)``, Zero-CL 30 (for losses scaled as in
            :mod:`w2reg.adapters.lightly_methods`).
        normalize: L2-normalise the projections before W2 (the paper does).
        gather_distributed: compute W2 on the global batch of all ranks (DDP).
        name: ``__name__`` of the returned class. Default: the name of ``cls``, so that a
            decorated class keeps the name it is bound to in its module (and pickles).
        method: how W2's nuclear norm is computed: ``"auto"`` (default: matrix products
            only on a GPU, no host sync), ``"exact"``, ``"iterative"`` or ``"eigh32"``; see
            :func:`w2reg.w2_uniformity`.

    Returns:
        The regularized subclass, or a decorator when ``cls`` is omitted. Its instances
        carry the regularizer as ``model.w2reg`` (``model.w2reg.loss`` is the
        :class:`w2reg.W2Uniformity`).
    """

    def wrap(target: type[M]) -> type[M]:
        return regularize_class(
            target,
            head=head,
            weight=weight,
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


from .lightly_methods import METHODS, W2_METHODS, create_model  # noqa: E402
