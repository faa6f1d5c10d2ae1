"""Run ``benchmarks/bench_step.py`` at a tiny size, as ``benchmarks/gpu_run.sh`` would on a GPU.

The benchmarks are not timed in the tests (their ratios live in ``benchmarks/``); these smoke
runs only keep the scripts working, so that a scarce GPU session does not find them broken.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH_STEP = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_step.py"


def bench_step(library: str, tmp_path: Path) -> dict[str, Any]:
    """Both arms of ``library`` for one warm-up and one timed round at 2 x 8 images on CPU;
    checks that every arm was timed with the method ``"auto"`` picks on CPU."""
    out = tmp_path / "bench_step.json"
    args = ["--device", "cpu", "--threads", "1", "--batch-size", "8", "--steps", "1"]
    args += ["--warmup", "1", "--only", library, "--json", str(out)]
    run = subprocess.run(
        [sys.executable, str(BENCH_STEP), *args], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert not result["skipped"], result["skipped"]
    lib = result["libraries"][library]
    assert lib["method"] == "eigh32"  # what "auto" picks on CPU
    assert all(math.isfinite(t) and t > 0 for t in lib["times_s_without"] + lib["times_s_with"])
    assert lib["w2_alone_s"] > 0
    return lib
