"""The paper's property study: which uniformity metric behaves as a uniformity metric should.

Fang et al. (ICLR 2024, Sec. 3 and Table 1) ask four things of a uniformity metric ``U``
(lower = more uniform) and then look at dimensional collapse. This script measures each one for
the W2 uniformity (``w2reg.w2_uniformity``) and Wang & Isola's ``L_U``
(``w2reg.wang_isola_uniformity``) on a sample ``Z`` drawn uniformly from the unit sphere
(normalised Gaussian rows, ``N = 1024``, ``m = 64`` by default):

====================  ========================================  ========================
property              transformation of Z                       a good metric
====================  ========================================  ========================
instance permutation  reorder the rows                          does not change
instance cloning      repeat every row k times                  does not change
feature cloning       ``[Z, ..., Z] / sqrt(k)``                 gets worse (higher)
feature baby          append zero coordinates, renormalise      gets worse (higher)
collapse degree       zero a fraction eta of the coordinates,   gets worse at every
                      renormalise                               step of eta
dimension sweep       the collapse gap (eta 0.5 vs 0) as m      stays visible (keeps
                      grows from 4 to 256 (N = 1024)            half of it or more)
====================  ========================================  ========================

The verdicts are measured, not copied: "does not change" means a relative change below
``1e-9`` (the arithmetic is float64), "gets worse" means strictly higher at every step. The
printed table puts the paper's verdicts next to them. One figure per study goes to
``--out-dir``.

Usage::

    python examples/properties.py --out-dir properties_figures
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

import w2reg

METRICS: dict[str, Callable[[Tensor], float]] = {
    "W2": lambda z: float(w2reg.w2_uniformity(z)),
    "L_U": lambda z: float(w2reg.wang_isola_uniformity(z)),
}

#: Paper verdicts (Table 1; the last two rows from its collapse and dimension analyses).
PAPER = {
    "instance permutation": {"W2": True, "L_U": True},
    "instance cloning": {"W2": True, "L_U": False},
    "feature cloning": {"W2": True, "L_U": False},
    "feature baby": {"W2": True, "L_U": False},
    "collapse degree": {"W2": True, "L_U": True},
    "dimension sweep": {"W2": True, "L_U": False},
}

INVARIANCE_RTOL = 1e-9
#: Dimension sweep: the collapse gap at the largest m must keep this share of the gap at
#: the smallest m (W2's population gap, 2 - 2 sqrt(1 - eta) under the square root, does not
#: depend on m; L_U's shrinks like 1/m).
GAP_KEEP = 0.5


def uniform_sphere(n: int, m: int, generator: torch.Generator) -> Tensor:
    """``(n, m)`` float64 rows uniform on the unit sphere."""
    return F.normalize(torch.randn(n, m, generator=generator, dtype=torch.float64), dim=1)


def feature_clone(z: Tensor, copies: int) -> Tensor:
    """``[Z, ..., Z] / sqrt(copies)``: same pairwise geometry, redundant features."""
    return torch.cat([z] * copies, dim=1) / math.sqrt(copies)


def feature_baby(z: Tensor, extra: int) -> Tensor:
    """Append ``extra`` zero coordinates, then renormalise (the rows keep unit norm)."""
    return F.normalize(torch.cat([z, z.new_zeros(z.shape[0], extra)], dim=1), dim=1)


def collapse(z: Tensor, eta: float) -> Tensor:
    """Zero the last ``round(eta * m)`` coordinates, then renormalise."""
    m = z.shape[1]
    k = min(round(eta * m), m - 1)
    out = z.clone()
    if k > 0:
        out[:, m - k :] = 0
    return F.normalize(out, dim=1)


def _unchanged(base: float, values: Sequence[float]) -> bool:
    return all(abs(v - base) <= INVARIANCE_RTOL * max(1.0, abs(base)) for v in values)


def _strictly_increasing(values: Sequence[float]) -> bool:
    return all(
        b > a + INVARIANCE_RTOL * max(1.0, abs(a)) for a, b in zip(values, values[1:], strict=False)
    )


def run_study(n: int, m: int, seed: int, sweep_n: int = 1024) -> dict[str, dict[str, object]]:
    """Measure every property for every metric; return curves and verdicts."""
    gen = torch.Generator().manual_seed(seed)
    z = uniform_sphere(n, m, gen)
    out: dict[str, dict[str, object]] = {}

    perms = [torch.randperm(n, generator=gen) for _ in range(3)]
    clones = [1, 2, 3, 4]
    copies = [1, 2, 3, 4]
    babies = [0, m // 2, m, 2 * m, 4 * m]
    etas = [round(0.1 * i, 1) for i in range(10)]
    dims = [4, 8, 16, 32, 64, 128, 256]
    sweep_etas = [0.0, 0.25, 0.5, 0.75]

    for name, metric in METRICS.items():
        base = metric(z)
        permuted = [metric(z[p]) for p in perms]
        cloned = [metric(z.repeat_interleave(k, dim=0)) for k in clones]
        fclone = [metric(feature_clone(z, k)) for k in copies]
        baby = [metric(feature_baby(z, k)) for k in babies]
        coll = [metric(collapse(z, e)) for e in etas]
        sweep = {
            e: [metric(collapse(uniform_sphere(sweep_n, d, gen), e)) for d in dims]
            for e in sweep_etas
        }
        gaps = [b - a for a, b in zip(sweep[0.0], sweep[0.5], strict=True)]
        out[name] = {
            "base": base,
            "curves": {
                "instance permutation": (list(range(1, len(perms) + 1)), permuted),
                "instance cloning": (clones, cloned),
                "feature cloning": (copies, fclone),
                "feature baby": (babies, baby),
                "collapse degree": (etas, coll),
                "dimension sweep": (dims, sweep),
            },
            "verdicts": {
                "instance permutation": _unchanged(base, permuted),
                "instance cloning": _unchanged(base, cloned),
                "feature cloning": _strictly_increasing(fclone),
                "feature baby": _strictly_increasing(baby),
                "collapse degree": _strictly_increasing(coll),
                "dimension sweep": gaps[0] > 0 and gaps[-1] >= GAP_KEEP * gaps[0],
            },
            "collapse_gap": {"m": dims, "gap": gaps},
        }
    return out


EXPECTATIONS = {
    "instance permutation": "unchanged",
    "instance cloning": "unchanged",
    "feature cloning": "gets worse",
    "feature baby": "gets worse",
    "collapse degree": "worse as eta grows",
    "dimension sweep": "collapse gap kept",
}


def format_table(study: dict[str, dict[str, object]]) -> str:
    """The ✓/✗ table, measured next to the paper's."""
    names = list(METRICS)
    head = f"{'property':<22}{'a good metric':<20}"
    head += "".join(f"{n:>6}" for n in names) + "   paper: " + " ".join(f"{n:>4}" for n in names)
    lines = [head, "-" * len(head)]
    for prop, expect in EXPECTATIONS.items():
        row = f"{prop:<22}{expect:<20}"
        row += "".join(f"{'✓' if study[n]['verdicts'][prop] else '✗':>6}" for n in names)
        row += "          " + " ".join(f"{'✓' if PAPER[prop][n] else '✗':>4}" for n in names)
        lines.append(row)
    return "\n".join(lines)


def _labels() -> dict[str, tuple[str, str]]:
    return {
        "instance cloning": ("instance cloning", "copies k of every row"),
        "feature cloning": ("feature cloning", "copies k of the features, [Z,..,Z]/sqrt(k)"),
        "feature baby": ("feature baby", "zero coordinates appended"),
        "collapse degree": ("collapse degree", "fraction eta of coordinates zeroed"),
    }


def save_figures(study: dict[str, dict[str, object]], out_dir: Path) -> list[Path]:
    """One PNG per study (a panel per metric) plus the dimension sweep; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for prop, (title, xlabel) in _labels().items():
        fig, axes = plt.subplots(1, len(METRICS), figsize=(8, 3.2), dpi=110)
        for ax, name in zip(axes, METRICS, strict=True):
            xs, ys = study[name]["curves"][prop]  # type: ignore[index]
            ax.plot(xs, ys, marker="o")
            ax.set_title(f"{name}   ({'✓' if study[name]['verdicts'][prop] else '✗'})")  # type: ignore[index]
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("metric (lower = more uniform)")
        fig.suptitle(f"{title} (a good metric: {EXPECTATIONS[prop]})")
        fig.tight_layout()
        path = out_dir / f"{prop.replace(' ', '_')}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)

    fig, axes = plt.subplots(1, len(METRICS), figsize=(8, 3.2), dpi=110)
    for ax, name in zip(axes, METRICS, strict=True):
        dims, sweep = study[name]["curves"]["dimension sweep"]  # type: ignore[index]
        for eta, ys in sweep.items():
            ax.semilogx(dims, ys, marker="o", base=2, label=f"eta={eta:g}")
        verdict = "✓" if study[name]["verdicts"]["dimension sweep"] else "✗"  # type: ignore[index]
        ax.set_title(f"{name}   ({verdict})")
        ax.set_xlabel("dimension m")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("metric (lower = more uniform)")
    axes[-1].legend(fontsize=8)
    fig.suptitle("dimension sweep: does collapse stay visible as m grows?")
    fig.tight_layout()
    path = out_dir / "dimension_sweep.png"
    fig.savefig(path)
    plt.close(fig)
    paths.append(path)
    return paths


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Reproduce the property study of Fang et al. (ICLR 2024) for W2 and L_U.",
    )
    p.add_argument("--n", type=int, default=1024, help="samples on the sphere (1024)")
    p.add_argument("--dim", type=int, default=64, help="embedding dimension m (64)")
    p.add_argument(
        "--sweep-n", type=int, default=1024, help="samples per point of the dimension sweep"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument(
        "--out-dir",
        type=Path,
        default=Path("properties_figures"),
        help="folder for the PNG figures (properties_figures)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    p.add_argument("--no-figures", action="store_true", help="print the table only")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """Run the study, print the table, save the figures; return verdicts and curves."""
    args = build_parser().parse_args(argv)
    if args.n < 2 or args.dim < 2:
        raise SystemExit("--n and --dim must be at least 2")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, args.threads))
    try:
        return _report(args)
    finally:
        torch.set_num_threads(previous_threads)


def _report(args: argparse.Namespace) -> dict[str, object]:
    study = run_study(args.n, args.dim, args.seed, sweep_n=args.sweep_n)
    print(f"Uniform sample on the sphere: N={args.n}, m={args.dim}, seed={args.seed}")
    print(f"base values: W2={study['W2']['base']:.4f}  L_U={study['L_U']['base']:.4f}\n")
    print(format_table(study))
    for name in METRICS:
        gap = study[name]["collapse_gap"]  # type: ignore[index]
        print(
            f"\n{name}: collapse gap (eta=0.5 minus eta=0) at m={gap['m'][0]}: "
            f"{gap['gap'][0]:.4f}, at m={gap['m'][-1]}: {gap['gap'][-1]:.4f}",
            end="",
        )
    print()
    figures = [] if args.no_figures else save_figures(study, args.out_dir)
    if figures:
        print(f"\n{len(figures)} figures written to {args.out_dir}/")
    verdicts = {name: dict(study[name]["verdicts"]) for name in METRICS}  # type: ignore[call-overload]
    return {"verdicts": verdicts, "study": study, "figures": [str(p) for p in figures]}


if __name__ == "__main__":
    main(sys.argv[1:])
