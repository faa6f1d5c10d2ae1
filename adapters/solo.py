"""W2 uniformity for solo-learn: one line adds a ``<method>_w2`` variant of every method.

Usage (before solo-learn's ``main_pretrain.py`` builds the model; the entry script
``python -m w2reg.adapters.solo_pretrain`` does exactly this)::

    import w2reg.adapters.solo as w2solo
    w2solo.register()        # METHODS gains align_uniform, zero_cl and "<name>_w2" for all eight

then, in a Hydra config, ``method: barlow_twins_w2`` and optionally::

    method_kwargs:
      w2_weight: 30.0        # a_max, the weight at epoch 0   (default: the paper's, per method)
      w2_final_weight: 0.0   # a_min, reached at max_epochs   (default: the paper's, per method)
      w2_method: auto        # how W2 is computed, see w2reg.w2_uniformity (default: auto)

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
from w2reg.schedules import Constant, LinearDecay, Schedule

from ._lightning import CHECKPOINT_KEY, LOG_TERM, LOG_W2, LOG_WEIGHT, regularize_class

__all__ = [
    "CHECKPOINT_KEY",
    "DEFAULT_WEIGHTS",
    "LOG_TERM",
    "LOG_W2",
    "LOG_WEIGHT",
    "PAPER_METHODS",
    "SOLO_API",
    "SOLO_VERSION",
    "SUFFIX",
    "SUPPORTED_VERSIONS",
    "add_and_assert_w2_cfg",
    "base_method_name",
    "register",
    "w2_class",
]

#: Registered name of a W2 variant: ``<solo method name> + SUFFIX`` (``barlow_twins_w2``).
SUFFIX = "_w2"

#: What this adapter supports, as printed in the ImportError for anything else.
SUPPORTED_VERSIONS = (
    "solo-learn with the Hydra cfg API (git tags 1.0.6, 1.0.7, 1.0.8 and main, all of which "
    "install as version 1.0.6), or solo-learn 1.0.2 from PyPI (registration and training step)"
)

#: The eight methods of the paper's tables, by their solo-learn names.
PAPER_METHODS = (
    "simclr",
    "mocov2plus",
    "nnclr",
    "byol",
    "simsiam",
    "align_uniform",
    "barlow_twins",
    "zero_cl",
)

#: Default ``(w2_weight, w2_final_weight)`` per method. From the paper (Sec. 5, Table 5):
#: mocov2plus 1 -> 1, byol 0.2 -> 0.2, barlow_twins 30 -> 0, zero_cl 30 -> 30. The paper gives
#: none for the other four; ours: the InfoNCE methods (simclr, nnclr) and align_uniform, whose
#: losses are on the scale of MoCo v2's, take MoCo v2's 1.0; simsiam, a predictor + stop-grad
#: method whose cosine loss is on BYOL's scale, takes BYOL's 0.2. Methods outside this table
#: default to 1.0 unless the cfg says otherwise.
DEFAULT_WEIGHTS: dict[str, tuple[float, float]] = {
    "simclr": (1.0, 1.0),
    "mocov2plus": (1.0, 1.0),
    "nnclr": (1.0, 1.0),
    "byol": (0.2, 0.2),
    "simsiam": (0.2, 0.2),
    "align_uniform": (1.0, 1.0),
    "barlow_twins": (30.0, 0.0),
    "zero_cl": (30.0, 30.0),
}


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
            f"failed: {err}",
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
        f"{SUPPORTED_VERSIONS}. Install the current one from source: "
        "pip install 'setuptools<81' wheel && pip install --no-build-isolation "
        "git+https://github.com/vturrisi/solo-learn"
    )


#: ``"cfg"`` (current solo-learn) or ``"legacy"`` (1.0.2), and the installed version string.
SOLO_API, SOLO_VERSION = _detect()

from solo.methods import METHODS  # noqa: E402  (only after the version check)


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
    if start == end:
        schedule: Schedule = Constant(start)
    else:
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
# Registration


_REGISTERED: dict[str, type] = {}


def register(methods: Iterable[str] | None = None, *, overwrite: bool = False) -> dict[str, type]:
    """Add the W2 variants (and AlignUniform, Zero-CL) to ``solo.methods.METHODS``.

    Args:
        methods: solo method names to add a ``<name>_w2`` variant for. Default: the eight
            of :data:`PAPER_METHODS` (those present in the installed solo-learn). Other names
            in ``METHODS`` are accepted if their class has an online ``projector``; their
            default weight is 1.0 (set ``method_kwargs.w2_weight``).
        overwrite: replace entries that already exist and are not ours.

    Returns:
        ``{registered name: class}`` of everything this call made available.

    Idempotent: calling it again returns the same classes. On current solo-learn it first
    registers ``align_uniform`` and ``zero_cl`` (:mod:`w2reg.adapters.solo_methods`).
    """
    added: dict[str, type] = {}
    if SOLO_API == "cfg":
        from .solo_methods import AlignUniform, ZeroCL

        for key, klass in (("align_uniform", AlignUniform), ("zero_cl", ZeroCL)):
            _put(key, klass, overwrite)
            added[key] = klass
    names = list(methods) if methods is not None else [m for m in PAPER_METHODS if m in METHODS]
    for method in names:
        if method not in METHODS:
            raise ValueError(
                f"methods: {method!r} is not in solo.methods.METHODS; available: {sorted(METHODS)}"
            )
        if method.endswith(SUFFIX):
            raise ValueError(f"methods: {method!r} is already a W2 variant")
        key = method + SUFFIX
        if key not in _REGISTERED:
            start, end = DEFAULT_WEIGHTS.get(method, (1.0, None))
            klass = w2_class(
                METHODS[method],
                start,
                end,
                base_method=method,
                name=f"{METHODS[method].__name__}W2",
            )
            # Importable by name, so the class pickles (ddp_spawn, multiprocessing).
            klass.__module__ = __name__
            klass.__qualname__ = klass.__name__
            globals()[klass.__name__] = klass
            _REGISTERED[key] = klass
        _put(key, _REGISTERED[key], overwrite)
        added[key] = _REGISTERED[key]
    return added


def _put(key: str, klass: type, overwrite: bool) -> None:
    current = METHODS.get(key)
    if current is not None and current is not klass and not overwrite:
        raise ValueError(
            f"solo.methods.METHODS[{key!r}] is already {current!r}; pass overwrite=True to "
            "replace it"
        )
    METHODS[key] = klass
