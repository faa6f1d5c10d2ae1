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
      w2_term: w2            # or lu: Wang & Isola's uniformity instead (default: w2)

Default weights: the one table of :mod:`w2reg.adapters.defaults` (the paper's values and
ours, each on a stated loss scale) times solo-learn's loss scale relative to it,
:data:`SOLO_LOSS_SCALE` (:func:`default_weights` gives the result); given only ``w2_weight``,
a constant default stays constant and a decaying one keeps its end
(:mod:`w2reg.adapters.solo_weights` holds that rule, for both solo-learn APIs).
``register(ALL)`` (what the entry script does) adds ``<name>_w2`` for every method in
``METHODS`` whose projector output is the embedding; :func:`w2_ineligibility` says why the
others (DINO, MAE) are not.

The weight decays linearly per epoch, ``a_t = a_max - t (a_max - a_min) / T`` with ``t`` the
trainer's ``current_epoch`` and ``T`` its ``max_epochs`` (Fang et al., ICLR 2024, Sec. 5).

What a ``_w2`` method adds to its base method's loss is ``a_t * W2(Z)`` (``a_t * L_U(Z)`` with
``w2_term: lu``), where ``Z`` holds the outputs of the online ``projector`` computed with
gradients in the training step, for every crop (large and small), L2-normalised, gathered
across ranks like solo-learn's own losses (``solo.utils.misc.gather``: all-gather with
gradients). Momentum projectors and anything run under ``no_grad`` are not part of it. It logs
``train_w2_uniformity``, ``train_w2_weight`` and ``train_w2_loss`` (``lu``: ``train_lu``,
``train_lu_weight``, ``train_lu_loss``; :func:`log_keys`) with ``on_epoch=True,
sync_dist=True``, adds no parameter or buffer (a ``_w2`` checkpoint loads into the plain class
with ``strict=True``), and keeps its settings and the schedule's state in the checkpoint under
``"w2reg"``: a model loaded or resumed from it computes with the saved settings.

Any other method class, including your own ``BaseMethod`` subclass with a ``projector``, gets
the same treatment from :func:`w2_class`.

Versions (:mod:`w2reg.adapters.solo_api`): the Hydra/``cfg`` API of solo-learn (git tags 1.0.6
to 1.0.8 and main, which all install with the version number 1.0.6) is supported fully. The
2021 PyPI release 1.0.2 (keyword-argument constructors) is supported for :func:`register` /
:func:`w2_class` and the training step: there the W2 keys are constructor keyword arguments
(``w2_weight=...``). Importing this module with any other solo-learn raises ``ImportError``
naming the installed version and the supported range.

The parts: :mod:`~w2reg.adapters.solo_api` (which solo-learn), :mod:`~w2reg.adapters.solo_weights`
(names, default weights, the settings rule), :mod:`~w2reg.adapters.solo_classes` (the class
factory, eligibility); this module registers.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

# solo_api first: the version check, with an error that says what to install
from . import solo_api as _api
from ._lightning import CHECKPOINT_KEY, LOG_TERM, LOG_W2, LOG_WEIGHT
from ._lightning import log_keys as log_keys  # re-exported: the keys of a term's logs
from .solo_api import INSTALL_HINT as INSTALL_HINT
from .solo_api import SUPPORTED_VERSIONS
from .solo_classes import (
    IneligibleMethod,
    add_and_assert_w2_cfg,
    make_class,
    w2_class,
    w2_ineligibility,
)
from .solo_weights import OTHER_METHODS_WEIGHT as OTHER_METHODS_WEIGHT
from .solo_weights import (
    PAPER_METHODS,
    SOLO_LOSS_SCALE,
    SUFFIX,
    DefaultWeights,
    base_method_name,
    default_weights,
)
from .solo_weights import W2_KEYS as W2_KEYS

#: ``"cfg"`` (current solo-learn) or ``"legacy"`` (1.0.2), and the installed version string.
SOLO_API, SOLO_VERSION = _api.SOLO_API, _api.SOLO_VERSION

from solo.methods import METHODS  # noqa: E402  (only after the version check)

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

#: Pass to :func:`register` for every eligible method in ``METHODS`` (what the entry script does).
ALL = "all"


# ----------------------------------------------------------------------------------------
# Registration


_REGISTERED: dict[str, type] = {}


def _w2_variant(method: str) -> type:
    cls = METHODS[method]
    # the paper's eight: the table times solo's loss scale (read from the cfg where it is a
    # key); any other method: OTHER_METHODS_WEIGHT
    defaults = (
        DefaultWeights(method)
        if method in SOLO_LOSS_SCALE
        else DefaultWeights(None, OTHER_METHODS_WEIGHT)
    )
    klass = make_class(cls, defaults, base_method=method, name=f"{cls.__name__}W2")
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
        ValueError: a name is not in ``METHODS`` (the message suggests a close one), is a
            W2 variant's name (the message gives the base name: ``register(["byol"])`` adds
            ``byol_w2``), or its method is not eligible (the message says why).

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
        _check_name(method)
        key = method + SUFFIX
        reason = None if key in _REGISTERED else w2_ineligibility(METHODS[method])
        if reason is not None:
            if not every:
                raise ValueError(f"methods: {method!r}: {reason}")
            if key not in METHODS or isinstance(METHODS[key], IneligibleMethod):
                METHODS[key] = IneligibleMethod(method, reason, PAPER_METHODS[:3])  # type: ignore[assignment]
            continue
        if key not in _REGISTERED:
            _REGISTERED[key] = _w2_variant(method)
        _put(key, _REGISTERED[key], overwrite)
        added[key] = _REGISTERED[key]
    return added


def _check_name(method: Any) -> None:
    """``ValueError`` unless ``method`` names a method in ``METHODS`` (not a ``_w2`` variant)."""
    if not isinstance(method, str):
        raise ValueError(f"methods: names must be strings, got {method!r}")
    if method.endswith(SUFFIX):
        base = base_method_name(method)
        where = "" if base in METHODS else f" (and {base!r} is not in solo.methods.METHODS)"
        raise ValueError(
            f"methods: {method!r} is the name of a W2 variant; register() takes the base "
            f"method's name: register([{base!r}]) adds {method!r}{where}"
        )
    if method not in METHODS:
        close = difflib.get_close_matches(method, [m for m in METHODS if not m.endswith(SUFFIX)])
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"methods: {method!r} is not in solo.methods.METHODS{hint} "
            f"(available: {sorted(m for m in METHODS if not m.endswith(SUFFIX))})"
        )


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
