"""``benchmarks/bench_step.py`` builds and steps solo-learn's byol and the registered byol_w2."""

from __future__ import annotations

import math

import pytest
from bench_smoke import bench_step

pytest.importorskip("solo")


def test_bench_step_runs_the_solo_arms(tmp_path):
    lib = bench_step("solo", tmp_path)
    assert lib["method"] == "eigh32"  # what "auto" picks on CPU
    assert all(math.isfinite(t) and t > 0 for t in lib["times_s_without"] + lib["times_s_with"])
    assert lib["w2_alone_s"] > 0
