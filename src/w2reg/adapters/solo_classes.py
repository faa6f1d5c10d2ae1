"""The ``_w2`` classes of solo-learn methods: the class factory, and which methods qualify.

:func:`w2_class` makes a subclass of a solo-learn method class with
:func:`w2reg.adapters._lightning.regularize_class` (head ``projector``, gathered across ranks),
whose every W2 setting comes through that function's ``options``: from the validated cfg
(current solo-learn, :func:`options_from_cfg`) or from the constructor's keywords (1.0.2,
:func:`options_from_keywords`), both read by :func:`w2reg.adapters.solo_weights.w2_settings`,
the one rule. :func:`w2_ineligibility` says why a class cannot have the term (DINO, MAE).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torch import nn

from w2reg._validation import check_weight

from ._lightning import regularize_class
from .solo_api import SOLO_API
from .solo_weights import (
    SUFFIX,
    W2_KEYS,
    DefaultWeights,
    W2Settings,
    base_method_name,
    w2_settings,
)

__all__ = ["IneligibleMethod", "add_and_assert_w2_cfg", "w2_class", "w2_ineligibility"]

#: Where the cfg API keeps the W2 keys, as the error messages name them.
CFG_PREFIX = "method_kwargs."


# ----------------------------------------------------------------------------------------
# Current solo-learn: the cfg's method_kwargs


def _fill_cfg(cfg: Any, defaults: DefaultWeights) -> Any:
    """Validate the W2 keys of ``cfg.method_kwargs`` and write them back, complete (in place)."""
    if cfg.get("method_kwargs", None) is None:
        cfg.method_kwargs = {}
    kwargs = cfg.method_kwargs
    settings = w2_settings(kwargs, lambda term: defaults(cfg, term), prefix=CFG_PREFIX)
    for key, value in settings.as_keys().items():
        kwargs[key] = value
    return cfg


def add_and_assert_w2_cfg(cfg: Any, weight: float = 1.0, final_weight: float | None = None) -> Any:
    """Fill in and validate ``cfg.method_kwargs.w2_term`` / ``w2_weight`` / ``w2_final_weight`` /
    ``w2_method`` (in place), by :func:`w2reg.adapters.solo_weights.w2_settings`.

    Args:
        cfg: solo-learn's ``omegaconf.DictConfig`` (``method_kwargs`` may be absent).
        weight: default ``a_max`` when the cfg has no ``w2_weight``.
        final_weight: default ``a_min`` when the cfg has no ``w2_final_weight``; ``None`` (or
            ``weight``) is a constant default: setting only ``w2_weight`` keeps it constant. A
            decaying default (Barlow Twins: 30 -> 0) keeps its end value.

    ``w2_term`` is ``"w2"`` (default) or ``"lu"``; ``w2_method`` (default ``"auto"``) one of
    :data:`w2reg.METHODS`, see :func:`w2reg.w2_uniformity`.

    Returns:
        ``cfg``, with both weights set to floats and ``w2_term``, ``w2_method`` to strings.

    Raises:
        ValueError: a weight is not a finite number >= 0, or ``w2_term`` / ``w2_method`` is not
            a known name (the message names the key).
    """
    return _fill_cfg(cfg, DefaultWeights(None, weight, final_weight))


def options_from_cfg(model: nn.Module) -> dict[str, Any]:
    """``regularize_class``'s options of a ``_w2`` model: ``method_kwargs.w2_*`` of its cfg."""
    defaults = getattr(type(model), "w2_defaults", DefaultWeights())
    settings = w2_settings(model.cfg.method_kwargs, lambda term: defaults(model.cfg, term))
    return settings.options(model.cfg.get("max_epochs"))


# ----------------------------------------------------------------------------------------
# solo-learn 1.0.2: constructor keywords


def options_from_keywords(model: nn.Module) -> dict[str, Any]:
    """``regularize_class``'s options of a 1.0.2 ``_w2`` model: its constructor's W2 keywords."""
    settings: W2Settings = model.__dict__["_w2_settings"]
    return settings.options(getattr(model, "max_epochs", None))


def _legacy_w2_class(klass: type) -> type:
    """solo-learn 1.0.2: take the W2 keywords out of the constructor's before the base sees them."""

    class LegacyW2(klass):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            given = {key: kwargs.pop(key) for key in W2_KEYS if key in kwargs}
            defaults = getattr(type(self), "w2_defaults", DefaultWeights())
            settings = w2_settings(given, lambda term: defaults(kwargs, term))
            object.__setattr__(self, "_w2_settings", settings)
            super().__init__(*args, **kwargs)

    LegacyW2.__name__ = LegacyW2.__qualname__ = klass.__name__
    LegacyW2.__module__ = klass.__module__
    LegacyW2.__doc__ = klass.__doc__
    return LegacyW2


# ----------------------------------------------------------------------------------------
# The class factory


class _BackboneForBase:
    """A solo backbone factory that is handed the base method's name instead of ``*_w2``."""

    def __init__(self, factory: Callable[..., nn.Module], base_method: str | None) -> None:
        self.factory = factory
        self.base_method = base_method

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> nn.Module:
        name = self.base_method if self.base_method is not None else base_method_name(method)
        return self.factory(name, *args, **kwargs)


class _BackbonesForBase(Mapping):
    """Live view of a method class's ``_BACKBONES`` whose factories get the base name.

    Live, so backbones added to solo's table after registration are found too.
    """

    def __init__(self, owner: type, base_method: str | None) -> None:
        self.owner = owner
        self.base_method = base_method

    def __getitem__(self, key: str) -> _BackboneForBase:
        return _BackboneForBase(self.owner._BACKBONES[key], self.base_method)

    def __iter__(self) -> Iterator[str]:
        return iter(self.owner._BACKBONES)

    def __len__(self) -> int:
        return len(self.owner._BACKBONES)


def _check_solo_class(cls: Any) -> None:
    from solo.methods.base import BaseMethod

    if not isinstance(cls, type) or not issubclass(cls, BaseMethod):
        raise TypeError(f"cls must be a solo.methods.base.BaseMethod subclass, got {cls!r}")


def make_class(
    cls: type, defaults: DefaultWeights, *, base_method: str | None, name: str | None
) -> type:
    """The ``_w2`` subclass of ``cls`` with default weights ``defaults`` (see :func:`w2_class`)."""
    _check_solo_class(cls)
    options = options_from_cfg if SOLO_API == "cfg" else options_from_keywords
    klass = regularize_class(
        cls, head="projector", gather_distributed=True, options=options, name=name
    )
    if SOLO_API == "legacy":
        klass = _legacy_w2_class(klass)
    else:
        parent_check = cls.add_and_assert_specific_cfg

        def add_and_assert_specific_cfg(cfg: Any) -> Any:
            """The base method's checks and defaults, then ``method_kwargs.w2_term``,
            ``w2_weight``, ``w2_final_weight`` and ``w2_method`` (see
            :func:`w2reg.adapters.solo.add_and_assert_w2_cfg`)."""
            return _fill_cfg(parent_check(cfg), klass.w2_defaults)

        klass.add_and_assert_specific_cfg = staticmethod(add_and_assert_specific_cfg)
    if isinstance(getattr(cls, "_BACKBONES", None), Mapping):
        klass._BACKBONES = _BackbonesForBase(cls, base_method)
    #: ``w2_defaults(cfg or keywords, term) -> (a_max, a_min)``
    klass.w2_defaults = defaults
    return klass


def w2_class(
    cls: type,
    weight: float = 1.0,
    final_weight: float | None = None,
    *,
    base_method: str | None = None,
    name: str | None = None,
) -> type:
    """A subclass of solo-learn method class ``cls`` that adds ``a_t * W2`` of its projections.

    Args:
        cls: any ``BaseMethod`` subclass whose online projector is ``self.projector`` (all of
            solo-learn's contrastive and non-contrastive methods, and your own subclasses).
        weight: default ``a_max`` (weight at epoch 0) when ``method_kwargs.w2_weight`` is not
            in the cfg.
        final_weight: default ``a_min`` (weight at ``max_epochs``) when
            ``method_kwargs.w2_final_weight`` is not in the cfg; ``None``: constant weight.
        base_method: the solo name handed to backbone factories (default: ``cfg.method``
            without the ``_w2`` suffix).
        name: class name (default ``cls.__name__ + "W2"``).

    Current solo-learn: the cfg is validated by the new class's ``add_and_assert_specific_cfg``
    (its own checks first, then the W2 keys). solo-learn 1.0.2: ``w2_term``, ``w2_weight``,
    ``w2_final_weight`` and ``w2_method`` are keyword arguments of the constructor. With
    ``w2_term: lu`` the default weights are these times
    :data:`~w2reg.adapters.defaults.LU_RELATIVE_WEIGHT`.

    Raises:
        TypeError: ``cls`` is not a ``BaseMethod`` subclass.
        ValueError: a weight is not a finite number >= 0.
    """
    weight = check_weight(weight, "w2_weight")
    if final_weight is not None:
        final_weight = check_weight(final_weight, "w2_final_weight")
    return make_class(
        cls, DefaultWeights(None, weight, final_weight), base_method=base_method, name=name
    )


# ----------------------------------------------------------------------------------------
# Which methods W2 applies to


def _solo_class(name: str) -> type | None:
    import solo.methods

    found = getattr(solo.methods, name, None)
    return found if isinstance(found, type) else None


def w2_ineligibility(cls: Any) -> str | None:
    """Why the W2 term cannot be added to solo-learn method class ``cls``; ``None`` if it can.

    W2 measures the uniformity of the embedding, the online ``projector``'s output. That is
    the case for solo-learn's contrastive and non-contrastive methods, including SwAV and
    DeepClusterV2, whose prototypes are a separate module applied to the L2-normalised
    projector output. It is not for:

    * ``DINO``: it has no ``projector``; its ``head`` (``DINOHead``) ends in the prototype
      layer, so the head's output is ``num_prototypes`` logits, not an embedding;
    * ``MAE``: no projector at all (it reconstructs masked patches);
    * ``LinearModel`` (``linear``): the linear-evaluation model, not a pre-training method;
    * ``BaseMethod`` / ``BaseMomentumMethod`` themselves (``base``): no projector.

    Subclasses of the first three are ineligible too (your own method built on ``BaseMethod``
    is eligible if its ``projector`` output is the embedding).
    """
    dino, mae, linear = (_solo_class(n) for n in ("DINO", "MAE", "LinearModel"))
    name = getattr(cls, "__name__", repr(cls))

    def kind(solo_name: str) -> str:
        return name if name == solo_name else f"{name} (a {solo_name})"

    if dino is not None and isinstance(cls, type) and issubclass(cls, dino):
        return (
            f"{kind('DINO')} has no projector whose output is an embedding: its head "
            "(DINOHead) ends in the prototype layer, so what it outputs are prototype logits; "
            "W2 measures the uniformity of an embedding"
        )
    if mae is not None and isinstance(cls, type) and issubclass(cls, mae):
        return f"{kind('MAE')} has no projector: it reconstructs masked patches"
    if linear is not None and isinstance(cls, type) and issubclass(cls, linear):
        return f"{name} is solo-learn's linear-evaluation model, not a pre-training method"
    base = _solo_class("BaseMethod")
    if cls is base or cls is _solo_class("BaseMomentumMethod"):
        return f"{name} is solo-learn's base class, with no projector"
    if base is None or not isinstance(cls, type) or not issubclass(cls, base):
        return f"{cls!r} is not a solo.methods.base.BaseMethod subclass"
    return None


class IneligibleMethod:
    """What ``register(ALL)`` puts under ``<name>_w2`` for an ineligible method.

    solo-learn's ``main_pretrain.py`` checks ``cfg.method in METHODS`` and then calls
    ``METHODS[cfg.method](cfg)``: with this placeholder there, ``method=dino_w2`` fails with
    the reason (:func:`w2_ineligibility`) instead of solo's list of names.
    """

    def __init__(self, method: str, reason: str, examples: tuple[str, ...] = ()) -> None:
        self.method = method
        self.reason = reason
        self.examples = examples

    def message(self) -> str:
        names = ", ".join(m + SUFFIX for m in self.examples)
        hint = f", e.g. {names}, ..." if names else ""
        return (
            f"method={self.method}{SUFFIX}: the W2 term cannot be added to {self.method!r}: "
            f"{self.reason}. Use a method whose projector output is the embedding{hint}"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(self.message())

    def add_and_assert_specific_cfg(self, cfg: Any) -> Any:
        raise ValueError(self.message())

    def __repr__(self) -> str:
        return f"IneligibleMethod({self.method!r})"
