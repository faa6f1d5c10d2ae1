"""w2reg: the Wasserstein-2 uniformity regularizer for self-supervised learning.

Fang, Li, Sun, Wang, "Rethinking the Uniformity Metric in Self-Supervised Learning",
ICLR 2024, arXiv:2403.00642. Pure PyTorch; the lightly and solo-learn bindings live in
``w2reg.adapters`` and are imported only on request.
"""

from ._methods import METHODS
from ._validation import set_strict_checks
from .floor import w2_floor, w2_lower_bound
from .functional import (
    align_uniform_loss,
    alignment,
    effective_rank,
    singular_values,
    w2_uniformity,
    wang_isola_uniformity,
)
from .losses import AlignUniformLoss, Regularizer, W2Uniformity
from .schedules import Constant, LinearDecay, Schedule, as_schedule
from .terms import TERMS, Term, as_term
from .zero_cl import ZeroCLLoss, zero_cl_loss

__version__ = "0.1.0"

__all__ = [
    "AlignUniformLoss",
    "Constant",
    "LinearDecay",
    "METHODS",
    "Regularizer",
    "Schedule",
    "TERMS",
    "Term",
    "W2Uniformity",
    "ZeroCLLoss",
    "align_uniform_loss",
    "alignment",
    "as_schedule",
    "as_term",
    "set_strict_checks",
    "effective_rank",
    "singular_values",
    "w2_floor",
    "w2_lower_bound",
    "w2_uniformity",
    "wang_isola_uniformity",
    "zero_cl_loss",
]
