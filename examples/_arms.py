"""The study's arms: the same method, seed, data and budget with one term (or none) added.

==========  =================================================================================
arm         what the model gets (weights on the ready models' loss scales)
==========  =================================================================================
``plain``   nothing (the method as it is)
``w2``      W2, the paper's weight or ours (``w2reg.adapters.defaults.DEFAULTS``)
``lu``      Wang & Isola's L_U, ``LU_RELATIVE_WEIGHT`` x the method's W2 weight (the paper's
            "+ L_U" baseline; the factor is the best of a sweep on held-out training images)
``sigreg``  lightly's SIGReg (LeJEPA), ``w2reg.adapters.lightly_terms.weight``
``vicreg``  VICReg's variance + covariance terms (lightly's functions), same rule
``visreg``  VISReg's scale + shape + center terms (lightly's functions), same rule
==========  =================================================================================

``<arm>*<factor>`` sets the arm's weight to ``factor`` times its unit -- for ``lu`` the method's
W2 weight (the unit of ``LU_RELATIVE_WEIGHT``, so ``lu*0.3`` is ``lu`` today), for the others
their own default -- for a sweep (``lu*0.3 lu*1 lu*3``); its runs are named
``<method>_<arm>x<factor>_s<seed>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Every arm name, in the order of the tables (the paper's Table 2 first).
ARMS = ("plain", "lu", "w2", "sigreg", "vicreg", "visreg")
#: The arms whose weight follows the alignment yardstick (lightly_terms).
COMPETITORS = ("sigreg", "vicreg", "visreg")


@dataclass(frozen=True)
class Arm:
    """An arm as written on the command line: a name of :data:`ARMS` and a weight factor
    (``None``: the arm's default weight)."""

    name: str
    factor: float | None = None

    @classmethod
    def parse(cls, text: str) -> Arm:
        name, _, factor = text.partition("*")
        if name not in ARMS:
            raise ValueError(f"arm {text!r}: the name must be one of {list(ARMS)}")
        try:
            value = float(factor) if factor else None
        except ValueError:
            raise ValueError(f"arm {text!r}: the factor after '*' must be a number") from None
        if value is not None and not value > 0:
            raise ValueError(f"arm {text!r}: the factor must be > 0")
        if name == "plain" and factor:
            raise ValueError(f"arm {text!r}: plain has no weight to scale")
        return cls(name, value)

    @property
    def tag(self) -> str:
        """The arm in run names: ``w2``, ``lu``, ``lux0.3``."""
        return self.name if self.factor is None else f"{self.name}x{self.factor:g}"

    def __str__(self) -> str:
        return self.name if self.factor is None else f"{self.name}*{self.factor:g}"


def _scaled(weight: Any, factor: float) -> Any:
    from w2reg import LinearDecay

    if factor == 1.0:
        return weight
    if isinstance(weight, LinearDecay):
        return LinearDecay(weight.start * factor, weight.end * factor, epochs=weight.epochs)
    return float(weight) * factor


def model_kwargs(arm: Arm, method: str, epochs: int) -> dict[str, Any]:
    """The ``create_model`` arguments of ``arm`` for ``method`` (``w2``, ``w2_term``,
    ``w2_weight``)."""
    from w2reg.adapters import lightly_terms
    from w2reg.adapters.defaults import default_weight

    if arm.name == "plain":
        return {"w2": False}
    if arm.name in COMPETITORS:
        term: Any = lightly_terms.make(arm.name)
        weight: Any = lightly_terms.weight(arm.name, method)
    elif arm.name == "lu" and arm.factor is not None:  # a sweep: factor x the W2 weight
        term = "lu"
        weight = default_weight(method, "w2", epochs=epochs)
    else:
        term = arm.name
        weight = default_weight(method, arm.name, epochs=epochs)
    factor = 1.0 if arm.factor is None else arm.factor
    return {"w2": True, "w2_term": term, "w2_weight": _scaled(weight, factor)}
