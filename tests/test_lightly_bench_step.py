"""``benchmarks/bench_step.py`` builds and steps the ready lightly BYOL with and without W2."""

from __future__ import annotations

import pytest
from bench_smoke import bench_step

pytest.importorskip("lightly")


def test_bench_step_runs_the_lightly_arms(tmp_path):
    bench_step("lightly", tmp_path)
