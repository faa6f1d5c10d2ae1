"""The W2 settings of a solo-learn ``<method>_w2``: names, default weights, the one rule, checks.

Both solo-learn APIs (:mod:`w2reg.adapters.solo_api`) read their settings here, from the cfg's
``method_kwargs`` (current solo-learn) or from the constructor's keywords (1.0.2):

============================  ===================================================  ============
key                           meaning                                              default
============================  ===================================================  ============
``w2_term``                   the term: ``"w2"`` (W2 uniformity) or ``"lu"``       ``"w2"``
                              (Wang & Isola's uniformity, the paper's + L_U arm)
``w2_weight``                 ``a_max``, the weight at epoch 0                     the method's
``w2_final_weight``           ``a_min``, reached at ``max_epochs``                 see the rule
``w2_method``                 how W2 is computed (:data:`w2reg.METHODS`)           ``"auto"``
============================  ===================================================  ============

**The rule** (:func:`w2_settings`, the only place it is written): given only ``w2_weight``, a
constant default stays constant at the chosen weight, and a decaying default keeps its end
value (Barlow Twins: ``w2_weight=10`` gives 10 -> 0). Weights are checked by
:func:`w2reg._validation.check_weight`; errors name the key.

**Default weights** (:func:`default_weights`): the one table of :mod:`w2reg.adapters.defaults`
(``default_weights(method, term)``: the paper's values and ours, each on a stated loss scale)
times solo-learn's loss relative to it, :data:`SOLO_LOSS_SCALE`, so the term keeps the
reference ratio to the loss; :data:`OTHER_METHODS_WEIGHT` for methods outside the paper's eight.

Example:
    >>> from w2reg.adapters.solo_weights import default_weights, w2_settings
    >>> default_weights("mocov2plus"), default_weights("barlow_twins", {"scale_loss": 0.1})
    ((0.5, 0.5), (3.0, 0.0))
    >>> byol = lambda term: default_weights("byol", term=term)          # 0.2, constant
    >>> s = w2_settings({"w2_weight": 3.0}, byol)
    >>> s.weight, s.final_weight, s.term, s.method
    (3.0, 3.0, 'w2', 'auto')
    >>> barlow = lambda term: default_weights("barlow_twins", {"scale_loss": 1.0}, term)
    >>> s = w2_settings({"w2_weight": 10.0}, barlow)                  # 30 -> 0 by default
    >>> s.weight, s.final_weight
    (10.0, 0.0)

This module imports neither solo-learn nor Lightning (``omegaconf`` only to read a cfg).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from w2reg._methods import check_method
from w2reg._validation import check_weight
from w2reg.schedules import LinearDecay
from w2reg.terms import TERMS

from . import defaults as _defaults

__all__ = [
    "OTHER_METHODS_WEIGHT",
    "PAPER_METHODS",
    "SOLO_LOSS_SCALE",
    "SUFFIX",
    "W2_KEYS",
    "DefaultWeights",
    "W2Settings",
    "base_method_name",
    "default_weights",
    "w2_settings",
]

#: Registered name of a W2 variant: ``<solo method name> + SUFFIX`` (``barlow_twins_w2``).
SUFFIX = "_w2"

#: The W2 keys of ``method_kwargs`` (or 1.0.2's constructor keywords).
W2_KEYS = ("w2_term", "w2_weight", "w2_final_weight", "w2_method")

#: The terms a solo ``_w2`` method takes by name (``method_kwargs.w2_term``): the built-in ones.
SOLO_TERMS: tuple[str, ...] = TERMS

#: solo-learn's loss for each paper method as a multiple of the reference loss of
#: :data:`w2reg.adapters.defaults.DEFAULTS` (read from solo-learn's ``training_step``s; the same
#: in 1.0.2 and main). A number, or the cfg key whose value is the factor (1.0.2: the
#: constructor keyword of its last part). The default weights are the table's times this factor.
SOLO_LOSS_SCALE: Mapping[str, float | str] = {
    "simclr": 1.0,  # simclr_loss_func: the mean over all 2B anchors, one averaged NT-Xent
    "mocov2plus": 0.5,  # (InfoNCE(q1, k2) + InfoNCE(q2, k1)) / 2: half the paper's sum
    "nnclr": 1.0,  # (InfoNCE(nn1, p2) + InfoNCE(nn2, p1)) / 2: the reference average
    "byol": 1.0,  # sum over (large crop, other crop) pairs of 2 - 2 cos: the paper's sum
    "simsiam": 0.25,  # (-cos(p1, z2) - cos(p2, z1)) / 2: a quarter of the reference gradient
    "align_uniform": 1.0,  # w2reg.adapters.solo_methods.AlignUniform: the reference loss
    "barlow_twins": "method_kwargs.scale_loss",  # scale_loss * the unscaled Barlow Twins loss
    "zero_cl": 1.0,  # w2reg.adapters.solo_methods.ZeroCL: the reference loss
}


def _solo_name(key: str) -> str:
    """solo-learn's name of a :mod:`~w2reg.adapters.defaults` key (``mocov2`` -> ``mocov2plus``)."""
    aliases = [a for a, k in _defaults.ALIASES.items() if k == key and a in SOLO_LOSS_SCALE]
    return aliases[0] if aliases else key


#: The eight methods of the paper's tables, by their solo-learn names
#: (:data:`w2reg.adapters.defaults.PAPER_METHODS` is the list; this is its spelling here).
PAPER_METHODS: tuple[str, ...] = tuple(_solo_name(k) for k in _defaults.PAPER_METHODS)

#: Default weight (constant) of ``<name>_w2`` for methods outside the paper's eight: no
#: tuned value exists; set ``method_kwargs.w2_weight``.
OTHER_METHODS_WEIGHT = 1.0


def base_method_name(method: str) -> str:
    """The solo-learn name a ``_w2`` name stands for: ``"mocov2plus_w2"`` -> ``"mocov2plus"``.

    Backbone factories are given this name (solo-learn picks e.g. its MoCo v3 / MAE ViT by
    ``cfg.method``), so a W2 variant builds exactly the backbone of its base method.
    """
    method = str(method)
    return method[: -len(SUFFIX)] if method.endswith(SUFFIX) else method


# ----------------------------------------------------------------------------------------
# Reading a cfg (current solo-learn) or a mapping of keywords (1.0.2) alike


def _dictconfig() -> Any:
    try:
        from omegaconf import DictConfig
    except ImportError:  # solo-learn 1.0.2 does not need omegaconf
        return None
    return DictConfig


def _given(source: Mapping[str, Any], key: str) -> Any:
    """``source[key]``; ``None`` when it is absent, ``None`` or OmegaConf's missing ``???``."""
    config = _dictconfig()
    if config is not None and isinstance(source, config):
        from omegaconf import OmegaConf

        if key not in source or OmegaConf.is_missing(source, key):
            return None
        return source[key]
    return source.get(key)


def _scale_factor(method: str, source: Any) -> float:
    """solo-learn's loss scale of ``method`` (:data:`SOLO_LOSS_SCALE`), read from ``source``
    where it is a cfg key: the cfg, or 1.0.2's keywords (the key's last part)."""
    scale = SOLO_LOSS_SCALE[method]
    if not isinstance(scale, str):
        return float(scale)
    value = None
    config = _dictconfig()
    if config is not None and isinstance(source, config):
        from omegaconf import OmegaConf

        value = OmegaConf.select(source, scale)
    elif isinstance(source, Mapping):
        value = source.get(scale.rsplit(".", 1)[-1])
    if value is None:
        raise ValueError(
            f"the default W2 weight of {method}{SUFFIX} depends on {scale} (solo-learn's loss "
            f"scale); pass the cfg (solo-learn 1.0.2: the keyword {scale.rsplit('.', 1)[-1]}=)"
        )
    return check_weight(value, scale)


def _check_term(term: Any, name: str) -> str:
    if not isinstance(term, str) or term not in SOLO_TERMS:
        raise ValueError(f"{name} must be one of {list(SOLO_TERMS)}, got {term!r}")
    return term


def default_weights(method: str, cfg: Any = None, term: str = "w2") -> tuple[float, float]:
    """Default ``(w2_weight, w2_final_weight)`` of ``<method>_w2`` on solo-learn's loss scale.

    ``w2reg.adapters.defaults.default_weights(method, term)`` times :data:`SOLO_LOSS_SCALE`;
    for methods outside the paper's eight :data:`OTHER_METHODS_WEIGHT` (times
    :data:`~w2reg.adapters.defaults.LU_RELATIVE_WEIGHT` for ``"lu"``), constant.

    Args:
        method: a solo-learn name, with or without ``_w2`` (``"mocov2plus"``).
        cfg: the method's validated cfg; needed where the factor is a cfg key (Barlow Twins'
            ``method_kwargs.scale_loss``). solo-learn 1.0.2: the constructor's keywords.
        term: ``"w2"`` or ``"lu"``.

    Example: ``default_weights("mocov2plus") == (0.5, 0.5)`` (the paper's 1.0 on its summed
    loss, solo-learn averages the two directions).
    """
    name = base_method_name(method)
    term = _check_term(term, "term")
    if name not in SOLO_LOSS_SCALE:
        relative = 1.0 if term == "w2" else _defaults.LU_RELATIVE_WEIGHT
        return OTHER_METHODS_WEIGHT * relative, OTHER_METHODS_WEIGHT * relative
    start, end = _defaults.default_weights(name, term)
    factor = _scale_factor(name, cfg)
    return start * factor, end * factor


@dataclass(frozen=True)
class DefaultWeights:
    """The default weights of one ``_w2`` class: ``defaults(source, term) -> (a_max, a_min)``.

    ``method`` set: :func:`default_weights` of that solo-learn method (the registered variants).
    Else the given ``weight`` / ``final_weight`` (:func:`w2reg.adapters.solo.w2_class`; ``None``:
    constant), times :data:`~w2reg.adapters.defaults.LU_RELATIVE_WEIGHT` for ``"lu"``. A
    module-level class, so a ``_w2`` class and what it holds pickle.
    """

    method: str | None = None
    weight: float = 1.0
    final_weight: float | None = None

    def __call__(self, source: Any, term: str) -> tuple[float, float | None]:
        if self.method is not None:
            return default_weights(self.method, source, term)
        relative = 1.0 if term == "w2" else _defaults.LU_RELATIVE_WEIGHT
        end = None if self.final_weight is None else self.final_weight * relative
        return self.weight * relative, end


# ----------------------------------------------------------------------------------------
# The one rule


@dataclass(frozen=True)
class W2Settings:
    """The validated W2 settings of one model (plain types: they pickle and compare)."""

    term: str
    weight: float
    final_weight: float
    method: str

    def schedule(self, max_epochs: Any = None) -> LinearDecay:
        """``a_t = weight - t (weight - final_weight) / T``, per epoch, ``T`` the run's epochs.

        Always a :class:`~w2reg.schedules.LinearDecay` (a constant is ``start == end``), so
        every method checkpoints the same schedule state.
        """
        schedule = LinearDecay(self.weight, self.final_weight)  # horizon: set every step
        if isinstance(max_epochs, int) and max_epochs > 0:
            schedule.set_epoch(0, max_epochs)  # usable before a trainer is attached
        return schedule

    def options(self, max_epochs: Any = None) -> dict[str, Any]:
        """What :func:`w2reg.adapters._lightning.regularize_class` takes from ``options``."""
        return {"term": self.term, "weight": self.schedule(max_epochs), "method": self.method}

    def as_keys(self) -> dict[str, Any]:
        """The settings under their keys (:data:`W2_KEYS`)."""
        return {
            "w2_term": self.term,
            "w2_weight": self.weight,
            "w2_final_weight": self.final_weight,
            "w2_method": self.method,
        }


def w2_settings(
    given: Mapping[str, Any],
    defaults: Callable[[str], tuple[float, float | None]],
    *,
    prefix: str = "",
) -> W2Settings:
    """The W2 settings from the keys ``given`` (:data:`W2_KEYS`; absent or ``None``: default).

    Args:
        given: ``cfg.method_kwargs`` (current solo-learn) or 1.0.2's constructor keywords.
        defaults: ``defaults(term) -> (a_max, a_min)``; ``a_min`` ``None`` or equal to
            ``a_max`` is a constant default.
        prefix: what the error messages put before a key (``"method_kwargs."``).

    The rule: ``w2_final_weight`` not given is the default's end if the default decays, else
    ``w2_weight`` (a constant default stays constant at the chosen weight).

    Raises:
        ValueError: a weight is not a finite number >= 0, ``w2_term`` not ``"w2"`` or ``"lu"``,
            ``w2_method`` not one of :data:`w2reg.METHODS` (or not ``"auto"`` with ``"lu"``);
            the message names the key.
    """
    term = _given(given, "w2_term")
    term = _check_term("w2" if term is None else term, f"{prefix}w2_term")
    default_start, default_end = defaults(term)
    start = _given(given, "w2_weight")
    start = check_weight(default_start if start is None else start, f"{prefix}w2_weight")
    end = _given(given, "w2_final_weight")
    if end is None:
        constant = default_end is None or default_end == default_start
        end = start if constant else default_end
    end = check_weight(end, f"{prefix}w2_final_weight")
    method = _given(given, "w2_method")
    method = check_method("auto" if method is None else method, f"{prefix}w2_method")
    if term != "w2" and method != "auto":
        raise ValueError(
            f"{prefix}w2_method={method!r} applies to {prefix}w2_term='w2' only, got "
            f"{prefix}w2_term={term!r}"
        )
    return W2Settings(term, start, end, method)
