"""Speed of ``w2reg.w2_uniformity`` (forward + backward), per method, against the paper's recipe.

Compared, in one process, on the same inputs, forward + backward each time:

* ``auto``, ``exact``, ``iterative``, ``eigh32`` -- :func:`w2reg.w2_uniformity` with that
  ``method`` (``auto`` is what the adapters use: ``eigh32`` on CPU, ``iterative`` on CUDA for
  float32 input). ``--compile`` adds ``iterative+compile`` (``torch.compile`` of the call).
* ``(a) eigh`` -- the paper's recipe written with today's torch: eigendecomposition of the
  ``m x m`` covariance with ``torch.linalg.eigh``, square roots of the eigenvalues,
  ``S^{1/2} = V diag(sqrt(l)) V^T``, its trace; autograd through ``eigh``. Runs in the
  input's dtype (float32), as the paper's code does.
* ``(b) eigvalsh`` -- ``torch.linalg.eigvalsh(S)``, square roots summed, autograd.

at (N, m) in {(128, 256), (512, 256), (512, 2048), (1024, 2048)}, and one ResNet-18 CIFAR
training step (torchvision resnet18 with a 3x3 stride-1 conv1 and no max-pool, projector
512 -> 2048 -> 2048 -> 256 with BN + ReLU, one (64, 3, 32, 32) batch, forward + backward +
SGD step) to express W2's cost as a share of a training step. All timings are medians over
``--repeats`` runs after ``--warmup`` runs; the methods are interleaved round-robin so that
load from other processes hits them alike; CUDA is synchronised around every run.

Accuracy: every value is compared with a float64 reference (the recipe's formula evaluated
in float64, independent of w2reg), every gradient with ``exact``'s on the same input.

Targets (issue 9): on CPU ``auto`` at (512, 256) no slower than (a) with its W2 within 1e-6
of the float64 reference; (info) >= 15x faster than (a) at (512, 2048), W2 (512, 256) <= 1 %
of the ResNet-18 step. The end-to-end overhead is ``bench_step.py``'s.

Usage::

    python benchmarks/bench_w2.py                      # cuda if available, else cpu
    python benchmarks/bench_w2.py --device cpu --threads 1 --json bench_cpu.json

On a CPU the default is one thread: on a machine shared with other jobs, two or more threads
oversubscribe the cores and the timings scatter by 2-5x between runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import w2reg
from w2reg._methods import resolve_method

SIZES: list[tuple[int, int]] = [(128, 256), (512, 256), (512, 2048), (1024, 2048)]
PAPER_SIZE = (512, 256)
BIG_SIZE = (512, 2048)
SPEEDUP_TARGET = 15.0
STEP_SHARE_TARGET = 1.0  # percent


# --------------------------------------------------------------------------- baselines
def _centred_cov(z: Tensor) -> tuple[Tensor, Tensor, int, int]:
    x = F.normalize(z, dim=1)
    n, m = x.shape
    mu = x.mean(dim=0)
    xc = x - mu
    return mu, xc.transpose(0, 1) @ xc / n, n, m


def w2_paper_eigh(z: Tensor) -> Tensor:
    """(a) The paper's recipe: eigh of the m x m covariance, rebuild S^{1/2}, take its trace."""
    mu, cov, _, m = _centred_cov(z)
    evals, evecs = torch.linalg.eigh(cov)
    root = (evecs * evals.clamp_min(0).sqrt()) @ evecs.transpose(0, 1)
    w2_sq = mu.dot(mu) + 1 + torch.trace(cov) - 2 / math.sqrt(m) * torch.trace(root)
    return w2_sq.clamp_min(0).sqrt()


def w2_eigvalsh(z: Tensor) -> Tensor:
    """(b) Eigenvalues only: sum of sqrt(eigvalsh(S)), autograd."""
    mu, cov, _, m = _centred_cov(z)
    tr_root = torch.linalg.eigvalsh(cov).clamp_min(0).sqrt().sum()
    w2_sq = mu.dot(mu) + 1 + torch.trace(cov) - 2 / math.sqrt(m) * tr_root
    return w2_sq.clamp_min(0).sqrt()


def _w2reg(method: str) -> Callable[[Tensor], Tensor]:
    def run(z: Tensor) -> Tensor:
        return w2reg.w2_uniformity(z, method=method)

    run.__name__ = f"w2reg_{method}"
    return run


W2REG_METHODS = ["auto", "exact", "iterative", "eigh32"]
BASELINES: dict[str, Callable[[Tensor], Tensor]] = {
    "(a) eigh": w2_paper_eigh,
    "(b) eigvalsh": w2_eigvalsh,
}
RECIPE = "(a) eigh"
REFERENCE_GRAD = "exact"


def method_table(compile_iterative: bool) -> dict[str, Callable[[Tensor], Tensor]]:
    """Every timed callable by its report name."""
    table = {name: _w2reg(name) for name in W2REG_METHODS}
    if compile_iterative:
        table["iterative+compile"] = torch.compile(_w2reg("iterative"), fullgraph=True)
    return {**table, **BASELINES}


# --------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fwd_bwd(fn: Callable[[Tensor], Tensor], z: Tensor, store: dict[str, Tensor], key: str) -> None:
    z.grad = None
    value = fn(z)
    value.backward()
    store[key] = value.detach()


def time_interleaved(
    calls: dict[str, Callable[[], Any]],
    device: torch.device,
    warmup: int,
    repeats: int,
    budget_s: float = float("inf"),
    long_call_s: float = 1.0,
    min_repeats: int = 2,
) -> dict[str, list[float]]:
    """Median-ready timings of every call, round-robin so that outside load hits all alike.

    Each call runs ``warmup`` untimed times, then ``repeats`` timed times. A call whose first
    (warm-up) run takes longer than ``long_call_s`` has nothing left to warm up (lazy
    initialisation costs milliseconds): that run is kept as a sample, and the call gets
    ``max(min_repeats, min(repeats, budget_s // first_run))`` samples in all, so that a
    25-second CPU eigendecomposition does not take ten minutes to time.
    """

    def run(call: Callable[[], Any]) -> float:
        _sync(device)
        start = time.perf_counter()
        call()
        _sync(device)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {name: [] for name in calls}
    wanted: dict[str, int] = {name: repeats for name in calls}
    warm_left: dict[str, int] = {name: max(warmup, 1) for name in calls}
    for name, call in calls.items():  # first round: warm-up, also a duration estimate
        first = run(call)
        warm_left[name] -= 1
        if first >= long_call_s:
            times[name].append(first)
            warm_left[name] = 0
            affordable = repeats if math.isinf(budget_s) else int(budget_s // first)
            wanted[name] = max(min_repeats, min(repeats, affordable))
    while any(warm_left[k] > 0 or len(times[k]) < wanted[k] for k in calls):
        for name, call in calls.items():
            if warm_left[name] > 0:
                run(call)
                warm_left[name] -= 1
            elif len(times[name]) < wanted[name]:
                times[name].append(run(call))
    return times


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def agreement(
    z: Tensor, values: dict[str, Tensor], leaves: dict[str, Tensor]
) -> dict[str, dict[str, Any]]:
    """Values against a float64 reference, gradients against ``exact``'s, on one input.

    The reference is the baselines' own formula (sum of the square roots of the eigenvalues
    of the ``m x m`` covariance) evaluated in float64, forward only: independent of w2reg.
    """
    with torch.no_grad():
        ref64 = float(w2_eigvalsh(z.detach().double()))
    ref_grad = leaves[REFERENCE_GRAD].grad
    assert ref_grad is not None
    out: dict[str, dict[str, Any]] = {"ref64": {"value": ref64}}
    for name, leaf in leaves.items():
        grad = leaf.grad
        assert grad is not None
        finite = bool(torch.isfinite(grad).all())
        diff = (grad.double() - ref_grad.double()).norm() / ref_grad.double().norm()
        out[name] = {
            "value": float(values[name]),
            "rel_diff_vs_ref64": _rel(float(values[name]), ref64),
            "grad_rel_diff_vs_exact": float(diff) if finite else float("nan"),
            "grad_finite": finite,
        }
    return out


# --------------------------------------------------------------------------- resnet step
def cifar_resnet18_with_projector() -> nn.Module:
    """torchvision resnet18, CIFAR stem (3x3 stride-1 conv1, no max-pool), 2048-2048-256 head."""
    from torchvision.models import resnet18

    backbone = resnet18()
    backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    backbone.maxpool = nn.Identity()
    backbone.fc = nn.Identity()
    projector = nn.Sequential(
        nn.Linear(512, 2048, bias=False),
        nn.BatchNorm1d(2048),
        nn.ReLU(inplace=True),
        nn.Linear(2048, 2048, bias=False),
        nn.BatchNorm1d(2048),
        nn.ReLU(inplace=True),
        nn.Linear(2048, 256),
    )
    return nn.Sequential(backbone, projector)


def time_resnet_step(
    device: torch.device, batch: int, warmup: int, repeats: int, budget_s: float
) -> tuple[list[float], str]:
    model = cifar_resnet18_with_projector().to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, 32, 32, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        z = model(x)
        z.pow(2).mean().backward()  # a trivial loss: the step's cost is the network's
        opt.step()

    times = time_interleaved({"step": step}, device, warmup, repeats, budget_s)["step"]
    desc = f"ResNet-18 CIFAR + projector, batch {batch}x3x32x32, fwd+bwd+SGD"
    return times, desc


# --------------------------------------------------------------------------- main
def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:10.2f}"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (cpu 3, cuda 20)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs (cpu 1, cuda 3)")
    parser.add_argument("--step-batch", type=int, default=64, help="ResNet-18 step batch size")
    parser.add_argument(
        "--paper-step",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the paper's own step (2 views x 256 images); default: on for cuda",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="seconds per method and size for calls slower than 1 s (fewer repeats, min 2)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads; default 1 on cpu (stable on shared machines), 0 = torch's",
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile(iterative) (slow start)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None, help="save results here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    repeats = args.repeats if args.repeats is not None else (20 if on_cuda else 3)
    warmup = args.warmup if args.warmup is not None else (3 if on_cuda else 1)
    paper_step = args.paper_step if args.paper_step is not None else on_cuda
    threads = args.threads if args.threads is not None else (0 if on_cuda else 1)
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(args.seed)

    env = {
        "torch": torch.__version__,
        "w2reg": w2reg.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(device) if on_cuda else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(),
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "repeats": repeats,
        "warmup": warmup,
    }
    print(f"# bench_w2: {' '.join(sys.argv)}")
    print(
        f"# torch {env['torch']}, device {device} ({env['device']}), threads "
        f"{env['cpu_threads']}, load avg {env['loadavg_start']}, warmup {warmup}, "
        f"repeats {repeats} (medians; forward+backward; methods interleaved)"
    )
    t_start = time.perf_counter()

    methods = method_table(args.compile)
    names = list(methods)
    rows: list[dict[str, Any]] = []
    for n, m in SIZES:
        z = torch.randn(n, m, device=device)
        leaves = {name: z.detach().clone().requires_grad_(True) for name in methods}
        values: dict[str, Tensor] = {}
        calls = {
            name: (lambda f=fn, leaf=leaves[name], k=name, st=values: _fwd_bwd(f, leaf, st, k))
            for name, fn in methods.items()
        }
        times = time_interleaved(calls, device, warmup, repeats, budget_s=args.budget)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        row = {
            "N": n,
            "m": m,
            "median_s": med,
            "times_s": times,
            "speedup_vs_a": {name: med[RECIPE] / med[name] for name in names},
            "agreement": agreement(z, values, leaves),
        }
        rows.append(row)
        done = ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in med.items())
        print(f"#   done ({n}, {m}): {done}", flush=True)

    step_times, step_desc = time_resnet_step(device, args.step_batch, warmup, repeats, args.budget)
    step_med = statistics.median(step_times)
    print(f"#   done step: {step_med * 1e3:.2f} ms ({len(step_times)} samples)", flush=True)
    paper_step_med = None
    if paper_step:
        pst, _ = time_resnet_step(device, 512, warmup, max(3, repeats // 2), args.budget)
        paper_step_med = statistics.median(pst)

    # ------------------------------------------------------------------ report
    width = max(12, *(len(k) for k in names))
    print()
    print(f"timings, forward+backward, median ms ({device}); (x) = speed relative to {RECIPE}:")
    head = f"{'N':>5} {'m':>5} | " + " | ".join(f"{k:>{width}}" for k in names)
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = [
            f"{r['median_s'][k] * 1e3:>{width - 8}.2f} ({r['speedup_vs_a'][k]:4.2f}x)"
            for k in names
        ]
        print(f"{r['N']:>5} {r['m']:>5} | " + " | ".join(cells))
    print()
    print(
        "agreement (same inputs): relative difference of W2 from the float64 reference "
        "(the recipe's formula in float64)\n/ of the gradient from exact's; finite gradients:"
    )
    head = f"{'N':>5} {'m':>5} | {'W2 (float64)':>12} | " + " | ".join(
        f"{k:>{width}}" for k in names
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        ag = r["agreement"]
        cells = []
        for k in names:
            e = ag[k]
            mark = "" if e["grad_finite"] else " NaN!"
            cells.append(
                f"{e['rel_diff_vs_ref64']:.0e}/{e['grad_rel_diff_vs_exact']:.0e}{mark}".rjust(width)
            )
        print(f"{r['N']:>5} {r['m']:>5} | {ag['ref64']['value']:>12.6f} | " + " | ".join(cells))
    print(f"ResNet-18 step: {step_desc}: {step_med * 1e3:.2f} ms (median)")

    by_size = {(r["N"], r["m"]): r for r in rows}
    big, paper = by_size[BIG_SIZE], by_size[PAPER_SIZE]
    auto_ratio = paper["speedup_vs_a"]["auto"]
    auto_err = paper["agreement"]["auto"]["rel_diff_vs_ref64"]
    share = 100 * paper["median_s"]["auto"] / step_med
    targets = {
        "auto_not_slower_than_a_512x256": (auto_ratio, auto_ratio >= 1.0),
        "auto_w2_within_1e-6_512x256": (auto_err, auto_err <= 1e-6),
        "auto_speedup_vs_a_512x2048": (
            big["speedup_vs_a"]["auto"],
            big["speedup_vs_a"]["auto"] >= SPEEDUP_TARGET,
        ),
        "auto_share_of_step_512x256_pct": (share, share <= STEP_SHARE_TARGET),
    }
    print()
    print(f"targets (auto = {resolve_method('auto', torch.zeros(2, 2, device=device))}):")
    print(
        f"  auto not slower than (a) at (512, 256):        {auto_ratio:.2f}x  "
        f"{_verdict(targets['auto_not_slower_than_a_512x256'][1])}"
    )
    print(
        f"  auto's W2 within 1e-6 of float64 at (512, 256): {auto_err:.1e}  "
        f"{_verdict(targets['auto_w2_within_1e-6_512x256'][1])}"
    )
    print(
        f"  (info) >= {SPEEDUP_TARGET:.0f}x faster than (a) at (512, 2048): "
        f"{big['speedup_vs_a']['auto']:.2f}x  "
        f"{_verdict(targets['auto_speedup_vs_a_512x2048'][1])}"
    )
    print(
        f"  (info) W2 (512, 256) <= {STEP_SHARE_TARGET:.0f}% of the ResNet-18 step: {share:.2f}%  "
        f"{_verdict(targets['auto_share_of_step_512x256_pct'][1])}"
    )
    paper_share = None
    if paper_step_med is not None:
        paper_share = {k: 100 * paper["median_s"][k] / paper_step_med for k in names}
        print(
            f"  (info) paper's own step, 512 images (2 views x 256): {paper_step_med * 1e3:.2f} ms;"
            " W2 (512, 256) is "
            + ", ".join(f"{k} {v:.2f}%" for k, v in paper_share.items())
            + " of it"
        )
    elapsed = time.perf_counter() - t_start
    env["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"# total {elapsed:.1f} s, load avg at end {env['loadavg_end']}")

    if args.json_path:
        result = {
            "env": env,
            "rows": [{**r, "N": r["N"], "m": r["m"]} for r in rows],
            "resnet_step": {"desc": step_desc, "median_s": step_med, "times_s": step_times},
            "paper_step_median_s": paper_step_med,
            "targets": {k: {"value": v, "pass": ok} for k, (v, ok) in targets.items()},
            "info": {"paper_step_share_pct": paper_share},
            "elapsed_s": elapsed,
        }
        with open(args.json_path, "w") as fh:
            json.dump(result, fh, indent=2)
        print(f"# saved {args.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
