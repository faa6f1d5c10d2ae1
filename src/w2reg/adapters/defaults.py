"""The paper's eight methods and their default W2 weights: one table, used by both adapters.

Fang et al. (ICLR 2024) train eight methods; for four of them they publish the weight of the
W2 term, ``a_t = a_max - t (a_max - a_min) / T`` per epoch (paper Sec. 5; the reference code's
run scripts, github.com/statsle/WassersteinSSL). :data:`DEFAULTS` holds all eight, each as
``(a_max, a_min)`` **on a stated loss scale**: a W2 weight means nothing without the loss it is
added to. The scale is the paper's code where it exists (MoCo v2, BYOL, Barlow Twins) and the
one written in each entry otherwise; :mod:`w2reg.adapters.lightly_methods` builds its models
on exactly these scales, so its defaults are these numbers. An adapter whose loss is ``c``
times an entry's reference loss uses ``c`` times the entry's weights, which keeps the ratio of
the two gradients (and so, under LARS, the training) the paper's; solo-learn's factors are
:data:`w2reg.adapters.solo.SOLO_LOSS_SCALE`.

The argument for every value that is ours (the paper gives none for SimCLR, NNCLR, SimSiam and
AlignUniform) is written here, once, in that entry's ``why``. The common yardstick: by Wang &
Isola's decomposition (ICML 2020), one directional InfoNCE term at temperature ``T`` contains
the alignment ``L_A = ||z - z'||^2`` of L2-normalised projections as ``L_A / (2 T)`` per anchor.
The paper's MoCo v2 loss is the *sum* of two such terms at ``T = 0.2``, i.e. ``5 L_A``, against
which it puts weight 1.0: **0.2 W2 per unit of L_A**.

Method names differ between libraries (solo-learn's ``mocov2plus`` is lightly's and the
paper's MoCo v2): :data:`ALIASES` maps them to the keys used here, and :func:`canonical`
applies it.

Example:
    >>> from w2reg.adapters.defaults import DEFAULTS, PAPER_METHODS, default_weights
    >>> PAPER_METHODS[:3]
    ('simclr', 'mocov2', 'nnclr')
    >>> default_weights("mocov2plus"), DEFAULTS["barlow_twins"].source
    ((1.0, 1.0), 'paper')

This module imports neither lightly nor solo-learn nor Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from w2reg.schedules import LinearDecay, WeightLike
from w2reg.terms import TermLike

__all__ = [
    "ALIASES",
    "DEFAULTS",
    "LU_RELATIVE_WEIGHT",
    "PAPER_METHODS",
    "DefaultWeight",
    "canonical",
    "default_weight",
    "default_weights",
]


@dataclass(frozen=True)
class DefaultWeight:
    """One method's default W2 schedule on its reference loss scale.

    Attributes:
        title: the method's name as the paper writes it.
        start: ``a_max``, the weight at epoch 0.
        end: ``a_min``, the weight reached at the last epoch (``== start``: constant).
        source: ``"paper"`` (Fang et al., Table 5 / run scripts) or ``"ours"``.
        loss: the loss scale these numbers are set against (the reference loss).
        why: where the numbers come from; for ``"ours"``, the argument.
        alignment: the multiple of the alignment ``L_A`` (of L2-normalised projections) the
            reference loss contains (Wang & Isola's decomposition; ``None``: no alignment
            term). The yardstick of the weights that are ours, and of the weights of other
            regularizers (:mod:`w2reg.adapters.lightly_terms`).
    """

    title: str
    start: float
    end: float
    source: str
    loss: str
    why: str
    alignment: float | None = None


_INFONCE_ARGUMENT = (
    "one InfoNCE averaged over both directions at T = 0.2 carries 2.5 L_A; the paper's MoCo v2 "
    "ratio (0.2 W2 per unit of L_A) gives 0.5"
)

#: The eight methods, in the order of the paper's tables, keyed as lightly's ready models are.
DEFAULTS: Mapping[str, DefaultWeight] = MappingProxyType(
    {
        "simclr": DefaultWeight(
            "SimCLR",
            0.5,
            0.5,
            "ours",
            "NT-Xent at T = 0.2 averaged over the 2B anchors of both views (one averaged "
            "InfoNCE per pair of views)",
            f"{_INFONCE_ARGUMENT}. SimCLR's W2 without the term (1.04 on CIFAR-10) is as high "
            "as MoCo v2's (1.06), so the same relative strength is warranted.",
            alignment=2.5,
        ),
        "mocov2": DefaultWeight(
            "MoCo v2",
            1.0,
            1.0,
            "paper",
            "the sum of the two directional InfoNCE terms InfoNCE(q1, k2) + InfoNCE(q2, k1) at "
            "T = 0.2 against a queue of 4096 keys (the paper's code)",
            "Paper: 1.0, constant (run_moco+w2.sh: --lambd_max 1.0 --lambd_min 1.0).",
            alignment=5.0,
        ),
        "nnclr": DefaultWeight(
            "NNCLR",
            0.5,
            0.5,
            "ours",
            "InfoNCE at T = 0.2 between nearest neighbours and predictions, averaged over the "
            "two directions",
            f"The loss is on SimCLR's scale: {_INFONCE_ARGUMENT}. NNCLR's W2 without the term "
            "(1.23) is the highest of the contrastive methods in the paper.",
            alignment=2.5,
        ),
        "byol": DefaultWeight(
            "BYOL",
            0.2,
            0.2,
            "paper",
            "the sum over both directions of 2 - 2 cos(p_i, target_j) (the paper's code)",
            "Paper: 0.2, constant (run_byol+w2.sh: --lambd_max 0.2 --lambd_min 0.2).",
            alignment=2.0,
        ),
        "simsiam": DefaultWeight(
            "SimSiam",
            0.2,
            0.2,
            "ours",
            "BYOL's: the sum over both directions of 2 - 2 cos(p_i, stopgrad(z_j))",
            "SimSiam is BYOL's objective without the momentum target; on BYOL's loss scale and "
            "with BYOL's W2 without the term (1.19 vs 1.21 in the paper) it takes BYOL's 0.2.",
            alignment=2.0,
        ),
        "align_uniform": DefaultWeight(
            "AlignUniform",
            0.2,
            0.2,
            "ours",
            "L_A + (L_U(z1) + L_U(z2)) / 2 with t = 2 (Wang & Isola), averaged over pairs of views",
            "L_A enters with weight 1, so the paper's MoCo v2 ratio (0.2 W2 per unit of L_A) "
            "gives 0.2. The method already has a uniformity term; W2 complements it rather "
            "than replaces it, and 0.2 keeps it from dominating the alignment.",
            alignment=1.0,
        ),
        "barlow_twins": DefaultWeight(
            "Barlow Twins",
            30.0,
            0.0,
            "paper",
            "sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2 of the batch-standardised "
            "cross-correlation C, unscaled (the paper's code)",
            "Paper: 30, decaying linearly per epoch to 0.",
        ),
        "zero_cl": DefaultWeight(
            "Zero-CL",
            30.0,
            30.0,
            "paper",
            "w2reg.zero_cl_loss of a pair of views, averaged over pairs",
            "Paper: 30, constant.",
        ),
    }
)

#: The paper's eight methods, in the order of its tables (keys of :data:`DEFAULTS`).
PAPER_METHODS: tuple[str, ...] = tuple(DEFAULTS)

#: The weight of the ``+ L_U`` arm (Wang & Isola's uniformity, the paper's baseline) as a
#: multiple of the method's W2 weight: the authors' repository states no L_U weight, so this
#: is the best of a small sweep (0.3, 1, 3) on a held-out split of the *training* images
#: (MoCo v2 and BYOL, kNN and linear probe; docs/study.md, benchmarks/results/lu_sweep_cpu/).
LU_RELATIVE_WEIGHT = 0.3

#: Other libraries' names of the same methods -> the keys of :data:`DEFAULTS`.
ALIASES: Mapping[str, str] = MappingProxyType({"mocov2plus": "mocov2"})


def canonical(method: str) -> str:
    """The :data:`DEFAULTS` key of ``method`` (``"mocov2plus"`` -> ``"mocov2"``; ``-`` -> ``_``).

    The one normalisation of method names (the ready models' ``create_model``, the weights).

    Raises:
        ValueError: ``method`` is not one of the paper's eight methods (message lists them).
    """
    key = method.lower().replace("-", "_") if isinstance(method, str) else method
    key = ALIASES.get(key, key)
    if key not in DEFAULTS:
        raise ValueError(
            f"method must be one of the paper's eight methods {list(PAPER_METHODS)} "
            f"(aliases: {dict(ALIASES)}), got {method!r}"
        )
    return str(key)


def default_weights(method: str, term: TermLike = "w2") -> tuple[float, float]:
    """``(a_max, a_min)`` of ``method`` for ``term`` on its reference loss scale.

    W2: the table (:data:`DEFAULTS`). ``"lu"``: :data:`LU_RELATIVE_WEIGHT` times W2's (the
    same schedule, scaled). A callable term has no default weight.

    Raises:
        ValueError: an unknown method, or a term without a default (give the weight).
    """
    entry = DEFAULTS[canonical(method)]
    if isinstance(term, str) and term == "w2":
        return entry.start, entry.end
    if isinstance(term, str) and term == "lu":
        return LU_RELATIVE_WEIGHT * entry.start, LU_RELATIVE_WEIGHT * entry.end
    raise ValueError(
        f"term {term!r} has no default weight; give the weight with it (w2_weight=...)"
    )


def default_weight(method: str, term: TermLike = "w2", *, epochs: int | None = None) -> WeightLike:
    """The default weight of ``term`` for ``method``: a number, or a :class:`w2reg.LinearDecay`
    over ``epochs`` (``None``: the run's planned epochs) where the default decays."""
    start, end = default_weights(method, term)
    return start if start == end else LinearDecay(start, end, epochs=epochs)
