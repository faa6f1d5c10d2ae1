"""W2 uniformity for solo-learn: one line adds a ``<method>_w2`` variant of every method.

Usage (before solo-learn's ``main_pretrain.py`` builds the model; the entry script
``python -m w2reg.adapters.solo_pretrain`` does exactly this)::

    import w2reg.adapters.solo as w2solo
    w2solo.register()        # METHODS gains align_uniform, zero_cl and "<name>_w2" for all eight

then, in a Hydra config, ``method: barlow_twins_w2`` and optionally::

    method_kwargs:
      w2_weight: 3.0         # a_max, the weight at epoch 0   (default: see below)
      w2_final_weight: 0.0   # a_min, reached at max_epochs   (default: see below)
      w2_method: auto        # how W2 is computed, see w2reg.w2_uniformity (default: auto)

Default weights: the one table of :mod:`w2reg.adapters.defaults` (the paper's values and
ours, each on a stated loss scale) times solo-learn's loss scale relative to it,
:data:`SOLO_LOSS_SCALE` (:func:`default_weights` gives the result). ``register(ALL)`` (what
the entry script does) adds ``<name>_w2`` for every method in ``METHODS`` whose projector
output is the embedding; :func:`w2_ineligibility` says why the others (DINO, MAE) are not.

The weight decays linearly per epoch, ``a_t = a_max - t (a_max - a_min) / T`` with ``t`` the
trainer's ``current_epoch`` and ``T`` its ``max_epochs`` (Fang et al., ICLR 2024, Sec. 5).

What a ``_w2`` method adds to its base method's loss is ``a_t * W2(Z)``, where ``Z`` holds
the outputs of the online ``projector`` computed with gradients in the training step, for
every crop (large and small), L2-normalised, gathered across ranks like solo-learn's own
losses (``solo.utils.misc.gather``: all-gather with gradients). Momentum projectors and
anything run under ``no_grad`` are not part of it. It logs ``train_w2_uniformity``,
``train_w2_weight`` and ``train_w2_loss`` with ``on_epoch=True, sync_dist=True``, adds no
parameter or buffer (a ``_w2`` checkpoint loads into the plain class with ``strict=True``), and
keeps the schedule's state in the checkpoint under ``"w2reg"``.

Any other method class, including your own ``BaseMethod`` subclass with a ``projector``, gets
the same treatment from :func:`w2_class`.

Versions: the Hydra/``cfg`` API of solo-learn (git tags 1.0.6 to 1.0.8 and main, which all
install with the version number 1.0.6) is supported fully. The 2021 PyPI release 1.0.2
(keyword-argument constructors) is supported for :func:`register` / :func:`w2_class` and the
training step: there the W2 keys are constructor keyword arguments (``w2_weight=...``).
Importing this module with any other solo-learn raises ``ImportError`` naming the installed
version and the supported range.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch import nn

from w2reg._methods import check_method
from w2reg.schedules import LinearDecay, Schedule

from . import defaults as _defaults
from ._lightning import CHECKPOINT_KEY, LOG_TERM, LOG_W2, LOG_WEIGHT, regularize_class

__all__ = [
    "ALL",
    "CHECKPOINT_KEY",
    "LOG_TERM",
    "LOG_W2",
    "LOG_WEIGHT",
    "PAPER_METHODS",
    "SOLO_API",
    "SOLO_LOSS_SCALE",
    "SOLO_VERSION",
    "SUFFIX",
    "SUPPORTED_VERSIONS",
    "add_and_assert_w2_cfg",
    "base_method_name",
    "default_weights",
    "register",
    "w2_class",
    "w2_ineligibility",
]

#: Registered name of a W2 variant: ``<solo method name> + SUFFIX`` (``barlow_twins_w2``).
SUFFIX = "_w2"

#: What this adapter supports, as printed in the ImportError for anything else.
SUPPORTED_VERSIONS = (
    "solo-learn with the Hydra cfg API (git tags 1.0.6, 1.0.7, 1.0.8 and main, all of which "
    "install as version 1.0.6), or solo-learn 1.0.2 from PyPI (registration and training step)"
)

#: How to install current solo-learn (it is not on PyPI), as the ImportErrors print it.
INSTALL_HINT = (
    "install it from source: pip install 'setuptools<81' wheel && pip install "
    "--no-build-isolation git+https://github.com/vturrisi/solo-learn (and w2reg's extra: "
    "pip install -e '.[solo]' in a clone of w2reg, 'w2reg[solo]' once it is on PyPI); "
    "w2reg's documentation, page Install (docs/install.md in its source repository), has the "
    "steps and the versions we test"
)


def _installed_version() -> str:
    for dist in ("solo-learn", "solo"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _detect() -> tuple[str, str]:
    try:
        from solo.methods import base as solo_base
    except ImportError as err:
        error = ModuleNotFoundError if isinstance(err, ModuleNotFoundError) else ImportError
        raise error(
            f"w2reg.adapters.solo needs solo-learn ({SUPPORTED_VERSIONS}); importing it "
            f"failed: {err}. To {INSTALL_HINT}",
            name=err.name,
        ) from err
    version = _installed_version()
    base = solo_base.BaseMethod
    if hasattr(base, "add_and_assert_specific_cfg"):
        return "cfg", version
    if version == "1.0.2" and hasattr(base, "add_model_specific_args"):
        return "legacy", version
    raise ImportError(
        f"w2reg.adapters.solo: installed solo-learn {version} is not supported; supported: "
        f"{SUPPORTED_VERSIONS}. To use the current one, {INSTALL_HINT}"
    )


#: ``"cfg"`` (current solo-learn) or ``"legacy"`` (1.0.2), and the installed version string.
SOLO_API, SOLO_VERSION = _detect()

from solo.methods import METHODS  # noqa: E402  (only after the version check)


def _solo_name(key: str) -> str:
    """solo-learn's name of a :mod:`~w2reg.adapters.defaults` key (``mocov2`` -> ``mocov2plus``)."""
    aliases = [a for a, k in _defaults.ALIASES.items() if k == key and a in METHODS]
    return aliases[0] if aliases else key


#: The eight methods of the paper's tables, by their solo-learn names
#: (:data:`w2reg.adapters.defaults.PAPER_METHODS` is the list; this is its spelling here).
PAPER_METHODS: tuple[str, ...] = tuple(_solo_name(k) for k in _defaults.PAPER_METHODS)

#: solo-learn's loss for each paper method as a multiple of the reference loss of
#: :data:`w2reg.adapters.defaults.DEFAULTS` (read from solo-learn's ``training_step``s; the same
#: in 1.0.2 and main). A number, or the cfg key whose value is the factor. The default W2
#: weights are the table's times this factor, so W2 keeps the reference ratio to the loss.
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

#: Default weight (constant) of ``<name>_w2`` for methods outside the paper's eight: no
#: tuned value exists; set ``method_kwargs.w2_weight``.
OTHER_METHODS_WEIGHT = 1.0

#: Pass to :func:`register` for every eligible method in ``METHODS`` (what the entry script does).
ALL = "all"


def _scale_factor(method: str, cfg: Any) -> float:
    scale = SOLO_LOSS_SCALE[method]
    if not isinstance(scale, str):
        return float(scale)
    if cfg is None:
        raise ValueError(
            f"the default W2 weight of {method}_w2 depends on the cfg ({scale}); pass cfg"
        )
    if SOLO_API == "legacy":  # 1.0.2: a constructor keyword (scale_loss=...)
        return float(cfg[scale.rsplit(".", 1)[-1]])
    from omegaconf import OmegaConf

    return float(OmegaConf.select(cfg, scale))


def default_weights(method: str, cfg: Any = None) -> tuple[float, float]:
    """Default ``(w2_weight, w2_final_weight)`` of ``<method>_w2`` on solo-learn's loss scale.

    The table's values (:data:`w2reg.adapters.defaults.DEFAULTS`) times
    :data:`SOLO_LOSS_SCALE`; ``(1.0, 1.0)`` for methods outside the paper's eight.

    Args:
        method: a solo-learn name, with or without ``_w2`` (``"mocov2plus"``).
        cfg: the method's validated cfg; needed where the factor is a cfg key (Barlow Twins'
            ``method_kwargs.scale_loss``). solo-learn 1.0.2: the constructor's keywords.

    Example: ``default_weights("mocov2plus") == (0.5, 0.5)`` (the paper's 1.0 on its summed
    loss, solo-learn averages the two directions).
    """
    name = base_method_name(method)
    if name not in SOLO_LOSS_SCALE:
        return OTHER_METHODS_WEIGHT, OTHER_METHODS_WEIGHT
    start, end = _defaults.default_weights(name)
    factor = _scale_factor(name, cfg)
    return start * factor, end * factor


def base_method_name(method: str) -> str:
    """The solo-learn name a ``_w2`` name stands for: ``"mocov2plus_w2"`` -> ``"mocov2plus"``.

    Backbone factories are given this name (solo-learn picks e.g. its MoCo v3 / MAE ViT by
    ``cfg.method``), so a W2 variant builds exactly the backbone of its base method.
    """
    method = str(method)
    return method[: -len(SUFFIX)] if method.endswith(SUFFIX) else method


# ----------------------------------------------------------------------------------------
# Config keys (method_kwargs.w2_weight / w2_final_weight)


def _check_weight(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"method_kwargs.{key} must be a non-negative number, got {value!r} "
            f"({type(value).__name__})"
        )
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"method_kwargs.{key} must be a finite number >= 0, got {value!r}")
    return value


def add_and_assert_w2_cfg(cfg: Any, weight: float = 1.0, final_weight: float | None = None) -> Any:
    """Fill in and validate ``cfg.method_kwargs.w2_weight`` / ``w2_final_weight`` /
    ``w2_method`` (in place).

    Args:
        cfg: solo-learn's ``omegaconf.DictConfig`` (``method_kwargs`` may be absent).
        weight: default ``a_max`` when the cfg has no ``w2_weight``.
        final_weight: default ``a_min`` when the cfg has no ``w2_final_weight``. ``None`` or
            equal to ``weight`` (a constant default) means "equal to ``w2_weight``", so
            setting only ``w2_weight`` keeps a constant weight constant; a decaying default
            (Barlow Twins: 30 -> 0) keeps its end value.

    ``w2_method`` (default ``"auto"``) is one of :data:`w2reg.METHODS`, see
    :func:`w2reg.w2_uniformity`.

    Returns:
        ``cfg``, with both weights set to floats and ``w2_method`` to a string.

    Raises:
        ValueError: a weight is not a finite number >= 0, or ``w2_method`` is not a method
            name (the message names the key).
    """
    from omegaconf import OmegaConf

    if cfg.get("method_kwargs", None) is None:
        cfg.method_kwargs = {}
    kwargs = cfg.method_kwargs
    w = kwargs.get("w2_weight", None)
    if w is None or OmegaConf.is_missing(kwargs, "w2_weight"):
        w = weight
    w = _check_weight(w, "w2_weight")
    fw = kwargs.get("w2_final_weight", None)
    if fw is None:
        # a constant default stays constant at the chosen w2_weight; a decaying one keeps its end
        fw = w if final_weight is None or final_weight == weight else final_weight
    fw = _check_weight(fw, "w2_final_weight")
    method = kwargs.get("w2_method", None)
    method = "auto" if method is None or OmegaConf.is_missing(kwargs, "w2_method") else method
    kwargs.w2_weight = w
    kwargs.w2_final_weight = fw
    kwargs.w2_method = check_method(method, "method_kwargs.w2_method")
    return cfg


def _schedule(start: float, end: float, max_epochs: Any) -> Schedule:
    # Always a LinearDecay (a constant is start == end, which needs no horizon), so every
    # method checkpoints the same schedule state: epoch, total_epochs, start, end, epochs.
    schedule = LinearDecay(start, end)  # horizon: trainer.max_epochs, set every step
    if isinstance(max_epochs, int) and max_epochs > 0:
        schedule.set_epoch(0, max_epochs)  # usable before a trainer is attached
    return schedule


def _weight_from_cfg(model: nn.Module) -> Schedule:
    kwargs = model.cfg.method_kwargs
    return _schedule(kwargs.w2_weight, kwargs.w2_final_weight, model.cfg.get("max_epochs"))


def _method_from_cfg(model: nn.Module) -> str:
    return str(model.cfg.method_kwargs.get("w2_method", "auto"))


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

    Live, so backbones added to solo's table after :func:`register` are found too.
    """

    def __init__(self, owner: type, base_method: str | None) -> None:
        self.owner = owner
        self.base_method = base_method

    def __getitem__(self, key: str) -> _BackboneForBase:
        return _BackboneForBase(self.owner._BACKBONES[key], self.base_method)

    def __iter__(self) -> Any:
        return iter(self.owner._BACKBONES)

    def __len__(self) -> int:
        return len(self.owner._BACKBONES)


def _check_solo_class(cls: Any) -> None:
    from solo.methods.base import BaseMethod

    if not isinstance(cls, type) or not issubclass(cls, BaseMethod):
        raise TypeError(f"cls must be a solo.methods.base.BaseMethod subclass, got {cls!r}")


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
    (its own checks first, then the two W2 keys). solo-learn 1.0.2: ``w2_weight`` and
    ``w2_final_weight`` are keyword arguments of the constructor.
    """
    _check_solo_class(cls)
    _check_weight(weight, "w2_weight")
    if final_weight is not None:
        _check_weight(final_weight, "w2_final_weight")
    if SOLO_API == "legacy":
        return _legacy_w2_class(cls, weight, final_weight, name=name)

    klass = regularize_class(
        cls,
        head="projector",
        weight=_weight_from_cfg,
        gather_distributed=True,
        name=name,
        method=_method_from_cfg,
    )
    parent_check = cls.add_and_assert_specific_cfg

    def add_and_assert_specific_cfg(cfg: Any) -> Any:
        """The base method's checks and defaults, then ``method_kwargs.w2_weight``,
        ``w2_final_weight`` and ``w2_method`` (see
        :func:`w2reg.adapters.solo.add_and_assert_w2_cfg`)."""
        cfg = parent_check(cfg)
        return add_and_assert_w2_cfg(cfg, weight, final_weight)

    klass.add_and_assert_specific_cfg = staticmethod(add_and_assert_specific_cfg)
    if isinstance(getattr(cls, "_BACKBONES", None), Mapping):
        klass._BACKBONES = _BackbonesForBase(cls, base_method)
    klass.w2_defaults = (weight, final_weight)
    return klass


def _legacy_w2_class(
    cls: type, weight: float, final_weight: float | None, *, name: str | None
) -> type:
    """solo-learn 1.0.2: the W2 settings are constructor keyword arguments."""

    def weight_from_kwargs(model: nn.Module) -> Schedule:
        start, end = model._w2_settings
        return _schedule(start, end, getattr(model, "max_epochs", None))

    Regularized = regularize_class(
        cls, head="projector", weight=weight_from_kwargs, gather_distributed=True, name=name
    )

    class LegacyW2(Regularized):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            start = _check_weight(kwargs.pop("w2_weight", weight), "w2_weight")
            end = kwargs.pop("w2_final_weight", None)
            end = final_weight if end is None else end
            end = start if end is None else _check_weight(end, "w2_final_weight")
            object.__setattr__(self, "_w2_settings", (start, end))
            super().__init__(*args, **kwargs)

    LegacyW2.__name__ = LegacyW2.__qualname__ = Regularized.__name__
    LegacyW2.__module__ = Regularized.__module__
    LegacyW2.__doc__ = Regularized.__doc__
    LegacyW2.w2_defaults = (weight, final_weight)
    return LegacyW2


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

    def __init__(self, method: str, reason: str) -> None:
        self.method = method
        self.reason = reason

    def message(self) -> str:
        return (
            f"method={self.method}{SUFFIX}: the W2 term cannot be added to {self.method!r}: "
            f"{self.reason}. Use a method whose projector output is the embedding, e.g. "
            f"{', '.join(m + SUFFIX for m in PAPER_METHODS[:3])}, ..."
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(self.message())

    def add_and_assert_specific_cfg(self, cfg: Any) -> Any:
        raise ValueError(self.message())

    def __repr__(self) -> str:
        return f"IneligibleMethod({self.method!r})"


# ----------------------------------------------------------------------------------------
# Registration


_REGISTERED: dict[str, type] = {}


def _with_cfg_scaled_defaults(klass: type, method: str, start: float, end: float) -> None:
    """Make ``klass``'s default weights ``(start, end) * <the cfg key SOLO_LOSS_SCALE names>``."""
    key = SOLO_LOSS_SCALE[method]
    assert isinstance(key, str)
    if SOLO_API == "legacy":  # 1.0.2: the factor is a constructor keyword (scale_loss=...)
        init = klass.__init__

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            factor = _scale_factor(method, kwargs)
            kwargs.setdefault("w2_weight", start * factor)
            if start != end:
                kwargs.setdefault("w2_final_weight", end * factor)
            init(self, *args, **kwargs)

        klass.__init__ = __init__
        return

    from omegaconf import OmegaConf

    check = klass.add_and_assert_specific_cfg  # the base's checks, then the W2 keys
    base_check = METHODS[method].add_and_assert_specific_cfg

    def add_and_assert_specific_cfg(cfg: Any) -> Any:
        cfg = base_check(cfg)  # fills in solo's default of the factor (idempotent)
        factor = _scale_factor(method, cfg)
        kwargs = cfg.method_kwargs
        if kwargs.get("w2_weight", None) is None or OmegaConf.is_missing(kwargs, "w2_weight"):
            kwargs.w2_weight = start * factor
        if start != end and kwargs.get("w2_final_weight", None) is None:
            kwargs.w2_final_weight = end * factor
        return check(cfg)

    add_and_assert_specific_cfg.__doc__ = check.__doc__
    klass.add_and_assert_specific_cfg = staticmethod(add_and_assert_specific_cfg)


def _w2_variant(method: str) -> type:
    cls = METHODS[method]
    start = end = OTHER_METHODS_WEIGHT
    if method in SOLO_LOSS_SCALE:
        start, end = _defaults.default_weights(method)
    scale = SOLO_LOSS_SCALE.get(method, 1.0)
    factor = 1.0 if isinstance(scale, str) else scale
    klass = w2_class(
        cls, start * factor, end * factor, base_method=method, name=f"{cls.__name__}W2"
    )
    if isinstance(scale, str):
        _with_cfg_scaled_defaults(klass, method, start, end)
    # Importable by name, so the class pickles (ddp_spawn, multiprocessing); in a process
    # where register() never ran, the module's __getattr__ registers it on demand.
    klass.__module__ = __name__
    klass.__qualname__ = klass.__name__
    globals()[klass.__name__] = klass
    return klass


def register(
    methods: Iterable[str] | str | None = None, *, overwrite: bool = False
) -> dict[str, type]:
    """Add the W2 variants (and AlignUniform, Zero-CL) to ``solo.methods.METHODS``.

    Args:
        methods: solo method names to add a ``<name>_w2`` variant for. Default: the eight
            of :data:`PAPER_METHODS` (those present in the installed solo-learn).
            :data:`ALL`: every method in ``METHODS`` at the time of the call (solo's and
            yours) that :func:`w2_ineligibility` accepts, and an :class:`IneligibleMethod`
            placeholder under ``<name>_w2`` for the others, so that selecting one fails with
            the reason. Names outside the paper's eight get weight 1.0 unless the cfg says
            otherwise (``method_kwargs.w2_weight``).
        overwrite: replace entries that already exist and are not ours.

    Returns:
        ``{registered name: class}`` of everything this call made available.

    Raises:
        ValueError: a name is not in ``METHODS``, is already a W2 variant, or its method is
            not eligible (the message says why).

    Idempotent: calling it again returns the same classes. On current solo-learn it first
    registers ``align_uniform`` and ``zero_cl`` (:mod:`w2reg.adapters.solo_methods`).
    """
    added: dict[str, type] = {}
    if SOLO_API == "cfg":
        from .solo_methods import AlignUniform, ZeroCL

        for key, klass in (("align_uniform", AlignUniform), ("zero_cl", ZeroCL)):
            _put(key, klass, overwrite)
            added[key] = klass
    every = isinstance(methods, str) and methods == ALL
    if isinstance(methods, str) and not every:
        raise ValueError(f"methods must be a list of names, None or {ALL!r}, got {methods!r}")
    if every:
        names = [m for m in METHODS if not m.endswith(SUFFIX) and _is_method_entry(m)]
    elif methods is None:
        names = [m for m in PAPER_METHODS if m in METHODS]
    else:
        names = list(methods)  # type: ignore[arg-type]
    for method in names:
        if method not in METHODS:
            raise ValueError(
                f"methods: {method!r} is not in solo.methods.METHODS; available: {sorted(METHODS)}"
            )
        if method.endswith(SUFFIX):
            raise ValueError(f"methods: {method!r} is already a W2 variant")
        key = method + SUFFIX
        reason = None if key in _REGISTERED else w2_ineligibility(METHODS[method])
        if reason is not None:
            if not every:
                raise ValueError(f"methods: {method!r}: {reason}")
            if key not in METHODS or isinstance(METHODS[key], IneligibleMethod):
                METHODS[key] = IneligibleMethod(method, reason)  # type: ignore[assignment]
            continue
        if key not in _REGISTERED:
            _REGISTERED[key] = _w2_variant(method)
        _put(key, _REGISTERED[key], overwrite)
        added[key] = _REGISTERED[key]
    return added


def _is_method_entry(name: str) -> bool:
    return isinstance(METHODS[name], type)


def _put(key: str, klass: type, overwrite: bool) -> None:
    current = METHODS.get(key)
    if (
        current is not None
        and current is not klass
        and not isinstance(current, IneligibleMethod)
        and not overwrite
    ):
        raise ValueError(
            f"solo.methods.METHODS[{key!r}] is already {current!r}; pass overwrite=True to "
            "replace it"
        )
    METHODS[key] = klass


def __getattr__(name: str) -> Any:
    """``<Class>W2`` registered on demand, so a pickled ``_w2`` model loads in a fresh process.

    ``ddp_spawn`` and ``multiprocessing`` unpickle the model in processes in which
    :func:`register` never ran: there ``w2reg.adapters.solo.VICRegW2`` is looked up here. The
    modules the entry script was told to ``--import`` (``W2REG_SOLO_IMPORT``) are imported
    first, so W2 variants of your own methods are found too.
    """
    if name.endswith("W2") and not name.startswith("_"):
        from .solo_pretrain import import_user_modules

        import_user_modules()
        for method, cls in list(METHODS.items()):
            if (
                isinstance(cls, type)
                and f"{cls.__name__}W2" == name
                and not method.endswith(SUFFIX)
                and w2_ineligibility(cls) is None
            ):
                register([method])
                return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
