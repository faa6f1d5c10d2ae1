"""W2 against the sample size: truly uniform samples, the floor formula, and test embeddings.

Part 1 (always): for every ``m`` of ``--dims`` and ``N`` of ``--sizes`` (64 ... 10,000), W2
(:func:`w2reg.w2_uniformity`, float64, exact) of ``draws`` truly uniform samples (normalised
Gaussian rows), their mean and standard deviation, next to :func:`w2reg.w2_floor` (the
formula), its Marchenko-Pastur leading order alone, and :func:`w2reg.w2_lower_bound` (the
least any ``N`` unit rows can score).

Part 2 (``--study-run METHOD:ARM ...``): the study's test embeddings. Each run of
``examples/study.py`` (its own code: ``Study.pretrain`` with ``--study-args``, the study's
arguments) is pre-trained, the projections of its test set are embedded (and saved to
``<out>/embeddings_<run>.pt``; ``--embeddings FILE`` reuses such a file without training),
and W2 of random subsets of ``N`` rows is measured against the floor at that ``N``: how much
of a measured W2 is the sample size, how much the embedding.

Part 3 (``--study-results DIR ...``): finished studies' runs (``runs/*.json``): test W2 at
the test set's size and training-batch W2 at ``2 x batch`` rows, each next to its floor.

Written: ``--json`` (all numbers) and ``--plot`` (W2 against N, log-log, the floor as lines).

Usage::

    python benchmarks/bench_floor.py                       # part 1, a minute on one core
    python benchmarks/bench_floor.py --study-results benchmarks/results/study_cpu   # + part 3
    python benchmarks/bench_floor.py --study-run byol:w2 --study-args "--dataset \\
        fashion-mnist --width 16 --proj-hidden-dim 1024 --train-subset 8192 \\
        --test-subset 5000 --epochs 5 --threads 2"          # + part 2 (one study run)

One thread by default (``--threads``): small eigendecompositions gain nothing from a second
thread on a shared machine and lose a lot.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

import w2reg
from w2reg.floor import mp_mean_sqrt

ROOT = Path(__file__).resolve().parents[1]
SIZES = [64, 128, 256, 512, 1024, 2048, 4096, 10_000]
DIMS = [32, 64, 128, 256, 512]


def draws_for(n: int, base: int) -> int:
    """Fewer draws where one draw is already precise (and dear): ``base`` up to 1,024 rows."""
    return max(4, base if n <= 1024 else base // 2 if n <= 4096 else base // 4)


def leading_order(n: int, m: int) -> float:
    """The Marchenko-Pastur order alone: ``2(1 - p sqrt(q) c(p/q) / (m sqrt(n)))``, rooted."""
    p, q = min(m, n - 1), max(m, n - 1)
    return math.sqrt(max(2 * (1 - p * math.sqrt(q) * mp_mean_sqrt(p / q) / (m * math.sqrt(n))), 0))


def _stats(values: list[float]) -> dict[str, float]:
    t = torch.tensor(values, dtype=torch.float64)
    sd = float(t.std()) if len(values) > 1 else float("nan")
    return {"mean": float(t.mean()), "sd": sd, "se": sd / math.sqrt(len(values))}


def uniform_part(sizes: list[int], dims: list[int], base_draws: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for m in dims:
        for n in sizes:
            draws = draws_for(n, base_draws)
            w2 = [
                float(w2reg.w2_uniformity(torch.randn(n, m, generator=g, dtype=torch.float64)))
                for _ in range(draws)
            ]
            s = _stats(w2)
            floor = w2reg.w2_floor(n, m)
            rows.append(
                {
                    "n": n,
                    "m": m,
                    "draws": draws,
                    "w2_mean": s["mean"],
                    "w2_sd": s["sd"],
                    "w2_se": s["se"],
                    "floor": floor,
                    "leading_order": leading_order(n, m),
                    "lower_bound": w2reg.w2_lower_bound(n, m),
                    "floor_minus_mean_in_se": (floor - s["mean"]) / s["se"] if s["se"] else None,
                }
            )
            print(
                f"m={m:4d} N={n:6d}: W2 {s['mean']:.5f} +- {s['sd']:.5f} (sd, {draws} draws)  "
                f"floor {floor:.5f} ({(floor - s['mean']) / s['se']:+.1f} se)  "
                f"MP order {leading_order(n, m):.5f}  bound {w2reg.w2_lower_bound(n, m):.4f}",
                flush=True,
            )
    return rows


# -- part 2: the study's test embeddings -------------------------------------------------------
def study_embeddings(run_spec: str, study_args: str, out_dir: Path) -> tuple[str, torch.Tensor]:
    """Pre-train one study run with the study's own code; its test-set projections."""
    sys.path.insert(0, str(ROOT / "examples"))
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_floor_study", ROOT / "examples/study.py")
    assert spec is not None and spec.loader is not None
    study = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = study  # its dataclasses look their module up
    spec.loader.exec_module(study)
    import _arms as arms  # the study's helper, on sys.path now

    from w2reg.adapters.embedding import embed_loader

    method, _, arm = run_spec.partition(":")
    args = study.build_parser().parse_args(shlex.split(study_args))
    study._check(args)
    study._quiet()
    if args.epochs is None:
        raise SystemExit("--study-args must give --epochs (no time budget here)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    s = study.Study(args)
    run = study.Run(method, arms.Arm.parse(arm or "w2"), args.seeds[0])
    model, _, _ = s.pretrain(run, args.epochs)
    (z,) = embed_loader(model, s.test_loader)[:1]
    name = f"{run.name}_{args.dataset}"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"name": name, "z": z, "study_args": study_args}, out_dir / f"embeddings_{name}.pt")
    return name, z


def embedding_part(name: str, z: torch.Tensor, sizes: list[int], base: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    total, m = z.shape
    z = z.to(torch.float64)
    rows = []
    for n in [s for s in sizes if s <= total] + ([total] if total not in sizes else []):
        draws = 1 if n == total else draws_for(n, base)
        w2 = [
            float(w2reg.w2_uniformity(z[torch.randperm(total, generator=g)[:n]]))
            for _ in range(draws)
        ]
        s = _stats(w2)
        floor = w2reg.w2_floor(n, m)
        rows.append(
            {"n": n, "draws": draws, "w2_mean": s["mean"], "w2_sd": s["sd"], "floor": floor}
        )
        print(
            f"{name} N={n:6d}: W2 {s['mean']:.4f}  floor {floor:.4f}  above {s['mean'] - floor:.4f}"
        )
    return {"name": name, "n_total": total, "m": m, "rows": rows}


def study_runs_part(folders: list[Path]) -> list[dict[str, Any]]:
    """Committed study runs: their test W2 at the test set's N against the floor there, and
    their training-batch W2 (the epoch mean of the term's value, on ``2 x batch`` rows: two
    views) against the floor at that N. W2 is recomputed from the saved spectrum (for unit
    rows ``W2^2 = 2 (1 - sum(s) / sqrt(m))``) as a check of the saved value."""
    rows = []
    for folder in folders:
        for path in sorted((folder / "runs").glob("*.json")):
            r = json.loads(path.read_text())
            spectrum, n = r["test_spectrum"], int(r["n_test"])
            m = len(spectrum)
            from_spectrum = math.sqrt(max(2 * (1 - sum(spectrum) / math.sqrt(m)), 0.0))
            batch_rows = 2 * int(r["run_config"]["batch_size"])
            rows.append(
                {
                    "study": folder.name,
                    "run": r["run"],
                    "n_test": n,
                    "m": m,
                    "test_w2": r["test_w2"],
                    "test_w2_from_spectrum": from_spectrum,
                    "test_floor": w2reg.w2_floor(n, m),
                    "test_effective_rank": r["test_effective_rank"],
                    "knn_top1": r["knn_top1"],
                    "train_rows": batch_rows,
                    "train_w2": r.get("train_w2"),
                    "train_floor": w2reg.w2_floor(batch_rows, m),
                    "train_lower_bound": w2reg.w2_lower_bound(batch_rows, m),
                }
            )
            x = rows[-1]
            print(
                f"{folder.name}/{x['run']}: test W2 {x['test_w2']:.4f} (floor at N={n}: "
                f"{x['test_floor']:.4f}); train W2 {x['train_w2'] or float('nan'):.4f} (floor at "
                f"N={batch_rows}: {x['train_floor']:.4f})"
            )
    return rows


def plot(result: dict[str, Any], path: Path) -> Path | None:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    embeddings = result.get("embeddings") or []
    fig = Figure(figsize=(11 if embeddings else 6.5, 4.6), dpi=110)
    axes = fig.subplots(1, 2 if embeddings else 1, squeeze=False)[0]
    ax = axes[0]
    rows = result["uniform"]
    dims = sorted({r["m"] for r in rows})
    colors = dict(zip(dims, ["C0", "C1", "C2", "C3", "C4", "C5"], strict=False))
    for m in dims:
        rs = [r for r in rows if r["m"] == m]
        ns = [r["n"] for r in rs]
        ax.errorbar(
            ns, [r["w2_mean"] for r in rs], yerr=[r["w2_sd"] for r in rs], fmt="o", ms=3,
            color=colors[m], label=f"uniform, m={m}",
        )  # fmt: skip
        grid = sorted({*ns, *[int(x) for x in torch.logspace(math.log10(ns[0]), 4, 60)]})
        ax.plot(grid, [w2reg.w2_floor(n, m) for n in grid], color=colors[m], lw=1)
        bound = [(n, w2reg.w2_lower_bound(n, m)) for n in grid if n <= m]
        if bound:
            ax.plot(*zip(*bound, strict=True), color=colors[m], lw=1, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (rows of the sample)")
    ax.set_ylabel("W2")
    ax.set_title("truly uniform samples (dots, +-1 sd); w2_floor (lines);\n"
                 "w2_lower_bound for N <= m (dotted)", fontsize=9)  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if embeddings:
        ax = axes[1]
        for i, e in enumerate(embeddings):
            ns = [r["n"] for r in e["rows"]]
            c = f"C{i}"
            ax.plot(ns, [r["w2_mean"] for r in e["rows"]], "o-", ms=3, color=c, label=e["name"])
            ax.plot(ns, [r["floor"] for r in e["rows"]], "--", color=c, lw=1,
                    label=f"floor at m={e['m']}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("N (random test rows)")
        ax.set_ylabel("W2")
        ax.set_title("test-set projections of study runs", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="sample sizes N")
    p.add_argument("--dims", type=int, nargs="+", default=DIMS, help="dimensions m")
    p.add_argument("--draws", type=int, default=16, help="draws per point up to N = 1,024")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument(
        "--study-run",
        nargs="*",
        default=[],
        help="METHOD:ARM runs of the study, e.g. byol:plain byol:w2 (each pre-trained in turn)",
    )
    p.add_argument(
        "--study-args", default="", help="the study's arguments (examples/study.py) for those runs"
    )
    p.add_argument("--embeddings", type=Path, nargs="*", default=[], help="saved embeddings")
    p.add_argument(
        "--study-results",
        type=Path,
        nargs="*",
        default=[],
        help="folders of finished studies (runs/*.json): their W2 against the floor",
    )
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results" / "floor")
    p.add_argument("--json", type=Path, default=None, help="default: <out-dir>/bench_floor.json")
    p.add_argument("--plot", type=Path, default=None, help="default: <out-dir>/bench_floor.png")
    a = p.parse_args(argv)
    if min(a.sizes) < 2 or min(a.dims) < 1 or a.draws < 2:
        raise SystemExit("--sizes must be >= 2, --dims >= 1, --draws >= 2")
    torch.set_num_threads(a.threads)
    start = time.perf_counter()
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_floor.py " + shlex.join(argv or sys.argv[1:]),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "uniform": uniform_part(a.sizes, a.dims, a.draws, a.seed),
        "embeddings": [],
        "study_runs": study_runs_part(a.study_results),
    }
    sources = []
    for path in a.embeddings:
        saved = torch.load(path)
        sources.append((saved["name"], saved["z"]))
    for run_spec in a.study_run:
        sources.append(study_embeddings(run_spec, a.study_args, a.out_dir))
    for name, z in sources:
        result["embeddings"].append(embedding_part(name, z, a.sizes, a.draws, a.seed + 1))
    if not sources:
        result["embeddings_note"] = (
            "no test embeddings: give --study-run METHOD:ARM ... --study-args '...' (trains "
            "each study run) or --embeddings FILE"
        )
    result["seconds"] = time.perf_counter() - start
    json_path = a.json or a.out_dir / "bench_floor.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    figure = plot(result, a.plot or a.out_dir / "bench_floor.png")
    print(f"written: {json_path}" + (f", {figure}" if figure else ""))
    return result


if __name__ == "__main__":
    main()
