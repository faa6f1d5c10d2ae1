"""The study's summary for any set of arms: effects against plain, the seed spread, the tables.

An *arm* is a method trained with one term added (``examples/_arms.py``: ``plain``, ``lu``,
``w2``, ``sigreg``, ``vicreg``, ``visreg``, and ``<arm>*<factor>`` for a weight sweep); a run's
arm is its ``arm`` field (runs written before arms existed have only ``w2``: ``True`` is the
W2 arm, ``False`` plain).

A *range* is the largest difference between two seeds of the same method and arm for one
metric. The effect of an arm is the arm minus plain, paired by seed and averaged; its *spread*
is the larger range of the two arms compared (plain and the arm) of that method. A method with
one seed in both arms is held against the largest such spread of the methods that have
several (stated; for a method that did not run the arm, its plain range). An effect no larger
than its spread is reported as within the spread: not evidence either way.

Example (made-up rows; ``_row`` sets the other metrics and the time per epoch to 1):

    >>> def _row(method, arm, seed, top1):
    ...     row = dict.fromkeys([*METRICS, "seconds_per_epoch"], 1.0)
    ...     return row | {"method": method, "arm": arm, "seed": seed, "linear_top1": top1}
    >>> rows = [_row("byol", "plain", 0, 70.0), _row("byol", "w2", 0, 74.0),
    ...         _row("byol", "plain", 1, 71.0), _row("byol", "w2", 1, 77.0)]
    >>> e = effects(rows)["w2"]["byol"]["linear_top1"]
    >>> e["delta"], e["spread"], e["verdict"]
    (5.0, 3.0, 'higher')
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _arms
import _reporting

from w2reg.adapters.defaults import DEFAULTS

#: Metrics of a run compared between the arms: key -> (label, format, higher is better).
METRICS: dict[str, tuple[str, str, bool | None]] = {
    "linear_top1": ("linear top-1 %", ".2f", True),
    "knn_top1": ("kNN top-1 %", ".2f", True),
    "test_w2": ("test W2", ".3f", False),
    "test_lu": ("L_U", ".3f", False),
    "test_alignment": ("alignment", ".3f", False),
    "test_effective_rank": ("eff. rank", ".1f", True),
}
#: The columns of the paper's Table 2 (and of the competitors' table).
TABLE2_METRICS = ("linear_top1", "knn_top1", "test_w2", "test_lu", "test_alignment")
#: How the tables write an arm's term (a sweep arm adds `` x<factor>``).
ARM_LABELS = {
    "plain": "plain",
    "lu": "+ L_U",
    "w2": "+ W2",
    "sigreg": "+ SIGReg",
    "vicreg": "+ VICReg var+cov",
    "visreg": "+ VISReg",
}
#: The arms of the paper's Table 2 (those with published numbers in ``_reporting.PAPER``).
TABLE2_ARMS = ("plain", "lu", "w2")
#: Sweep factors whose mean linear-probe top-1 is this close to the best count as tied (the
#: smaller factor wins: the weakest term that does as well).
SWEEP_TIE_POINTS = 0.2
#: What a sweep factor multiplies, per arm (examples/_arms.py; others: the arm's default).
_SWEEP_UNIT = {"lu": "the method's W2 weight"}
DEFAULT_UNIT = "the arm's default weight"
#: The dataset whose published numbers stand beside ours.
PAPER_DATASET = "cifar10"


# -- arms of rows ------------------------------------------------------------------------------
def arm_of(row: dict[str, Any]) -> str:
    """The run's arm as written on the command line (``"lu*0.3"``); old rows: from ``w2``."""
    return str(row.get("arm") or ("w2" if row.get("w2") else "plain"))


def _parse(arm: str) -> _arms.Arm:
    return _arms.Arm.parse(arm)


def _arm_key(arm: str) -> tuple[int, float]:
    a = _parse(arm)
    return (_arms.ARMS.index(a.name), -1.0 if a.factor is None else a.factor)


def _factor(arm: str) -> float:
    """The explicit weight factor of a sweep arm (``"lu*0.3"`` -> 0.3)."""
    factor = _parse(arm).factor
    assert factor is not None, arm
    return factor


def arm_label(arm: str) -> str:
    """``"+ L_U"``, ``"+ L_U x0.3"``, ``"plain"``."""
    a = _parse(arm)
    return ARM_LABELS[a.name] + ("" if a.factor is None else f" x{a.factor:g}")


def method_title(method: str) -> str:
    """The method's name as the paper writes it (``w2reg.adapters.defaults.DEFAULTS``)."""
    entry = DEFAULTS.get(method)
    return entry.title if entry is not None else method


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def group(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{method: {arm: [rows]}}``: methods in the order of the rows, arms in the order of
    ``_arms.ARMS`` (then by factor)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        out.setdefault(row["method"], {}).setdefault(arm_of(row), []).append(row)
    return {
        m: dict(sorted(by_arm.items(), key=lambda kv: _arm_key(kv[0]))) for m, by_arm in out.items()
    }


def arms_in(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every arm of the rows, in table order."""
    return sorted({arm_of(r) for r in rows}, key=_arm_key)


# -- seeds, spread, effects --------------------------------------------------------------------
def seed_ranges(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {arm: {metric: max - min over seeds}}}`` for the arms run at 2+ seeds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method, by_arm in group(rows).items():
        for arm, runs in by_arm.items():
            if len({r["seed"] for r in runs}) < 2:
                continue
            out.setdefault(method, {})[arm] = {
                key: max(r[key] for r in runs) - min(r[key] for r in runs) for key in METRICS
            }
    return out


def seed_spread(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{method: {metric: the largest range of its arms}}`` for methods with 2+ seeds."""
    return {
        method: {key: max(r[key] for r in by_arm.values()) for key in METRICS}
        for method, by_arm in seed_ranges(rows).items()
    }


def _pair_spread(
    ranges: dict[str, dict[str, dict[str, float]]], method: str, arm: str
) -> dict[str, float] | None:
    """The larger range of plain and ``arm`` of ``method``; ``None`` if neither has 2 seeds."""
    own = [r for a, r in ranges.get(method, {}).items() if a in ("plain", arm)]
    if not own:
        return None
    return {key: max(r[key] for r in own) for key in METRICS}


def verdict(delta: float, spread: float | None) -> str:
    """``"higher"`` / ``"lower"`` where ``|delta| > spread``, else ``"within the spread"``
    (``"no spread measured"`` without one)."""
    if spread is None:
        return "no spread measured"
    if abs(delta) > spread:
        return "higher" if delta > 0 else "lower"
    return "within the spread"


def _cpu_per_epoch(row: dict[str, Any]) -> float | None:
    cpu, epochs = row.get("pretrain_cpu_seconds"), row.get("epochs")
    return cpu / epochs if cpu and epochs else None


def effects(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{arm: {method: entry}}`` for every arm but plain, with a plain partner of its seed.

    ``entry[metric] = {"delta", "spread", "beyond_spread", "verdict"}``; ``entry["seeds"]``
    the paired seeds; ``entry["spread_from"]`` ``"own seeds"``, ``"other methods"`` (listed
    in ``entry["spread_methods"]``) or ``None``; ``entry["time_ratio"]`` the arm's wall
    seconds per epoch over plain's, ``entry["cpu_time_ratio"]`` the same of the CPU seconds
    of the whole pre-training per epoch (paired by seed, averaged; ``None`` if not recorded).
    """
    grouped, ranges = group(rows), seed_ranges(rows)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for arm in arms_in(rows):
        if arm == "plain":
            continue
        # a method without this arm still has plain's seeds: their range is a yardstick too
        pairs = {m: _pair_spread(ranges, m, arm) for m in grouped}
        several = {m: s for m, s in pairs.items() if s is not None}
        reference = (
            {key: max(s[key] for s in several.values()) for key in METRICS} if several else None
        )
        for method, by_arm in grouped.items():
            plain = {r["seed"]: r for r in by_arm.get("plain", [])}
            paired = [(plain[r["seed"]], r) for r in by_arm.get(arm, []) if r["seed"] in plain]
            if not paired:
                continue
            own = several.get(method)
            spread = own or reference
            entry: dict[str, Any] = {
                "seeds": sorted(r["seed"] for _, r in paired),
                "spread_from": "own seeds" if own else ("other methods" if spread else None),
                "spread_methods": [method] if own else sorted(several),
            }
            for key in METRICS:
                delta = _mean([b[key] - a[key] for a, b in paired])
                s = None if spread is None else spread[key]
                entry[key] = {
                    "delta": delta,
                    "spread": s,
                    "beyond_spread": None if s is None else bool(abs(delta) > s),
                    "verdict": verdict(delta, s),
                }
            entry["time_ratio"] = _mean(
                [b["seconds_per_epoch"] / a["seconds_per_epoch"] for a, b in paired]
            )
            cpu = [(_cpu_per_epoch(a), _cpu_per_epoch(b)) for a, b in paired]
            known = [(a, b) for a, b in cpu if a and b]
            entry["cpu_time_ratio"] = (
                _mean([b / a for a, b in known]) if len(known) == len(cpu) else None
            )
            out.setdefault(arm, {})[method] = entry
    return out


# -- weight sweeps -----------------------------------------------------------------------------
def best_factor(means: dict[float, float], tie: float = SWEEP_TIE_POINTS) -> float:
    """The factor with the highest mean; factors within ``tie`` of it count as tied and the
    smallest of them wins.

    >>> best_factor({0.3: 80.0, 1.0: 80.15, 3.0: 79.0})
    0.3
    >>> best_factor({0.3: 80.0, 1.0: 80.5, 3.0: 80.4})
    1.0
    """
    top = max(means.values())
    return min(f for f, v in means.items() if v >= top - tie - 1e-9)


def sweeps(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per arm name run at several factors (``lu*0.3 lu*1 lu*3``): each factor's linear-probe
    top-1 per method (mean over seeds), the mean over the methods that ran every factor, and
    the best factor (:func:`best_factor`), the factor with the highest mean (``top``: another
    one when a larger factor wins by no more than the tie), the best of the others
    (``runner_up``) and ``margin``, the best's mean minus the runner-up's."""
    grouped = group(rows)
    names: dict[str, set[float]] = {}
    for arm in arms_in(rows):
        a = _parse(arm)
        if a.factor is not None:  # an arm at its default weight is not part of a sweep
            names.setdefault(a.name, set()).add(a.factor)
    out: dict[str, dict[str, Any]] = {}
    for name, factors in names.items():
        if len(factors) < 2:  # one weight: nothing to choose between
            continue
        arms = [a for a in arms_in(rows) if _parse(a).name == name and _parse(a).factor is not None]
        complete = [m for m, by_arm in grouped.items() if all(a in by_arm for a in arms)]
        methods = complete or [m for m, by_arm in grouped.items() if any(a in by_arm for a in arms)]
        per_method = {
            a: {
                m: _mean([r["linear_top1"] for r in grouped[m][a]])
                for m in methods
                if a in grouped[m]
            }
            for a in arms
        }
        means = {_factor(a): _mean(list(per_method[a].values())) for a in arms}
        best = best_factor(means) if len(means) > 1 else next(iter(means))
        others = {f: v for f, v in means.items() if f != best}
        runner_up = max(others, key=lambda f: (others[f], -f)) if others else None
        ranges = seed_ranges(rows)
        spread = [ranges[m][a]["linear_top1"] for m in ranges for a in arms if a in ranges[m]]
        out[name] = {
            "arms": arms,
            "factors": [_factor(a) for a in arms],
            "methods": methods,
            "all_methods_complete": bool(complete),
            "linear_top1": per_method,
            "mean_linear_top1": [means[_factor(a)] for a in arms],
            "best": best,
            "top": max(means, key=lambda f: (means[f], -f)),
            "runner_up": runner_up,
            "margin": None if runner_up is None else means[best] - means[runner_up],
            "spread": max(spread) if spread else None,
        }
    return out


# -- study.json --------------------------------------------------------------------------------
def build(
    rows: Sequence[dict[str, Any]],
    *,
    config: dict[str, Any],
    command: str,
    data_line: str,
    calibration: dict[str, Any] | None,
    environment: dict[str, Any],
) -> dict[str, Any]:
    """The content of ``study.json``: every run, the plan, each method-arm's means, the
    effects per arm, the seed spreads and the sweeps."""
    arms = []
    for method, by_arm in group(rows).items():
        for arm, runs in by_arm.items():
            a = _parse(arm)
            entry: dict[str, Any] = {
                "method": method,
                "arm": arm,
                "arm_name": a.name,
                "arm_factor": a.factor,
                "w2": a.name == "w2",
                "seeds": [r["seed"] for r in runs],
            }
            for key in (*METRICS, "seconds_per_epoch"):
                values = [r[key] for r in runs]
                entry[key] = _mean(values)
                entry[f"{key}_range"] = [min(values), max(values)]
            cpu = [_cpu_per_epoch(r) for r in runs]
            entry["cpu_seconds_per_epoch"] = (
                _mean([c for c in cpu if c is not None]) if all(cpu) else None
            )
            arms.append(entry)
    seconds = sum(r["pretrain_seconds"] + r["eval_seconds"] for r in rows)
    return {
        "command": command,
        "data": data_line,
        "config": config,
        "calibration": calibration,
        "environment": environment,
        "total_seconds": seconds,
        "plan": {
            "methods": list(dict.fromkeys(r["method"] for r in rows)),
            "arms": arms_in(rows),
            "runs": [r.get("run") for r in rows],
        },
        "arms": arms,
        "effects": effects(rows),
        "seed_spread": seed_spread(rows),
        "seed_ranges": seed_ranges(rows),
        "sweeps": sweeps(rows),
        "runs": list(rows),
    }


# -- Markdown ----------------------------------------------------------------------------------
def _fmt(value: Any, spec: str, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, ("+" if sign else "") + spec)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _means(summary: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(a["method"], a["arm"]): a for a in summary["arms"]}


def _cell(summary: dict[str, Any], method: str, arm: str, key: str) -> str:
    """The arm's mean; beside it its effect against plain and the spread, bold beyond it."""
    entry = _means(summary).get((method, arm))
    if entry is None:
        return "-"
    spec = METRICS[key][1]
    cell = _fmt(entry[key], spec)
    eff = summary["effects"].get(arm, {}).get(method)
    if eff is None:
        return cell
    e = eff[key]
    cell += f" ({_fmt(e['delta'], spec, sign=True)}"
    cell += f" ±{_fmt(e['spread'], spec)})" if e["spread"] is not None else ")"
    return f"**{cell}**" if e["beyond_spread"] else cell


def _row_name(method: str, arm: str) -> str:
    return method_title(method) + ("" if arm == "plain" else " " + arm_label(arm))


def table2(summary: dict[str, Any], arms: Sequence[str] = TABLE2_ARMS, paper: bool = True) -> str:
    """Per method one row per arm of ``arms`` that ran (the paper's Table 2 layout: plain,
    + L_U, + W2), our means with the effect against plain and its spread, and the paper's
    CIFAR-10 numbers beside them (``paper=False``: without)."""
    means = _means(summary)
    head = ["method", "seeds", *(METRICS[k][0] for k in TABLE2_METRICS)]
    if paper:
        head += ["paper top-1 %", "paper W2", "paper L_U", "paper A"]
    lines = []
    for method in dict.fromkeys(a["method"] for a in summary["arms"]):
        for arm in arms:
            if (method, arm) not in means:
                continue
            cells = [_row_name(method, arm), ",".join(map(str, means[(method, arm)]["seeds"]))]
            cells += [_cell(summary, method, arm, k) for k in TABLE2_METRICS]
            if paper:
                p = _reporting.paper_row(method, arm, PAPER_DATASET)
                cells += [
                    _fmt(None if p is None else p.top1, ".2f"),
                    _fmt(None if p is None else p.w2, ".2f"),
                    _fmt(None if p is None else p.lu, ".2f"),
                    _fmt(None if p is None else p.alignment, ".2f"),
                ]
            lines.append(cells)
    return "\n".join(_table(head, lines)) if lines else ""


def competitors_table(summary: dict[str, Any]) -> str:
    """Plain, + W2 and the competitor arms (SIGReg, VICReg var+cov, VISReg) of the methods
    that ran a competitor; the same columns as :func:`table2`, without the paper's."""
    present = {a for a in _arms_of(summary) if _parse(a).name in _arms.COMPETITORS}
    arms = sorted(present | ({"plain", "w2"} & set(_arms_of(summary))), key=_arm_key)
    arms = [a for a in arms if _parse(a).factor is None]
    if not any(_parse(a).name in _arms.COMPETITORS for a in arms):
        return ""
    has = {a["method"] for a in summary["arms"] if _parse(a["arm"]).name in _arms.COMPETITORS}
    sub = dict(summary, arms=[a for a in summary["arms"] if a["method"] in has])
    return table2(sub, arms, paper=False)


def _arms_of(summary: dict[str, Any]) -> list[str]:
    return sorted({a["arm"] for a in summary["arms"]}, key=_arm_key)


def cost_table(summary: dict[str, Any]) -> str:
    """Seconds per pre-training epoch of every arm, from the same study: plain's wall and CPU
    seconds, every other arm's as multiples of plain's (paired by seed); without a plain
    partner the arm's own seconds. A median row over the methods."""
    means = _means(summary)
    arms = _arms_of(summary)
    head = ["method", *(f"{arm_label(a)} (wall, CPU)" for a in arms)]
    lines: list[list[str]] = []
    ratios: dict[str, tuple[list[float], list[float]]] = {a: ([], []) for a in arms}
    for method in dict.fromkeys(a["method"] for a in summary["arms"]):
        cells = [method_title(method)]
        for arm in arms:
            m = means.get((method, arm))
            eff = summary["effects"].get(arm, {}).get(method)
            if m is None:
                cells.append("-")
            elif eff is not None:
                cells.append(
                    f"x{_fmt(eff['time_ratio'], '.2f')}, x{_fmt(eff['cpu_time_ratio'], '.2f')}"
                )
                ratios[arm][0].append(eff["time_ratio"])
                if eff["cpu_time_ratio"] is not None:
                    ratios[arm][1].append(eff["cpu_time_ratio"])
            else:
                wall, cpu = m["seconds_per_epoch"], m["cpu_seconds_per_epoch"]
                cells.append(f"{_fmt(wall, '.1f')} s, {_fmt(cpu, '.1f')} s")
        lines.append(cells)
    if len(lines) > 1 and any(w for w, _ in ratios.values()):
        median = ["median over methods"]
        for arm in arms:
            wall, cpu = ratios[arm]
            median.append(
                f"x{statistics.median(wall):.2f}, "
                + (f"x{statistics.median(cpu):.2f}" if cpu else "-")
                if wall
                else ""
            )
        lines.append(median)
    return "\n".join(_table(head, lines))


def _evaluated_on(config: dict[str, Any]) -> str:
    holdout = config.get("holdout")
    if holdout:
        return f"{holdout} images held out from the training split (never the test images)"
    return "the test images"


def sweep_tables(summary: dict[str, Any]) -> str:
    """Per swept arm: every factor's linear-probe top-1 per method and the mean over the
    methods, and the line naming the best factor."""
    out = []
    means = _means(summary)
    for name, sw in summary.get("sweeps", {}).items():
        methods = sw["methods"]
        head = ["arm", *(f"{method_title(m)} linear top-1 %" for m in methods)]
        head += ["mean linear top-1 %", "mean kNN top-1 %", "mean test W2"]
        lines = []
        plain_rows = [means[(m, "plain")] for m in methods if (m, "plain") in means]
        if len(plain_rows) == len(methods):
            cells = ["plain", *(_fmt(r["linear_top1"], ".2f") for r in plain_rows)]
            cells += [
                _fmt(_mean([r[k] for r in plain_rows]), METRICS[k][1])
                for k in ("linear_top1", "knn_top1", "test_w2")
            ]
            lines.append(cells)
        for arm, mean in zip(sw["arms"], sw["mean_linear_top1"], strict=True):
            per = sw["linear_top1"][arm]
            rows = [means[(m, arm)] for m in methods if (m, arm) in means]
            factor = f"{ARM_LABELS[name]} x{_parse(arm).factor:g}"
            cells = [factor, *(_fmt(per.get(m), ".2f") for m in methods)]
            best = _parse(arm).factor == sw["best"]
            cells.append(f"**{_fmt(mean, '.2f')}**" if best else _fmt(mean, ".2f"))
            cells += [
                _fmt(_mean([r[k] for r in rows]), METRICS[k][1]) for k in ("knn_top1", "test_w2")
            ]
            lines.append(cells)
        label = ARM_LABELS[name]
        spread, margin, best = sw["spread"], sw["margin"], sw["best"]
        mean_of = dict(zip(sw["factors"], sw["mean_linear_top1"], strict=True))
        if margin is None:
            why = ""
        elif sw["top"] == best:
            why = f" (mean {mean_of[best]:.2f}, {margin:.2f} points above x{sw['runner_up']:g})"
        else:
            why = (
                f" (mean {mean_of[best]:.2f}; x{sw['top']:g} is {-margin:.2f} points higher, "
                f"within the {SWEEP_TIE_POINTS} points that count as a tie, so the smaller "
                "factor is kept)"
            )
        if spread is None:
            seeds = "one seed per arm: the spread between seeds is not measured"
        elif margin is None:
            seeds = f"seed spread of linear top-1 {spread:.2f}"
        else:
            seeds = (
                f"the gap to the next factor, {abs(margin):.2f}, is "
                + ("larger than" if abs(margin) > spread else "within")
                + f" the seed spread of linear top-1, {spread:.2f}"
            )
        text = [
            f"### {label} weight sweep (factor x {_SWEEP_UNIT.get(name, DEFAULT_UNIT)})",
            "",
            f"Evaluated on {_evaluated_on(summary['config'])}.",
            "",
            *_table(head, lines),
            "",
            f"Best factor by the mean linear-probe top-1 over "
            f"{', '.join(map(method_title, methods))}"
            + ("" if sw["all_methods_complete"] else " (not every method ran every factor)")
            + f": **x{best:g}**{why}; {seeds}.",
        ]
        out.append("\n".join(text))
    return "\n\n".join(out)


def all_metrics_table(summary: dict[str, Any]) -> str:
    """Every method and arm: the means over seeds, the range of the seeds in parentheses,
    and the seconds per epoch (wall, CPU)."""
    head = ["method", "arm", "seeds", *(label for label, _, _ in METRICS.values())]
    head += ["s/epoch", "CPU s/epoch"]
    lines = []
    for a in summary["arms"]:
        arm = a["arm"]
        cells = [method_title(a["method"]), arm, ",".join(map(str, a["seeds"]))]
        for key, (_, spec, _) in METRICS.items():
            lo, hi = a[f"{key}_range"]
            cell = _fmt(a[key], spec)
            if len(a["seeds"]) > 1:
                cell += f" ({_fmt(lo, spec)} to {_fmt(hi, spec)})"
            cells.append(cell)
        cells += [_fmt(a["seconds_per_epoch"], ".1f"), _fmt(a.get("cpu_seconds_per_epoch"), ".1f")]
        lines.append(cells)
    return "\n".join(_table(head, lines))


def _spread_line(summary: dict[str, Any]) -> str:
    spread = summary["seed_spread"]
    return (
        "In parentheses after each mean: its difference from plain (paired by seed) and the "
        "seed spread, the larger of the two arms' largest differences between two seeds ("
        + (
            "own seeds where the method ran at several, else the largest over "
            + ", ".join(map(method_title, spread))
            if spread
            else "not measured: run some methods at two seeds with --spread-methods"
        )
        + "). **Bold**: the difference is larger than the spread; otherwise it is within the "
        "spread between seeds and shows no effect either way."
    )


def markdown_tables(summary: dict[str, Any]) -> str:
    """The tables of ``study.md``, in order: the paper's Table 2 layout, the competitors,
    the cost per epoch, the sweeps, and every metric."""
    sections = []
    has_plain = "plain" in _arms_of(summary)
    t2 = table2(summary) if has_plain else ""
    if t2:
        sections += [
            "## Plain / + L_U / + W2 (the paper's Table 2 layout)",
            _spread_line(summary)
            + f" The paper's columns: {PAPER_DATASET.upper().replace('CIFAR', 'CIFAR-')}, "
            "full-width ResNet-18, 500 epochs (the authors' README; A: alignment), for the "
            "direction of each effect, not its size.",
            t2,
        ]
    comp = competitors_table(summary) if has_plain else ""
    if comp:
        sections += [
            "## The competitors: "
            + ", ".join(ARM_LABELS[n][2:] for n in _arms.COMPETITORS)
            + " (lightly's terms)",
            _spread_line(summary),
            comp,
        ]
    sections += [
        "## Cost per epoch of each term (measured in the same runs)",
        "Plain: wall and CPU seconds per pre-training epoch (CPU: the process's CPU seconds of "
        "the whole pre-training over the epochs, less sensitive to other load on the machine); "
        "the other arms: multiples of plain's, paired by seed (without a plain run: the arm's "
        "own seconds).",
        cost_table(summary),
    ]
    sw = sweep_tables(summary)
    if sw:
        sections += ["## Weight sweeps", sw]
    sections += [
        "## Every metric",
        "Mean over seeds; the range of the seeds in parentheses.",
        all_metrics_table(summary),
    ]
    return "\n\n".join(sections)


def _load(summary: dict[str, Any]) -> str:
    """How busy the machine was: the 1-minute load average at the end of the runs."""
    loads = [r["load_average"] for r in summary["runs"] if r.get("load_average") is not None]
    if not loads:
        start = (summary["environment"].get("load_average_start") or [None])[0]
        return f"load average {_fmt(start, '.1f')} when the summary was written"
    return f"load average {min(loads):.1f}-{max(loads):.1f} at the ends of the runs"


def _backbone(c: dict[str, Any]) -> str:
    """A timm backbone of the config as ``name(key=value, ...)``."""
    kw = ", ".join(f"{k}={v!r}" for k, v in (c.get("backbone_args") or {}).items())
    return f"{c['backbone']}({kw})"


def markdown(summary: dict[str, Any]) -> str:
    """``study.md``: what was run, on what, at what cost, and the tables."""
    c, env = summary["config"], summary["environment"]
    w = c["width"]
    calib = summary["calibration"]
    arms = ", ".join(summary.get("plan", {}).get("arms") or _arms_of(summary))
    lines = [
        f"# Study on {c['dataset']}: {arms}",
        "",
        "Command (from the repository root):",
        "",
        f"    {summary['command']}",
        "",
        f"- Data: {summary['data']}.",
        (
            f"- Network: CIFAR ResNet-18 at width {w} ({w}-{2 * w}-{4 * w}-{8 * w} channels, "
            f"{8 * w}-d features), projector {8 * w} -> "
            if c.get("backbone", "resnet18") == "resnet18"
            else f"- Network: timm `{_backbone(c)}` (pretrained=False, num_classes=0, at the "
            "data's image size), projector features -> "
        )
        + f"{c['proj_hidden_dim']} -> {c['proj_hidden_dim']} -> {c['proj_output_dim']}; "
        "every method's recipe of `w2reg.adapters.lightly` (LARS, warm-up + cosine); the arms' "
        "terms and weights: `examples/_arms.py`.",
        f"- Budget: {c['epochs']} epoch{'s' if c['epochs'] != 1 else ''} at batch "
        f"{c['batch_size']} per run, "
        + (
            f"seeds {', '.join(map(str, c['seeds']))} for "
            f"{', '.join(c['spread_methods'] or c['methods'])}, seed {c['seeds'][0]} for the "
            "others; "
            if len(c["seeds"]) > 1
            else f"seed {c['seeds'][0]} only; "
        )
        + f"{summary['total_seconds'] / 60:.1f} min of runs on {env['device']} "
        f"({env['torch_threads']} torch threads; {_load(summary)}).",
    ]
    if calib:
        steps = ", ".join(f"{m} {v:.2f}" for m, v in calib["seconds_per_step"].items())
        lines.append(
            f"- Epochs chosen to fit {calib['budget_seconds'] / 60:.1f} min"
            + (" (the budget is too small even for 1 epoch)" if calib["budget_too_small"] else "")
            + f": measured seconds per step with W2 ({steps}), "
            f"{calib['eval_seconds']:.1f} s per evaluation, "
            f"{calib['fixed_seconds_per_run']:.1f} s fixed per run; estimated "
            f"{calib['estimated_seconds'] / 60:.1f} min in all."
        )
    lines += [
        f"- Evaluation on {_evaluated_on(c)}: kNN top-1 (k = {c['knn_k']}) against the "
        f"training images' features; linear probe on frozen features ({c['probe_epochs']} "
        "epochs, SGD lr 0.3, no augmentation); W2, L_U (first "
        f"{min(c['lu_samples'], summary['runs'][0]['n_test'])} images), effective rank of the "
        "normalised projections; alignment of two augmented views.",
        "",
        markdown_tables(summary),
        "",
    ]
    return "\n".join(lines)


def readme_table(
    summary: dict[str, Any],
    arms: Sequence[str] | None = None,
    *,
    methods: Sequence[str] | None = None,
    cost: bool = True,
) -> str:
    """A compact Markdown table for the README: per method the linear-probe and kNN top-1,
    test W2 and CPU cost of each arm side by side (``plain / + L_U / + W2 / ...``), bold where
    the arm's difference from plain is larger than the seed spread, and the paper's CIFAR-10
    top-1 of the same arms.

    ``arms``: the arms to show (default: every arm at its default weight, in table order);
    ``methods``: the methods (default: all, in the summary's order); ``cost``: the CPU-time
    column.
    """
    means = _means(summary)
    arms = list(arms or [a for a in _arms_of(summary) if _parse(a).factor is None])
    order = " / ".join(arm_label(a) for a in arms)
    effs = summary["effects"]

    def values(method: str, key: str, spec: str) -> str:
        cells = []
        for arm in arms:
            m = means.get((method, arm))
            cell = "-" if m is None else _fmt(m[key], spec)
            eff = effs.get(arm, {}).get(method)
            cells.append(f"**{cell}**" if eff is not None and eff[key]["beyond_spread"] else cell)
        return " / ".join(cells)

    others = [a for a in arms if a != "plain"]
    head = [
        "method",
        f"linear top-1 % ({order})",
        f"kNN top-1 % ({order})",
        f"test W2 ({order})",
    ]
    if others and cost:
        head.append("CPU s/epoch x plain (" + " / ".join(arm_label(a) for a in others) + ")")
    paper_arms = [a for a in arms if a in TABLE2_ARMS]
    head.append(f"paper CIFAR-10 top-1 % ({' / '.join(arm_label(a) for a in paper_arms)})")
    lines = []
    for method in methods or dict.fromkeys(a["method"] for a in summary["arms"]):
        cells = [
            method_title(method),
            values(method, "linear_top1", ".1f"),
            values(method, "knn_top1", ".1f"),
            values(method, "test_w2", ".3f"),
        ]
        if others and cost:
            cells.append(
                " / ".join(
                    _fmt((effs.get(a, {}).get(method) or {}).get("cpu_time_ratio"), ".2f")
                    for a in others
                )
            )
        published = [_reporting.paper_row(method, a, PAPER_DATASET) for a in paper_arms]
        cells.append(" / ".join(_fmt(None if p is None else p.top1, ".2f") for p in published))
        lines.append(cells)
    return "\n".join(_table(head, lines))


# -- figure ------------------------------------------------------------------------------------
#: An arm's colour in the figure (a sweep's factors: shades of the arm's colour).
ARM_COLOURS = {
    "plain": "#8c8c8c",
    "lu": "#ff7f0e",
    "w2": "#1f77b4",
    "sigreg": "#2ca02c",
    "vicreg": "#d62728",
    "visreg": "#9467bd",
}


def _colours(arms: Sequence[str]) -> dict[str, Any]:
    from matplotlib.colors import to_rgb

    out: dict[str, Any] = {}
    by_name: dict[str, list[str]] = {}
    for arm in arms:
        by_name.setdefault(_parse(arm).name, []).append(arm)
    for name, group_arms in by_name.items():
        base = to_rgb(ARM_COLOURS[name])
        n = len(group_arms)
        for i, arm in enumerate(group_arms):  # light (small factor) to dark (large factor)
            t = 0.0 if n == 1 else 0.55 - 1.1 * i / (n - 1)
            out[arm] = tuple(c + (1 - c) * t if t > 0 else c * (1 + t) for c in base)
    return out


def figure(summary: dict[str, Any], path: Path) -> Path | None:
    """``study.png``: linear top-1 (bars; kNN dots) and test W2 per method, one bar per arm with
    the seeds' range as error bar; below, the test-set spectra of every arm, one panel per
    method (first seed)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is optional
        return None
    means = _means(summary)
    arms = _arms_of(summary)
    colours = _colours(arms)
    methods = list(dict.fromkeys(a["method"] for a in summary["arms"]))
    cols = min(len(methods), 4)
    spectrum_rows = math.ceil(len(methods) / cols)
    bars = len(methods) * len(arms)
    wide = bars > 24  # many bars: accuracy and W2 one above the other, each full width
    top = 2 if wide else 1
    fig = Figure(
        figsize=(min(20.0, max(13.0, 0.3 * bars + 4)), 4.2 * top + 3.0 * spectrum_rows),
        dpi=100,
    )
    grid = fig.add_gridspec(
        top + spectrum_rows, 2 * cols, height_ratios=[1.3] * top + [1] * spectrum_rows
    )
    width = 0.8 / len(arms)
    for col, (key, label) in enumerate(
        [("linear_top1", "top-1 % (bar: linear probe, dot: kNN)"), ("test_w2", "test-set W2")]
    ):
        place = grid[col, :] if wide else grid[0, col * cols : (col + 1) * cols]
        ax = fig.add_subplot(place)
        for arm in arms:  # each method's bars side by side, centred on the method
            idx = [i for i, m in enumerate(methods) if (m, arm) in means]
            rows = [means[(methods[i], arm)] for i in idx]
            xs = []
            for i in idx:
                own = [a for a in arms if (methods[i], a) in means]
                xs.append(i + (own.index(arm) - (len(own) - 1) / 2) * width)
            values = [r[key] for r in rows]
            err = [
                [v - r[f"{key}_range"][0] for v, r in zip(values, rows, strict=True)],
                [r[f"{key}_range"][1] - v for v, r in zip(values, rows, strict=True)],
            ]
            ax.bar(xs, values, width, color=colours[arm], label=arm_label(arm), yerr=err, capsize=2)
            if key == "linear_top1":
                ax.plot(xs, [r["knn_top1"] for r in rows], "o", color="black", ms=3)
        ax.set_xticks(range(len(methods)), [method_title(m) for m in methods], fontsize=8)
        ax.set_ylabel(label, fontsize=9)
        if key == "linear_top1":
            lows = [a[k] for a in summary["arms"] for k in ("knn_top1", "linear_top1")]
            ax.set_ylim(max(0.0, min(lows) - 10), min(100.0, max(lows) + 5))
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=min(len(arms), 6 if wide else 3))
    first_seed = min(r["seed"] for r in summary["runs"])
    m = len(summary["runs"][0]["test_spectrum"])
    for i, method in enumerate(methods):
        r, c = divmod(i, cols)
        ax = fig.add_subplot(grid[top + r, 2 * c : 2 * c + 2])
        for run in summary["runs"]:
            if run["method"] != method or run["seed"] != first_seed:
                continue
            arm = arm_of(run)
            s = [max(v, 1e-8) for v in run["test_spectrum"]]
            ax.semilogy(range(1, len(s) + 1), s, color=colours[arm], lw=1.2, label=arm_label(arm))
        ax.axhline(m**-0.5, color="grey", ls="--", lw=0.8)
        ax.set_title(f"{method_title(method)}: spectrum, seed {first_seed}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        if c == 0:
            ax.set_ylabel("singular value", fontsize=8)
        if i == 0:  # every arm's colour (this method may not have them all)
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], color=colours[a], label=arm_label(a)) for a in arms]
            handles.append(Line2D([], [], color="grey", ls="--", label="uniform 1/sqrt(m)"))
            ax.legend(handles=handles, fontsize=6)
    cfg = summary["config"]
    fig.suptitle(
        f"{cfg['dataset']}: "
        + (
            f"ResNet-18 width {cfg['width']}"
            if cfg.get("backbone", "resnet18") == "resnet18"
            else _backbone(cfg)
        )
        + f", {cfg['epochs']} epoch{'s' if cfg['epochs'] != 1 else ''}, batch "
        f"{cfg['batch_size']}; evaluated on {_evaluated_on(cfg)}; error bars: range of the seeds",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
