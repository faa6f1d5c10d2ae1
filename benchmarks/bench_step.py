"""End-to-end cost of the W2 term: the paper's training step with and without it.

The paper's step (Fang et al., ICLR 2024, Sec. 5): CIFAR ResNet-18 (3x3 stride-1 ``conv1``,
no max-pool), projector 512 -> 2048 -> 2048 -> 256, two views of 256 images each, bf16 mixed
precision on a GPU (float32 on a CPU). Timed in one process, side by side, on the same
batch, for

* ``lightly``: :func:`w2reg.adapters.lightly_methods.create_model` ``("byol")`` -- the plain
  model and the ``BYOLW2`` model (weight 0.2, ``w2_method`` as given, default ``"auto"``);
  its own optimizer (LARS) from ``configure_optimizers``;
* ``solo``: solo-learn's ``byol`` and w2reg's ``byol_w2`` built from the shipped Hydra configs
  (``src/w2reg/adapters/configs/cifar``, ``data=cifar10``); SGD (solo's LARS needs a Trainer
  to set up).
  Skipped, with a message, where solo-learn (or hydra-core) is not installed.

A step is ``zero_grad``, ``training_step`` (under ``torch.autocast(bfloat16)`` on a GPU, what
Lightning's ``bf16-mixed`` does), ``backward``, ``optimizer.step``; no Trainer (its logging is
the same in both arms; ``self.log`` without one is a no-op), no momentum-encoder update for
solo (done in its ``on_train_batch_end``; identical in both arms). Arms are interleaved
round-robin (the first arm alternating from round to round) after ``--warmup`` untimed
rounds; medians over ``--steps`` rounds. The overhead
is ``median(with W2) / median(without) - 1``; targets: <= 3 % on a GPU, <= 1 % on a CPU.

On a CPU a 512-image ResNet-18 step takes 10-30 s (one thread, a loaded machine), so the
CPU default is 1 warm-up and 4 timed rounds per arm: the measured overhead is then a small
difference of two numbers that vary by several percent from round to round (printed, with
each round's paired difference). W2's own cost -- ``w2_uniformity`` forward + backward on
``(2 x batch, 256)`` projections with the arm's method, timed alone right after -- is also
reported as a share of the step: that is the stable reading of the CPU overhead.

Usage::

    python benchmarks/bench_step.py                     # cuda if available, else cpu
    python benchmarks/bench_step.py --device cpu --threads 2 --json step_cpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import w2reg
from w2reg._methods import resolve_method

GPU_TARGET, CPU_TARGET = 3.0, 1.0  # percent


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- the arms
class Arm:
    """One model + optimizer + batch, and how to take one training step with it."""

    def __init__(self, name: str, model: nn.Module, opt: Any, batch: Any, device: torch.device):
        self.name, self.model, self.opt, self.batch, self.device = name, model, opt, batch, device
        self.times: list[float] = []
        self.calls = 0

    def step(self) -> float:
        autocast: Any = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        _sync(self.device)
        start = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        with autocast:
            out = self.model.training_step(self.batch, self.calls)
        loss = out["loss"] if isinstance(out, dict) else out
        loss.backward()
        self.opt.step()
        _sync(self.device)
        self.calls += 1
        return time.perf_counter() - start


def lightly_arms(device: torch.device, batch_size: int, method: str) -> list[Arm]:
    from w2reg.adapters.lightly_methods import create_model

    views = [torch.randn(batch_size, 3, 32, 32, device=device) for _ in range(2)]
    batch = (views, torch.zeros(batch_size, dtype=torch.long, device=device))
    arms = []
    for w2 in (False, True):
        torch.manual_seed(0)
        kwargs: dict[str, Any] = {"w2_method": method} if w2 else {}
        # outside a Trainer the recipe's schedules need the epoch's length: CIFAR-10's 50,000
        model = create_model(
            "byol", w2=w2, batch_size=batch_size, steps_per_epoch=50_000 // batch_size, **kwargs
        )
        model = model.to(device).train()
        (opt,), _ = model.configure_optimizers()
        arms.append(Arm(f"lightly byol{' + W2' if w2 else ''}", model, opt, batch, device))
    return arms


def solo_arms(device: torch.device, batch_size: int, method: str) -> list[Arm]:
    import w2reg.adapters.solo as ws

    if ws.SOLO_API != "cfg":
        raise ImportError(f"needs solo-learn with the cfg API, found {ws.SOLO_VERSION}")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS

    from w2reg.adapters.solo_pretrain import CONFIG_DIR

    ws.register()
    crops = [torch.randn(batch_size, 3, 32, 32, device=device) for _ in range(2)]
    targets = torch.zeros(batch_size, dtype=torch.long, device=device)
    batch = [torch.arange(batch_size, device=device), crops, targets]
    arms = []
    for name in ("byol", "byol_w2"):
        overrides = ["data=cifar10", f"optimizer.batch_size={batch_size}"]
        if name.endswith("_w2"):
            overrides.append(f"+method_kwargs.w2_method={method}")
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.2"):
            cfg = compose(config_name=name, overrides=overrides)
        OmegaConf.set_struct(cfg, False)
        cfg = METHODS[name].add_and_assert_specific_cfg(parse_cfg(cfg))
        torch.manual_seed(0)
        model = METHODS[name](cfg).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        arms.append(Arm(f"solo {name}", model, opt, batch, device))
    return arms


def w2_alone(method: str, device: torch.device, rows: int, repeats: int) -> float:
    """Median time of the W2 term alone (fwd + bwd) on ``(rows, 256)`` projections."""
    z = torch.randn(rows, 256, device=device, requires_grad=True)
    times = []
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        w2reg.w2_uniformity(z, method=method).backward()
        _sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256, help="images per view (paper 256)")
    parser.add_argument("--steps", type=int, default=None, help="timed rounds (cpu 4, cuda 30)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds (cpu 1, cuda 5)")
    parser.add_argument("--method", default="auto", help="w2_method of the W2 arms")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (cpu)")
    parser.add_argument("--only", choices=["lightly", "solo"], default=None)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    steps = args.steps if args.steps is not None else (30 if on_cuda else 4)
    warmup = args.warmup if args.warmup is not None else (5 if on_cuda else 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    if on_cuda:
        torch.backends.cudnn.benchmark = True
    warnings.filterwarnings("ignore")  # self.log without a Trainer, etc.

    load_start = os.getloadavg()
    print(f"# bench_step: {' '.join(sys.argv)}")
    print(
        f"# torch {torch.__version__}, device {device} "
        f"({torch.cuda.get_device_name(device) if on_cuda else platform.processor() or 'cpu'}), "
        f"threads {torch.get_num_threads()}, load avg {load_start}, "
        f"{'bf16 autocast' if on_cuda else 'float32'}, 2 x {args.batch_size} images, "
        f"warm-up {warmup}, {steps} timed rounds, arms interleaved"
    )
    builders: dict[str, Callable[..., list[Arm]]] = {"lightly": lightly_arms, "solo": solo_arms}
    groups: dict[str, list[Arm]] = {}
    skipped: dict[str, str] = {}
    for lib, build in builders.items():
        if args.only and lib != args.only:
            continue
        try:
            groups[lib] = build(device, args.batch_size, args.method)
        except ImportError as err:
            skipped[lib] = f"{type(err).__name__}: {err}"
            print(f"# {lib}: skipped ({skipped[lib]})", flush=True)
    arms = [arm for group in groups.values() for arm in group]
    if not arms:
        print("nothing to time: neither lightly nor solo-learn is installed")
        return 1
    start = time.perf_counter()
    for r in range(warmup + steps):
        # within each library, alternate which arm goes first (ABBA): no order bias
        order = [arm for group in groups.values() for arm in (group if r % 2 else group[::-1])]
        for arm in order:
            t = arm.step()
            if r >= warmup:
                arm.times.append(t)
        print(
            f"#   round {r + 1}/{warmup + steps}"
            f"{' (warm-up)' if r < warmup else ''}: "
            + ", ".join(f"{a.name} {a.times[-1] * 1e3:.1f} ms" for a in arms if a.times),
            flush=True,
        )
    target = GPU_TARGET if on_cuda else CPU_TARGET
    result: dict[str, Any] = {
        "argv": sys.argv,
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "loadavg_start": load_start,
        "steps": steps,
        "warmup": warmup,
        "skipped": skipped,
        "libraries": {},
    }
    print()
    print(
        f"training step, median ms ({device}), overhead of the W2 term (target <= {target:.0f}%):"
    )
    for lib, (plain, reg) in groups.items():
        p, w = statistics.median(plain.times), statistics.median(reg.times)
        overhead = 100 * (w / p - 1)
        paired = [100 * (b / a - 1) for a, b in zip(plain.times, reg.times, strict=True)]
        spread = 100 * (max(plain.times) - min(plain.times)) / p
        resolved = resolve_method(reg.model.w2reg.loss.method, torch.zeros(2, 2, device=device))
        alone = w2_alone(reg.model.w2reg.loss.method, device, 2 * args.batch_size, max(steps, 5))
        share = 100 * alone / p
        print(
            f"  {lib:8s} without W2 {p * 1e3:9.1f} ms | with W2 ({resolved}) {w * 1e3:9.1f} ms | "
            f"overhead {overhead:+6.2f}%  {'PASS' if overhead <= target else 'FAIL'}"
        )
        print(
            f"           per round {', '.join(f'{d:+.2f}%' for d in paired)}; the plain arm's "
            f"rounds spread over {spread:.1f}% of its median"
        )
        print(
            f"           W2 alone ({2 * args.batch_size} x 256, fwd+bwd) {alone * 1e3:.2f} ms = "
            f"{share:.3f}% of the step  {'PASS' if share <= target else 'FAIL'}"
        )
        result["libraries"][lib] = {
            "method": resolved,
            "median_s_without": p,
            "median_s_with": w,
            "times_s_without": plain.times,
            "times_s_with": reg.times,
            "overhead_pct": overhead,
            "paired_overhead_pct": paired,
            "plain_spread_pct": spread,
            "w2_alone_s": alone,
            "w2_alone_share_pct": share,
            "target_pct": target,
            "pass": overhead <= target,
            "w2_alone_pass": share <= target,
        }
    for lib, why in skipped.items():
        print(f"  {lib:8s} skipped: {why}")
    elapsed = time.perf_counter() - start
    result["elapsed_s"] = elapsed
    result["loadavg_end"] = os.getloadavg()
    print(f"# total {elapsed:.1f} s, load avg at end {result['loadavg_end']}")
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump(result, fh, indent=2)
        print(f"# saved {args.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
