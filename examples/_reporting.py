"""The example scripts' reporting: the paper's numbers, the summary table, JSON files.

``PAPER`` is the one home of the numbers Fang et al. (ICLR 2024) publish for CIFAR-10/100
(ResNet-18, 500 epochs, linear probe): the authors' repository README (statsle/WassersteinSSL)
gives Acc@1, test-set W2, L_U and alignment for MoCo v2, BYOL, Barlow Twins and Zero-CL plain,
``+ L_U`` and ``+ W2`` (the paper's Table 2); the paper gives Acc@1 and W2 of the plain
SimCLR, NNCLR, SimSiam and AlignUniform. The scripts print their own numbers next to them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from w2reg.adapters.lightly import METHODS

#: ``--method`` choices: the ready lightly models' names.
METHOD_NAMES = tuple(METHODS)


class PaperRow(NamedTuple):
    """One published result: linear-probe Acc@1 (%), test-set W2, L_U and alignment ``A``
    (``None`` where only the paper's Acc@1 and W2 exist)."""

    top1: float
    w2: float
    lu: float | None = None
    alignment: float | None = None


_P = PaperRow
#: ``PAPER[method][arm][dataset]``: the published results, arms ``plain``, ``lu``, ``w2``.
PAPER: dict[str, dict[str, dict[str, PaperRow]]] = {
    "simclr": {"plain": {"cifar10": _P(89.85, 1.04), "cifar100": _P(63.43, 1.05)}},
    "nnclr": {"plain": {"cifar10": _P(87.46, 1.23), "cifar100": _P(54.90, 1.23)}},
    "simsiam": {"plain": {"cifar10": _P(86.71, 1.19), "cifar100": _P(56.10, 1.21)}},
    "align_uniform": {"plain": {"cifar10": _P(90.37, 0.94), "cifar100": _P(65.08, 0.95)}},
    "mocov2": {
        "plain": {
            "cifar10": _P(90.65, 1.06, -3.75, 0.51),
            "cifar100": _P(60.27, 1.07, -3.60, 0.46),
        },
        "lu": {"cifar10": _P(90.98, 0.98, -3.82, 0.53), "cifar100": _P(61.21, 0.98, -3.81, 0.52)},
        "w2": {"cifar10": _P(91.41, 0.33, -3.84, 0.63), "cifar100": _P(63.68, 0.28, -3.86, 0.66)},
    },
    "byol": {
        "plain": {
            "cifar10": _P(89.53, 1.21, -2.99, 0.31),
            "cifar100": _P(63.66, 1.20, -2.87, 0.33),
        },
        "lu": {"cifar10": _P(90.09, 1.09, -3.66, 0.40), "cifar100": _P(62.68, 1.08, -3.70, 0.51)},
        "w2": {"cifar10": _P(90.31, 0.38, -3.90, 0.65), "cifar100": _P(65.16, 0.36, -3.91, 0.69)},
    },
    "barlow_twins": {
        "plain": {
            "cifar10": _P(91.16, 0.22, -3.91, 0.75),
            "cifar100": _P(68.19, 0.23, -3.91, 0.75),
        },
        "lu": {"cifar10": _P(91.38, 0.21, -3.92, 0.76), "cifar100": _P(68.41, 0.22, -3.91, 0.76)},
        "w2": {"cifar10": _P(91.43, 0.19, -3.92, 0.76), "cifar100": _P(68.47, 0.19, -3.91, 0.79)},
    },
    "zero_cl": {
        "plain": {
            "cifar10": _P(91.35, 0.15, -3.94, 0.70),
            "cifar100": _P(68.50, 0.15, -3.93, 0.75),
        },
        "lu": {"cifar10": _P(91.28, 0.15, -3.94, 0.72), "cifar100": _P(68.44, 0.15, -3.93, 0.74)},
        "w2": {"cifar10": _P(91.42, 0.14, -3.94, 0.71), "cifar100": _P(68.55, 0.14, -3.94, 0.76)},
    },
}
del _P


def paper_row(method: str, arm: str, dataset: str = "cifar10") -> PaperRow | None:
    """The published result of ``method`` in ``arm`` (``plain``, ``lu``, ``w2``) on
    ``dataset``, or ``None`` if the paper has no such run.

    >>> paper_row("mocov2", "lu")
    PaperRow(top1=90.98, w2=0.98, lu=-3.82, alignment=0.53)
    >>> paper_row("simclr", "w2") is None
    True
    """
    return PAPER.get(method, {}).get(arm, {}).get(dataset)


def paper_result(method: str, w2: bool, dataset: str) -> tuple[float, float] | None:
    """``(linear top-1 %, test W2)`` from the paper, or ``None`` if it has no such run."""
    row = paper_row(method, "w2" if w2 else "plain", dataset)
    return None if row is None else (row.top1, row.w2)


# -- reporting -----------------------------------------------------------------------------------
def summary_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of results rows (measured next to the paper's numbers)."""

    def fmt(v: Any, spec: str) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return format("-", ">" + spec.split(".")[0])
        return format(v, spec)

    dw = max([9, *(len(str(r["dataset"])) + 1 for r in rows)])
    head = (
        f"{'dataset':<{dw}}{'method':<14}{'W2':<4}{'linear':>8}{'kNN':>8}{'W2 test':>9}"
        f"{'L_U':>8}{'erank':>8}{'align':>8}  {'paper acc':>9}{'paper W2':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        paper = r.get("paper") or {}
        lines.append(
            f"{r['dataset']:<{dw}}{r['method']:<14}{'yes' if r['w2'] else 'no':<4}"
            f"{fmt(r.get('linear_top1'), '8.2f')}{fmt(r.get('knn_top1'), '8.2f')}"
            f"{fmt(r.get('test_w2'), '9.3f')}{fmt(r.get('test_lu'), '8.3f')}"
            f"{fmt(r.get('test_effective_rank'), '8.1f')}{fmt(r.get('test_alignment'), '8.3f')}"
            f"  {fmt(paper.get('linear_top1'), '9.2f')}{fmt(paper.get('w2'), '9.2f')}"
        )
    return "\n".join(lines)


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True))
    return path
