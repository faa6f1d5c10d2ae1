"""The ``...W2`` class of a ready lightly model: the plain class + a term, all settings saved.

:func:`w2_variant` makes ``<Name>W2`` of a plain ready model (the eight of
:mod:`w2reg.adapters.lightly_methods`, :class:`~w2reg.adapters.lightly_recipe.RecipeModel`s):
:func:`~w2reg.adapters._lightning.regularize_class` of it on ``projection_head``, with three
more keyword arguments, ``w2_weight``, ``w2_method`` and
``w2_term``, checked before the network is built. They stay out of Lightning's
hyperparameters, so a checkpoint loads into the plain class too; they travel in the
checkpoint's ``"w2reg"`` entry (settings and schedule state), which ``load_from_checkpoint``
and resume restore.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from w2reg._methods import check_method
from w2reg.schedules import WeightLike
from w2reg.terms import TermLike, as_term

from ._lightning import check_weight_spec, regularize_class
from .defaults import default_weight
from .lightly_recipe import RecipeModel

__all__ = ["w2_variant"]


def _ready_options(model: nn.Module) -> dict[str, Any]:
    """The settings of a ready ``...W2`` model: its ``w2_*`` constructor arguments and its
    switch for DDP (``gather_distributed``: the criterion and the term use the global batch)."""
    args = model.__dict__["_w2_args"]
    weight, term = args["w2_weight"], args["w2_term"]
    if weight is None:
        weight = default_weight(model.method_key, term, epochs=model.max_epochs)
    return {
        "weight": weight,
        "term": term,
        "method": args["w2_method"],
        "gather_distributed": model.gather_distributed,
    }


def w2_variant(cls: type[RecipeModel], module: str) -> type[RecipeModel]:
    """``<cls.__name__>W2``, to be bound to that name in ``module`` (so it pickles).

    Args:
        cls: a plain ready model (it has ``method_key``, ``max_epochs``, ``gather_distributed``).
        module: the ``__module__`` of the new class, the module that binds it.
    """
    base = regularize_class(cls, head="projection_head", options=_ready_options)

    # A plain function, not a method using super(): Lightning's save_hyperparameters collects
    # the arguments of __init__ frames that have a __class__ cell, and the w2_* arguments stay
    # out of the hyperparameters, so the checkpoint loads into the plain class; they travel in
    # the checkpoint's "w2reg" entry instead (restored by load_from_checkpoint).
    def __init__(
        self: Any,
        *,
        w2_weight: WeightLike | None = None,
        w2_method: str = "auto",
        w2_term: TermLike = "w2",
        **kwargs: Any,
    ) -> None:
        if w2_weight is not None:  # checked before the network is built
            check_weight_spec(w2_weight, "w2_weight")
        check_method(w2_method, "w2_method")
        as_term(w2_term, method=w2_method)
        # set before nn.Module.__init__ runs; read by _ready_options once the model is built
        args = {"w2_weight": w2_weight, "w2_method": w2_method, "w2_term": w2_term}
        object.__setattr__(self, "_w2_args", args)
        base.__init__(self, **kwargs)

    name = f"{cls.__name__}W2"
    doc = (
        f"{cls.__name__} + a regularizer term on ``projection_head`` (default W2, Fang et al., "
        "ICLR 2024).\n\n"
        "Takes the arguments of the plain class and ``w2_weight``, ``w2_method``, ``w2_term``\n"
        f"(see :mod:`{module}`).\n\n"
        f"{cls.__doc__ or ''}"
    )
    namespace = {"__init__": __init__, "__module__": module, "__qualname__": name, "__doc__": doc}
    return type(name, (base,), namespace)
