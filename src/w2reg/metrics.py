"""The uniformity report of a set of embeddings: every number the monitors log, in one call.

:func:`measure` takes the projections of a held-out set (one ``(N, m)`` tensor per view) and
returns the scalars of :data:`KEYS` and the spectrum. Pure PyTorch: the Lightning callback
(:mod:`w2reg.adapters.callbacks`), the example scripts and a plain loop all call it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._methods import check_method
from ._validation import check_embeddings, check_int
from .floor import w2_floor
from .functional import (
    alignment,
    effective_rank,
    normalize_rows,
    singular_values,
    w2_uniformity,
    wang_isola_uniformity,
)

__all__ = ["KEYS", "measure"]

#: The scalar keys :func:`measure` returns (the monitors log them after a prefix).
KEYS = {
    "w2": "W2 uniformity of the normalised projections (lower = more uniform)",
    "w2_floor": "W2 of a truly uniform sample of the same N and m (w2reg.w2_floor): the best "
    "N rows can show",
    "w2_above_floor": "w2 - w2_floor: the part of W2 an embedding could still lose (about 0 "
    "for a uniform one; slightly negative is sampling noise)",
    "lu": "Wang-Isola uniformity L_U, t=2 (lower = more uniform)",
    "effective_rank": "RankMe effective rank of the normalised projections, in [1, min(N, m)]",
    "sv_top": "largest singular value of the centred normalised projections",
    "sv_tail": "smallest singular value of the centred normalised projections",
    "alignment": "mean squared distance of the normalised projections of views 0 and 1",
}


def measure(
    views: list[Tensor] | tuple[Tensor, ...],
    *,
    lu_max_samples: int | None = 10_000,
    w2_method: str = "auto",
) -> dict[str, Any]:
    """Uniformity metrics of ``views[0]`` (``(N, m)``), and the alignment of views 0 and 1.

    Returns the scalars of :data:`KEYS` as floats (``"alignment"`` only with two views of
    one shape), ``"spectrum"`` (the singular values of the centred normalised rows,
    descending, a list), ``"n_samples"`` (``N``) and ``"dim"`` (``m``). Everything is
    computed in float64 on the rows' device. ``L_U`` needs ``O(N^2)`` memory: it uses the
    first ``lu_max_samples`` rows (``None``: all). ``w2_method`` goes to
    :func:`w2reg.w2_uniformity` (for float64, ``"auto"`` is the exact method).

    Example:
        >>> import torch
        >>> from w2reg.metrics import measure
        >>> out = measure([torch.randn(4096, 256, dtype=torch.float64)])
        >>> round(out["w2_floor"], 3), abs(out["w2_above_floor"]) < 0.01, out["dim"]
        (0.126, True, 256)
    """
    if not isinstance(views, (list, tuple)) or not views:
        raise ValueError(
            f"views must be a non-empty list of (N, m) tensors, got {type(views).__name__}"
        )
    z = views[0]
    check_embeddings(z, "views[0]")
    lu_max_samples = check_int(lu_max_samples, "lu_max_samples", minimum=2, optional=True)
    w2_method = check_method(w2_method, "w2_method")
    zn = normalize_rows(z.detach().to(torch.float64))
    n, m = zn.shape
    spectrum = singular_values(zn)
    w2 = float(w2_uniformity(zn, method=w2_method))
    floor = w2_floor(n, m)
    lu_rows = zn if lu_max_samples is None else zn[:lu_max_samples]
    out: dict[str, Any] = {
        "w2": w2,
        "w2_floor": floor,
        "w2_above_floor": w2 - floor,
        "lu": float(wang_isola_uniformity(lu_rows)),
        "effective_rank": float(effective_rank(zn)),
        "sv_top": float(spectrum[0]),
        "sv_tail": float(spectrum[-1]),
    }
    if len(views) > 1 and isinstance(views[1], Tensor) and views[1].shape == z.shape:
        out["alignment"] = float(alignment(z.detach(), views[1].detach()))
    out["spectrum"] = spectrum.tolist()
    out["n_samples"] = int(n)
    out["dim"] = int(m)
    return out
