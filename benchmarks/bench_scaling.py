"""How each W2 method's time and memory grow with N and m, up to 8192 x 8192.

Three sweeps of Gaussian float32 embeddings, forward + backward of
:func:`w2reg.w2_uniformity` with ``method`` in ``exact``, ``iterative``, ``eigh32``:

* ``N`` from 256 to 8192 at ``m = 256`` (a bigger global batch);
* ``m`` from 256 to 8192 at ``N = 256`` (a wider projector, VICReg-style 8192);
* ``N = m`` from 256 to 8192 (a VICReg-size projector on 32 GPUs with 256 images each,
  gathered with ``gather_distributed=True``: 8192 x 8192).

Each point: median time of a few runs after one warm-up, and peak memory above the inputs --
on CPU the growth of the peak resident set (``ru_maxrss``, which includes one-time library
workspaces) of a fresh child process per point, on CUDA ``torch.cuda.max_memory_allocated``
after ``reset_peak_memory_stats`` (in one process, ``--in-process``, the default there).
A point whose predicted time exceeds ``--max-seconds`` is not run but **extrapolated** from
the measured points of the same method with the two-term cost model

    time   = a * k^3 + b * N * m * k       (k = min(N, m): eigensolver / Gram-side cubes,
                                            and the N x m x k products)
    memory = c * N * m + d * k^2

fitted by least squares on the measured points (all three sweeps); such rows are labelled
``extrapolated``. Gaussian square matrices have singular values down to ~0, so ``eigh32``
falls back to the exact decomposition there (its time then includes the float32 attempt).

Usage::

    python benchmarks/bench_scaling.py --device cpu --threads 1 --max-seconds 30 \\
        --json benchmarks/results/bench_scaling_cpu.json
    python benchmarks/bench_scaling.py --device cuda --max-seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch

METHODS = ["exact", "iterative", "eigh32"]
SIDES = [256, 512, 1024, 2048, 4096, 8192]
SWEEPS: dict[str, list[tuple[int, int]]] = {
    "N (m=256)": [(n, 256) for n in SIDES],
    "m (N=256)": [(256, m) for m in SIDES],
    "N = m": [(s, s) for s in SIDES],
}


# --------------------------------------------------------------------------- child
def child(method: str, n: int, m: int, device: str, threads: int, repeats: int) -> dict:
    """Time and peak memory of one point, in this (fresh) process."""
    import w2reg

    if threads > 0:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    z = torch.randn(n, m, device=dev)

    def run() -> None:
        leaf = z.detach().requires_grad_(True)
        w2reg.w2_uniformity(leaf, method=method).backward()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        run()
        if i > 0 or repeats == 0:
            times.append(time.perf_counter() - start)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"time_s": statistics.median(times), "peak_bytes": max(int(peak), 0), "runs": len(times)}


def run_child(method: str, n: int, m: int, args: argparse.Namespace, repeats: int) -> dict:
    if args.in_process:  # CUDA: peak memory per point from reset_peak_memory_stats
        return child(method, n, m, args.device, args.threads, repeats)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        method,
        str(n),
        str(m),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--repeats",
        str(repeats),
    ]
    limit = max(120.0, 4 * args.max_seconds * (repeats + 1))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=limit)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- models
def _features(n: int, m: int) -> tuple[list[float], list[float]]:
    k = min(n, m)
    return [k**3, n * m * k], [n * m, k * k]


def fit(points: list[dict], key: str, which: int) -> np.ndarray:
    """Least-squares coefficients of the cost model, weighted to relative error."""
    rows = np.array([_features(p["N"], p["m"])[which] for p in points], dtype=float)
    y = np.array([p[key] for p in points], dtype=float)
    w = 1.0 / np.maximum(y, 1e-12)
    coef, *_ = np.linalg.lstsq(rows * w[:, None], y * w, rcond=None)
    return np.maximum(coef, 0.0)


def predict(coef: np.ndarray, n: int, m: int, which: int) -> float:
    return float(np.dot(coef, _features(n, m)[which]))


# --------------------------------------------------------------------------- main
def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.1f} s"


def _fmt_mem(b: float) -> str:
    return f"{b / 2**20:.0f} MiB" if b < 2**30 else f"{b / 2**30:.1f} GiB"


def report(points: dict[str, list[dict]], meta: dict[str, Any], json_path: str | None) -> int:
    """Print the three sweeps (measured, else extrapolated) and save everything."""
    results: list[dict[str, Any]] = []
    models = {
        meth: (fit(pts, "time_s", 0), fit(pts, "peak_bytes", 1))
        for meth, pts in points.items()
        if len(pts) >= 2
    }
    for sweep, sizes in SWEEPS.items():
        print()
        print(f"sweep {sweep}: time (forward + backward) / peak memory above the inputs")
        head = f"{'N':>5} {'m':>5} | " + " | ".join(f"{meth:>30}" for meth in METHODS)
        print(head)
        print("-" * len(head))
        anchors: dict[str, dict] = {}  # the sweep's largest measured point, per method
        for n, m in sizes:
            cells = []
            for meth in METHODS:
                got = next((p for p in points[meth] if (p["N"], p["m"]) == (n, m)), None)
                if got is not None:
                    t, mem, how = got["time_s"], got["peak_bytes"], "measured"
                    anchors[meth] = got
                elif meth in models and meth in anchors:
                    # the model's growth from the sweep's last measured point
                    a = anchors[meth]
                    t_coef, m_coef = models[meth]
                    t = a["time_s"] * predict(t_coef, n, m, 0) / predict(t_coef, a["N"], a["m"], 0)
                    mem = (
                        a["peak_bytes"]
                        * predict(m_coef, n, m, 1)
                        / max(predict(m_coef, a["N"], a["m"], 1), 1.0)
                    )
                    how = "extrapolated"
                else:
                    cells.append(f"{'-':>30}")
                    continue
                cells.append(f"{_fmt_time(t)} / {_fmt_mem(mem)} {how}".rjust(30))
                results.append(
                    {
                        "sweep": sweep,
                        "method": meth,
                        "N": n,
                        "m": m,
                        "time_s": t,
                        "peak_bytes": mem,
                        "how": how,
                    }
                )
            print(f"{n:>5} {m:>5} | " + " | ".join(cells))
    if json_path:
        saved = {k: v for k, v in meta.items() if k not in ("measured", "models", "table")}
        saved.update(
            {
                "measured": points,
                "models": {k: [v[0].tolist(), v[1].tolist()] for k, v in models.items()},
                "table": results,
            }
        )
        with open(json_path, "w") as fh:
            json.dump(saved, fh, indent=2)
        print(f"# saved {json_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "N", "M"), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="default 1 on cpu, 0 = torch's")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per point (after 1)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="longest point to run")
    parser.add_argument(
        "--in-process",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the points in this process (default on cuda; CPU peak memory needs children)",
    )
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--from-json", default=None, help="re-render the tables of a saved run")
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = 1 if args.device == "cpu" else 0
    if args.in_process is None:
        args.in_process = args.device != "cpu"
    if args.child:
        method, n, m = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(child(method, n, m, args.device, args.threads, args.repeats)))
        return 0

    if args.from_json:
        with open(args.from_json) as fh:
            saved = json.load(fh)
        print(f"# bench_scaling: tables of {args.from_json} ({' '.join(saved['argv'])})")
        print(f"# load avg {saved.get('loadavg_start')} -> {saved.get('loadavg_end')}")
        return report(saved["measured"], saved, args.json_path)
    load_start = os.getloadavg()
    print(f"# bench_scaling: {' '.join(sys.argv)}")
    print(
        f"# torch {torch.__version__}, device {args.device}, threads {args.threads}, "
        f"load avg {load_start}, max {args.max_seconds} s per point, {platform.processor()}"
    )
    points: dict[str, list[dict]] = {meth: [] for meth in METHODS}
    order = sorted({p for sweep in SWEEPS.values() for p in sweep}, key=lambda p: p[0] * p[1])
    for method in METHODS:
        for n, m in order:
            measured = points[method]
            if len(measured) >= 2:
                expected = predict(fit(measured, "time_s", 0), n, m, 0)
            else:
                expected = 0.0
            if expected > args.max_seconds:
                continue
            repeats = args.repeats if expected * (args.repeats + 1) < args.max_seconds else 0
            try:
                res = run_child(method, n, m, args, repeats)
            except subprocess.CalledProcessError as err:  # out of memory, most likely
                print(f"#   {method} ({n}, {m}) failed: {err.stderr.strip()[-300:]}", flush=True)
                continue
            except subprocess.TimeoutExpired:
                print(f"#   {method} ({n}, {m}) exceeded its time limit: skipped", flush=True)
                continue
            res.update({"method": method, "N": n, "m": m})
            measured.append(res)
            print(
                f"#   {method:9s} ({n:5d}, {m:5d}): {_fmt_time(res['time_s'])}, "
                f"peak +{_fmt_mem(res['peak_bytes'])} ({res['runs']} runs)",
                flush=True,
            )
    meta = {
        "argv": sys.argv,
        "torch": torch.__version__,
        "device": args.device,
        "threads": args.threads,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
    }
    print(f"\n# load avg at end {meta['loadavg_end']}")
    return report(points, meta, args.json_path)


if __name__ == "__main__":
    raise SystemExit(main())
