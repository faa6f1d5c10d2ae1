"""The example scripts' reporting: the paper's numbers, the summary table, JSON files.

``PAPER`` holds the linear-probe top-1 and test-set W2 that Fang et al. (ICLR 2024) publish
for CIFAR-10/100 (ResNet-18, 500 epochs); the scripts print their own numbers next to them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from w2reg.adapters.lightly import METHODS

#: ``--method`` choices: the ready lightly models' names.
METHOD_NAMES = tuple(METHODS)

#: Linear-probe top-1 (%) and test-set W2 published by Fang et al. (ICLR 2024),
#: as ``PAPER[method][w2][dataset] = (acc, w2)``; ``None`` where the paper has no such run.
PAPER: dict[str, dict[bool, dict[str, tuple[float, float] | None]]] = {
    "simclr": {False: {"cifar10": (89.85, 1.04), "cifar100": (63.43, 1.05)}},
    "nnclr": {False: {"cifar10": (87.46, 1.23), "cifar100": (54.90, 1.23)}},
    "simsiam": {False: {"cifar10": (86.71, 1.19), "cifar100": (56.10, 1.21)}},
    "align_uniform": {False: {"cifar10": (90.37, 0.94), "cifar100": (65.08, 0.95)}},
    "mocov2": {
        False: {"cifar10": (90.65, 1.06), "cifar100": (60.27, 1.07)},
        True: {"cifar10": (91.41, 0.33), "cifar100": (63.68, 0.28)},
    },
    "byol": {
        False: {"cifar10": (89.53, 1.21), "cifar100": (63.66, 1.20)},
        True: {"cifar10": (90.31, 0.38), "cifar100": (65.16, 0.36)},
    },
    "barlow_twins": {
        False: {"cifar10": (91.16, 0.22), "cifar100": (68.19, 0.23)},
        True: {"cifar10": (91.43, 0.19), "cifar100": (68.47, 0.19)},
    },
    "zero_cl": {
        False: {"cifar10": (91.35, 0.15), "cifar100": (68.50, 0.15)},
        True: {"cifar10": (91.42, 0.14), "cifar100": (68.55, 0.14)},
    },
}


def paper_result(method: str, w2: bool, dataset: str) -> tuple[float, float] | None:
    """``(linear top-1 %, test W2)`` from the paper, or ``None`` if it has no such run."""
    return PAPER.get(method, {}).get(w2, {}).get(dataset)


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
