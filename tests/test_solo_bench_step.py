"""``benchmarks/bench_step.py`` builds and steps solo-learn's byol and the registered byol_w2."""

from __future__ import annotations

import pytest
from bench_smoke import bench_step

pytest.importorskip("solo")


def test_bench_step_runs_the_solo_arms(tmp_path):
    bench_step("solo", tmp_path)
