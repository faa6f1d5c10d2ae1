"""spt's default W2 weights: the one table of :mod:`w2reg.adapters.defaults` times the scale of
spt's loss of each method against the table's reference loss.

Pure data and arithmetic on module attributes: importing it needs neither stable-pretraining nor
Lightning (the method classes are recognised by their names). :mod:`w2reg.adapters.spt`
re-exports everything here; the guide: docs/spt.md, "Default weights".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from torch import Tensor, nn

from w2reg.schedules import LinearDecay, WeightLike
from w2reg.terms import TermLike

from . import defaults as _defaults

__all__ = [
    "METHODS",
    "REFERENCE_TEMPERATURE",
    "SPT_LOSS_SCALE",
    "LossScale",
    "default_weight",
    "detect_method",
    "loss_scale",
]

#: The temperature of the contrastive reference losses of :mod:`w2reg.adapters.defaults`
#: (SimCLR, MoCo v2, NNCLR: "at T = 0.2"). An InfoNCE at temperature ``T`` holds the
#: alignment as ``L_A / (2 T)`` (Wang & Isola), so its scale against the reference is
#: ``REFERENCE_TEMPERATURE / T``.
REFERENCE_TEMPERATURE = 0.2


@dataclass(frozen=True)
class LossScale:
    """spt's loss of one method as a multiple of the reference loss of its
    :data:`~w2reg.adapters.defaults.DEFAULTS` entry.

    Attributes:
        factor: the multiple at the reference temperature (or for a loss without one).
        temperature: dotted attribute of the module that holds the loss's temperature
            ``T`` (then the multiple is ``factor * REFERENCE_TEMPERATURE / T``), or ``None``.
        why: where the factor comes from (spt 0.1.7 and 0.1.8 compute these losses alike).
    """

    factor: float
    temperature: str | None
    why: str


#: The methods of spt with a default W2 weight (keys of :data:`w2reg.adapters.defaults.DEFAULTS`)
#: and the scale of spt's loss against the table's reference loss, read from spt's losses
#: (``stable_pretraining/losses/joint_embedding.py``, ``forward.py``, ``methods/*.py``).
SPT_LOSS_SCALE: Mapping[str, LossScale] = MappingProxyType(
    {
        "simclr": LossScale(
            1.0,
            "simclr_loss.temperature",
            "NTXEntLoss(z1, z2): one InfoNCE averaged over the 2B anchors, the reference's "
            "form; at temperature T it is 0.2 / T times the reference at T = 0.2",
        ),
        "mocov2": LossScale(
            0.5,
            "temperature",
            "methods.MoCov2: one directional InfoNCE(q(view1), k(view2)) against the queue; "
            "the reference sums both directions",
        ),
        "nnclr": LossScale(
            1.0,
            "nnclr_loss.temperature",
            "(NTXEntLoss(p1, nn2) + NTXEntLoss(p2, nn1)) / 2: the reference's average of the "
            "two directions (NTXEntLoss(z1, z2) while the support set is empty)",
        ),
        "byol": LossScale(
            0.5,
            None,
            "(BYOLLoss(p1, t2) + BYOLLoss(p2, t1)) / 2 with BYOLLoss the batch mean of "
            "2 - 2 cos: half the reference's sum over both directions",
        ),
        "simsiam": LossScale(
            0.25,
            None,
            "methods.SimSiam: (-cos(p1, z2) - cos(p2, z1)) / 2, a quarter of the gradient of "
            "the reference's sum of 2 - 2 cos over both directions",
        ),
        "barlow_twins": LossScale(
            1.0,
            None,
            "BarlowTwinsLoss: sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2, unscaled, as "
            "the reference (the paper's code)",
        ),
    }
)

#: spt's method classes and forward functions this binding knows, by their key here
#: (:data:`SPT_LOSS_SCALE` has the ones with a default weight; VICReg needs ``weight=``).
METHODS: tuple[str, ...] = (*SPT_LOSS_SCALE, "vicreg")

#: spt's method class names -> keys of :data:`METHODS`.
_CLASSES = MappingProxyType(
    {
        "SimCLR": "simclr",
        "MoCov2": "mocov2",
        "NNCLR": "nnclr",
        "BYOL": "byol",
        "SimSiam": "simsiam",
        "BarlowTwins": "barlow_twins",
        "VICReg": "vicreg",
    }
)

#: The loss attribute each of spt's forward functions requires -> keys of :data:`METHODS`.
_LOSSES = MappingProxyType(
    {
        "simclr_loss": "simclr",
        "nnclr_loss": "nnclr",
        "byol_loss": "byol",
        "barlow_loss": "barlow_twins",
        "vicreg_loss": "vicreg",
    }
)


def _key(ssl_method: str) -> str:
    """``ssl_method`` as a key of :data:`METHODS` (``"MoCov2"``, ``"mocov2plus"`` too)."""
    if not isinstance(ssl_method, str):
        raise ValueError(f"ssl_method must be a method name, got {ssl_method!r}")
    if ssl_method in _CLASSES:
        return _CLASSES[ssl_method]
    key = ssl_method.lower().replace("-", "_")
    key = _defaults.ALIASES.get(key, key)
    if key not in METHODS:
        raise ValueError(
            f"ssl_method={ssl_method!r}: w2reg knows spt's {list(METHODS)}; for another "
            "method give the weight (W2Regularizer(weight=...))"
        )
    return key


def detect_method(module: nn.Module) -> str | None:
    """The key of :data:`METHODS` of an ``spt.Module``, or ``None`` if not recognised.

    A method class (or a subclass of one) by its class; a module built from a forward
    function by the loss that function requires (``simclr_loss``, ``byol_loss``,
    ``nnclr_loss``, ``barlow_loss``, ``vicreg_loss``: exactly one of them).
    """
    for klass in type(module).__mro__:
        if klass.__module__.startswith("stable_pretraining.methods") and klass.__name__ in _CLASSES:
            return _CLASSES[klass.__name__]
    found = {
        key for attr, key in _LOSSES.items() if isinstance(getattr(module, attr, None), nn.Module)
    }
    return found.pop() if len(found) == 1 else None


def loss_scale(ssl_method: str, module: nn.Module | None = None) -> float:
    """spt's loss of ``ssl_method`` as a multiple of the reference loss (:data:`SPT_LOSS_SCALE`).

    Where the loss has a temperature (SimCLR, MoCo v2, NNCLR) it is read from ``module``.

    Raises:
        ValueError: no scale for this method (give the weight), or no ``module`` to read the
            temperature from.
    """
    key = _key(ssl_method)
    if key not in SPT_LOSS_SCALE:
        raise ValueError(
            f"{ssl_method!r} has no default W2 weight (w2reg's table, "
            "w2reg.adapters.defaults, has none for it): give the weight, "
            "W2Regularizer(weight=...)"
        )
    scale = SPT_LOSS_SCALE[key]
    if scale.temperature is None:
        return scale.factor
    if module is None:
        raise ValueError(f"the loss scale of {key} depends on its temperature: pass the module")
    obj: Any = module
    for part in scale.temperature.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, Tensor) and obj.numel() == 1 and obj.device.type == "cpu":
        obj = float(obj)
    if isinstance(obj, bool) or not isinstance(obj, (int, float)) or not obj > 0:
        raise ValueError(
            f"the default weight of {key} needs the loss temperature "
            f"{type(module).__name__}.{scale.temperature}, a number > 0, got {obj!r}; give "
            "the weight (W2Regularizer(weight=...))"
        )
    return scale.factor * REFERENCE_TEMPERATURE / float(obj)


def default_weight(
    ssl_method: str,
    module: nn.Module | None = None,
    term: TermLike = "w2",
    *,
    epochs: int | None = None,
) -> WeightLike:
    """The default weight of ``term`` for spt's ``ssl_method``: the table's times spt's scale.

    A number, or a :class:`w2reg.LinearDecay` (Barlow Twins: 30 -> 0) over ``epochs``
    (``None``: the run's planned epochs).

    Example:
        >>> from w2reg.adapters.spt_weights import default_weight
        >>> default_weight("byol"), default_weight("simsiam")  # the paper's 0.2, spt's scales
        (0.1, 0.05)
        >>> default_weight("barlow_twins")
        LinearDecay(start=30.0, end=0.0, epochs=None)

    Raises:
        ValueError: a method or term without a default (the message says to give the weight).
    """
    key = _key(ssl_method)
    factor = loss_scale(key, module)
    try:
        start, end = _defaults.default_weights(key, term)
    except ValueError as err:
        raise ValueError(
            f"term {term!r} has no default weight: give the weight, W2Regularizer(weight=...)"
        ) from err
    start, end = round(start * factor, 12), round(end * factor, 12)
    return start if start == end else LinearDecay(start, end, epochs=epochs)
