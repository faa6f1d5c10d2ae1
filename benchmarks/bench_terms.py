"""What each of the study's arms costs: the training step with each term, side by side.

The study (``examples/study.py``) times every run, but its runs take minutes each and the
machine's load changes between them, so its per-epoch ratios mix the term's cost with the
load of the moment. Here the study's models -- built by the study's own code
(``create_model`` with ``examples/_arms.model_kwargs``, the study's parser and defaults, so
``--width``, ``--proj-hidden-dim``, ``--backbone`` ... mean what they mean there) -- take
training steps on the same random batch of two 32x32 RGB views, the arms interleaved
round-robin (the order rotating from round to round), after ``--warmup`` untimed rounds.
Printed per method: each arm's median step and its ratio to plain's median, the paired
per-round ratios' median, and the term alone (forward + backward on ``(2 x batch, m)``
random projections, ``m = --proj-output-dim``).

A step is ``zero_grad``, ``training_step``, ``backward``, ``optimizer.step`` (the model's own
optimizer from ``configure_optimizers``), no Trainer: the same for every arm.

Usage (the committed CPU figures, ``benchmarks/results/bench_terms_cpu.txt``)::

    python benchmarks/bench_terms.py --methods mocov2 byol simsiam --width 16 \\
        --proj-hidden-dim 1024 --threads 2 --json benchmarks/results/bench_terms_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import _arms as arms  # noqa: E402
import _backbones as backbones  # noqa: E402
import study  # noqa: E402


class Timed:
    """One arm: model, optimizer, and its step times."""

    def __init__(self, arm: arms.Arm, model: Any, batch: Any) -> None:
        self.arm, self.model, self.batch = arm, model, batch
        optimizers, _ = model.configure_optimizers()
        self.opt = optimizers[0]
        self.times: list[float] = []
        self.calls = 0

    def step(self) -> float:
        start = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        out = self.model.training_step(self.batch, self.calls)
        loss = out["loss"] if isinstance(out, dict) else out
        loss.backward()
        self.opt.step()
        self.calls += 1
        return time.perf_counter() - start


def term_alone(model: Any, rows: int, dim: int, repeats: int) -> float | None:
    """Median seconds of the arm's term (weight included) alone, forward + backward."""
    reg = getattr(model, "w2reg", None)
    if reg is None:
        return None
    z0 = torch.randn(rows // 2, dim, requires_grad=True)
    z1 = torch.randn(rows // 2, dim, requires_grad=True)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        reg.loss(z0, z1).backward()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["mocov2", "byol", "simsiam"])
    parser.add_argument("--arms", nargs="+", default=list(arms.ARMS))
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--proj-hidden-dim", type=int, default=1024)
    parser.add_argument("--proj-output-dim", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5, help="the schedules' length")
    parser.add_argument("--steps", type=int, default=6, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # self.log without a Trainer, etc.
    chosen = [arms.Arm.parse(a) for a in args.arms]
    # the study's own parser: its defaults for everything not given here
    s_args = study.build_parser().parse_args(
        ["--width", str(args.width), "--proj-hidden-dim", str(args.proj_hidden_dim)]
        + (["--proj-output-dim", str(args.proj_output_dim)] if args.proj_output_dim else [])
        + ["--batch-size", str(args.batch_size)]
    )
    backbones.check(s_args)
    dim = s_args.proj_output_dim
    load_start = os.getloadavg()
    print(f"# bench_terms: {' '.join(sys.argv)}")
    print(
        f"# torch {torch.__version__}, cpu, threads {torch.get_num_threads()}, load avg "
        f"{tuple(round(x, 2) for x in load_start)}, {backbones.describe(s_args)}, projector "
        f"{s_args.proj_hidden_dim} -> {dim}, 2 x {args.batch_size} images 3x32x32, "
        f"warm-up {args.warmup}, {args.steps} timed rounds, arms interleaved",
        flush=True,
    )
    views = [torch.randn(args.batch_size, 3, 32, 32) for _ in range(2)]
    batch = (views, torch.zeros(args.batch_size, dtype=torch.long))
    steps_per_epoch = 8192 // args.batch_size
    result: dict[str, Any] = {"argv": sys.argv, "torch": torch.__version__, "methods": {}}
    start = time.perf_counter()
    for method in args.methods:
        group = []
        for arm in chosen:
            torch.manual_seed(0)
            backbone, feature_dim = backbones.build(s_args, 32)
            from w2reg.adapters.lightly import create_model

            model = create_model(
                method,
                **arms.model_kwargs(arm, method, args.epochs),
                batch_size=args.batch_size,
                max_epochs=args.epochs,
                steps_per_epoch=steps_per_epoch,
                backbone=backbone,
                feature_dim=feature_dim,
                proj_hidden_dim=s_args.proj_hidden_dim,
                proj_output_dim=dim,
            ).train()
            group.append(Timed(arm, model, batch))
        for r in range(args.warmup + args.steps):
            k = r % len(group)
            for timed in group[k:] + group[:k]:
                t = timed.step()
                if r >= args.warmup:
                    timed.times.append(t)
            print(
                f"#   {method} round {r + 1}/{args.warmup + args.steps}: "
                + ", ".join(f"{t.arm} {t.times[-1] * 1e3:.0f} ms" for t in group if t.times),
                flush=True,
            )
        plain = next((t for t in group if t.arm.name == "plain"), None)
        rows: dict[str, Any] = {}
        print(f"\n{method}: median step, ratio to plain (median of the paired rounds), term alone")
        for timed in group:
            med = statistics.median(timed.times)
            ratio = paired = None
            if plain is not None:
                ratio = med / statistics.median(plain.times)
                paired = statistics.median(
                    b / a for a, b in zip(plain.times, timed.times, strict=True)
                )
            alone = term_alone(timed.model, 2 * args.batch_size, dim, max(args.steps, 5))
            rows[str(timed.arm)] = {
                "median_s": med,
                "times_s": timed.times,
                "ratio_to_plain": ratio,
                "paired_ratio": paired,
                "term_alone_s": alone,
            }
            print(
                f"  {str(timed.arm):8s} {med * 1e3:8.0f} ms"
                + (f"  x{ratio:.3f} (paired x{paired:.3f})" if ratio is not None else "")
                + (f"  term alone {alone * 1e3:7.1f} ms" if alone is not None else ""),
                flush=True,
            )
        result["methods"][method] = rows
    result["elapsed_s"] = time.perf_counter() - start
    result["loadavg_start"], result["loadavg_end"] = load_start, os.getloadavg()
    print(f"# total {result['elapsed_s']:.1f} s, load avg at end {result['loadavg_end']}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2))
        print(f"# saved {args.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
