"""The study's summary: per-arm means, the W2 effects against the seed spread, tables, figure.

A *spread* is the largest difference between two seeds of the same method and arm (plain or
W2) for one metric. A method run at several seeds is held against its own spread; a method
run at one seed against the largest spread of the methods that have several (stated in the
table). A W2 effect (W2 arm minus plain arm, paired by seed, averaged) no larger than its
spread is reported as within the spread: not evidence either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Metrics of a run compared between the arms: key -> (label, format, higher is better).
METRICS: dict[str, tuple[str, str, bool | None]] = {
    "linear_top1": ("linear top-1 %", ".2f", True),
    "knn_top1": ("kNN top-1 %", ".2f", True),
    "test_w2": ("test W2", ".3f", False),
    "test_lu": ("L_U", ".3f", False),
    "test_effective_rank": ("eff. rank", ".1f", True),
    "test_alignment": ("alignment", ".3f", False),
    "seconds_per_epoch": ("s/epoch", ".1f", None),
}
#: The metrics the seed spread is judged on (time is not a result of the seed).
EFFECT_METRICS = [k for k in METRICS if k != "seconds_per_epoch"]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _arms(rows: Sequence[dict[str, Any]]) -> dict[str, dict[bool, list[dict[str, Any]]]]:
    arms: dict[str, dict[bool, list[dict[str, Any]]]] = {}
    for row in rows:
        arms.setdefault(row["method"], {False: [], True: []})[bool(row["w2"])].append(row)
    return arms


def seed_spread(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method with two or more seeds in both arms: metric -> max over arms of the range."""
    out: dict[str, dict[str, float]] = {}
    for method, arms in _arms(rows).items():
        if min(len(arms[False]), len(arms[True])) < 2:
            continue
        out[method] = {
            key: max(
                max(r[key] for r in arms[arm]) - min(r[key] for r in arms[arm])
                for arm in (False, True)
            )
            for key in EFFECT_METRICS
        }
    return out


def effects(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method: W2 minus plain per metric (paired by seed), its spread and verdict."""
    spreads = seed_spread(rows)
    reference = {
        key: max((s[key] for s in spreads.values()), default=None) for key in EFFECT_METRICS
    }
    out: dict[str, dict[str, Any]] = {}
    for method, arms in _arms(rows).items():
        plain = {r["seed"]: r for r in arms[False]}
        paired = [(plain[r["seed"]], r) for r in arms[True] if r["seed"] in plain]
        if not paired:
            continue
        own = spreads.get(method)
        entry: dict[str, Any] = {
            "seeds": sorted(r["seed"] for _, r in paired),
            "spread_from": "own seeds" if own else ("other methods" if spreads else None),
        }
        for key in METRICS:
            delta = _mean([w[key] - p[key] for p, w in paired])
            spread = None if key not in EFFECT_METRICS else (own or reference).get(key)
            entry[key] = {
                "delta": delta,
                "spread": spread,
                "beyond_spread": None if spread is None else bool(abs(delta) > spread),
            }
        entry["time_ratio"] = _mean(
            [w["seconds_per_epoch"] / p["seconds_per_epoch"] for p, w in paired]
        )
        # CPU time of the whole pre-training: steadier than wall time on a shared machine
        cpu = [(p.get("pretrain_cpu_seconds"), w.get("pretrain_cpu_seconds")) for p, w in paired]
        entry["cpu_time_ratio"] = (
            _mean([b / a for a, b in cpu]) if all(a and b for a, b in cpu) else None
        )
        out[method] = entry
    return out


def build(
    rows: Sequence[dict[str, Any]],
    *,
    config: dict[str, Any],
    command: str,
    data_line: str,
    calibration: dict[str, Any] | None,
    environment: dict[str, Any],
) -> dict[str, Any]:
    """The content of ``study.json``."""
    arms = []
    for method, by_arm in _arms(rows).items():
        for w2 in (False, True):
            runs = by_arm[w2]
            if not runs:
                continue
            arm: dict[str, Any] = {"method": method, "w2": w2, "seeds": [r["seed"] for r in runs]}
            for key in METRICS:
                values = [r[key] for r in runs]
                arm[key] = _mean(values)
                arm[f"{key}_range"] = [min(values), max(values)]
            arms.append(arm)
    seconds = sum(r["pretrain_seconds"] + r["eval_seconds"] for r in rows)
    return {
        "command": command,
        "data": data_line,
        "config": config,
        "calibration": calibration,
        "environment": environment,
        "total_seconds": seconds,
        "arms": arms,
        "effects": effects(rows),
        "seed_spread": seed_spread(rows),
        "runs": list(rows),
    }


# -- Markdown ----------------------------------------------------------------------------------
def _fmt(value: Any, spec: str, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, ("+" if sign else "") + spec)


def markdown_tables(summary: dict[str, Any]) -> str:
    """The two tables: every arm's numbers, and the W2 effect per method with its spread."""
    head = ["method", "W2 term", "seeds", *(label for label, _, _ in METRICS.values())]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in summary["arms"]:
        cells = [arm["method"], "yes" if arm["w2"] else "no", ",".join(map(str, arm["seeds"]))]
        for key, (_, spec, _) in METRICS.items():
            lo, hi = arm[f"{key}_range"]
            cell = _fmt(arm[key], spec)
            if len(arm["seeds"]) > 1 and key in EFFECT_METRICS:
                cell += f" ({_fmt(lo, spec)}-{_fmt(hi, spec)})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")

    head = ["method", *(f"Δ {METRICS[k][0]}" for k in EFFECT_METRICS)]
    head += ["time W2/plain (wall, CPU)", "spread"]
    eff = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, entry in summary["effects"].items():
        cells = [method]
        for key in EFFECT_METRICS:
            e, spec = entry[key], METRICS[key][1]
            cell = _fmt(e["delta"], spec, sign=True)
            if e["spread"] is not None:
                cell += f" (±{_fmt(e['spread'], spec)})"
                cell = f"**{cell}**" if e["beyond_spread"] else cell
            cells.append(cell)
        ratio = f"{_fmt(entry['time_ratio'], '.2f')}, {_fmt(entry.get('cpu_time_ratio'), '.2f')}"
        cells += [ratio, entry["spread_from"] or "not measured"]
        eff.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(eff)


def _load(summary: dict[str, Any]) -> str:
    """How busy the machine was: the 1-minute load average at the end of the runs."""
    loads = [r["load_average"] for r in summary["runs"] if r.get("load_average") is not None]
    if not loads:
        start = (summary["environment"].get("load_average_start") or [None])[0]
        return f"load average {_fmt(start, '.1f')} when the summary was written"
    return f"load average {min(loads):.1f}-{max(loads):.1f} at the ends of the runs"


def markdown(summary: dict[str, Any]) -> str:
    """``study.md``: what was run, on what, at what cost, and the two tables."""
    c, env = summary["config"], summary["environment"]
    w = c["width"]
    spread = summary["seed_spread"]
    calib = summary["calibration"]
    lines = [
        f"# W2 study on {c['dataset']}",
        "",
        "Command (from the repository root):",
        "",
        f"    {summary['command']}",
        "",
        f"- Data: {summary['data']}.",
        f"- Network: CIFAR ResNet-18 at width {w} ({w}-{2 * w}-{4 * w}-{8 * w} channels, "
        f"{8 * w}-d features), projector {8 * w} -> {c['proj_hidden_dim']} -> "
        f"{c['proj_hidden_dim']} -> {c['proj_output_dim']}; every method's recipe of "
        "`w2reg.adapters.lightly` (LARS, warm-up + cosine, default W2 weights).",
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
        f"- Evaluation on the test images: kNN top-1 (k = {c['knn_k']}) against the "
        f"training images' features; linear probe on frozen features ({c['probe_epochs']} "
        "epochs, SGD lr 0.3, no augmentation); W2, L_U (first "
        f"{min(c['lu_samples'], summary['runs'][0]['n_test'])} images), effective rank of the "
        "normalised projections; alignment "
        "of two augmented views.",
        "",
        "## Runs",
        "",
        "Mean over seeds; the range of the seeds in parentheses.",
        "",
        markdown_tables(summary).split("\n\n")[0],
        "",
        "## Effect of the W2 term (W2 minus plain, paired by seed)",
        "",
        "In parentheses the seed spread: the largest difference between two seeds of one "
        "method and arm ("
        + (
            "own seeds where the method ran at several, else the largest over " + ", ".join(spread)
            if spread
            else "not measured: run some methods at two seeds with --spread-methods"
        )
        + "). **Bold**: the difference is larger than the spread; otherwise it is within "
        "the spread between seeds and shows no effect either way.",
        "",
        markdown_tables(summary).split("\n\n")[1],
        "",
    ]
    return "\n".join(lines)


# -- figure ------------------------------------------------------------------------------------
def figure(summary: dict[str, Any], path: Path) -> Path | None:
    """``study.png``: linear/kNN top-1 and test W2 per method and arm, and the spectra."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is optional
        return None
    arms = {(a["method"], a["w2"]): a for a in summary["arms"]}
    methods = list(dict.fromkeys(a["method"] for a in summary["arms"]))
    fig = Figure(figsize=(13, 8.5), dpi=100)
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.1])
    colours = {False: "#8c8c8c", True: "#1f77b4"}
    x = list(range(len(methods)))
    for col, (key, label) in enumerate(
        [("linear_top1", "top-1 % (bar: linear probe, dot: kNN)"), ("test_w2", "test-set W2")]
    ):
        ax = fig.add_subplot(grid[0, col])
        for w2, offset in ((False, -0.2), (True, 0.2)):
            xs = [i + offset for i, m in enumerate(methods) if (m, w2) in arms]
            rows = [arms[(m, w2)] for m in methods if (m, w2) in arms]
            values = [r[key] for r in rows]
            err = [
                [v - r[f"{key}_range"][0] for v, r in zip(values, rows, strict=True)],
                [r[f"{key}_range"][1] - v for v, r in zip(values, rows, strict=True)],
            ]
            name = "with W2" if w2 else "plain"
            ax.bar(xs, values, 0.4, color=colours[w2], label=name, yerr=err, capsize=2)
            if key == "linear_top1":
                ax.plot(xs, [r["knn_top1"] for r in rows], "o", color="black", ms=4)
        ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        if key == "linear_top1":
            lows = [a["knn_top1"] for a in summary["arms"]]
            lows += [a["linear_top1"] for a in summary["arms"]]
            ax.set_ylim(max(0.0, min(lows) - 10), min(100.0, max(lows) + 5))
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[1, :])
    palette = [f"C{i}" for i in range(10)]
    first_seed = min(r["seed"] for r in summary["runs"])
    for i, method in enumerate(methods):
        for run in summary["runs"]:
            if run["method"] != method or run["seed"] != first_seed:
                continue
            s = [max(v, 1e-8) for v in run["test_spectrum"]]
            ax.semilogy(
                range(1, len(s) + 1),
                s,
                color=palette[i % 10],
                ls="-" if run["w2"] else ":",
                lw=1.4 if run["w2"] else 1.0,
                label=f"{method} {'W2' if run['w2'] else 'plain'}",
            )
    m = len(summary["runs"][0]["test_spectrum"])
    ax.axhline(m**-0.5, color="grey", ls="--", lw=1, label="uniform 1/sqrt(m)")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value (test set, normalised projections)")
    ax.set_title(f"spectra, seed {first_seed}: solid with W2, dotted plain", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=4)
    c = summary["config"]
    fig.suptitle(
        f"{c['dataset']}: ResNet-18 width {c['width']}, {c['epochs']} epochs, batch "
        f"{c['batch_size']}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
