"""``benchmarks/bench_step.py`` builds and steps the ready lightly BYOL with and without W2."""

from __future__ import annotations

import math

import pytest
from bench_smoke import bench_step

pytest.importorskip("lightly")


def test_bench_step_runs_the_lightly_arms(tmp_path):
    lib = bench_step("lightly", tmp_path)
    assert lib["method"] == "eigh32"  # what "auto" picks on CPU
    assert all(math.isfinite(t) and t > 0 for t in lib["times_s_without"] + lib["times_s_with"])
    assert lib["w2_alone_s"] > 0
