"""2-process DDP (gloo, Lightning's ``ddp`` strategy under ``torchrun``): every rank computes
and logs the same W2, that of the global batch (scipy's, float64, of both ranks' rows)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("stable_pretraining")

from oracle import bures_w2  # noqa: E402
from spt_fixture import B  # noqa: E402

WORKER = Path(__file__).resolve().parent / "spt_ddp_worker.py"


KINDS = ("forward:simclr", "class:BYOL")
RUNS = (*(f"1:{kind}" for kind in KINDS), "0:forward:simclr")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """One ``torchrun`` of 2 processes for all :data:`RUNS`; per run, both ranks' records."""
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    for var in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    proc = subprocess.run(
        [*cmd, str(WORKER), str(out), *RUNS], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return {
        run: [
            torch.load(out / f"{run.replace(':', '-')}-rank{r}.pt", weights_only=False)
            for r in (0, 1)
        ]
        for run in RUNS
    }


@pytest.mark.parametrize("kind", KINDS)
def test_both_ranks_log_the_w2_of_the_global_batch(ranks: dict, kind: str) -> None:
    both = ranks[f"1:{kind}"]
    assert [r["rank"] for r in both] == [0, 1] and both[0]["world"] == 2
    for step in range(2):
        s0, s1 = (r["steps"][step] for r in both)
        assert s0["z"].shape[0] == s1["z"].shape[0] == 2 * B  # each rank: its two views
        assert s0["rows"] == s1["rows"] == 4 * B  # the term: all ranks' rows
        glob = bures_w2(torch.cat([s0["z"], s1["z"]]).numpy())
        local = [bures_w2(s["z"].numpy()) for s in (s0, s1)]
        assert min(abs(glob - v) for v in local) > 1e-4  # global and local W2 differ here
        for s in (s0, s1):
            assert float(s["w2"]) == pytest.approx(glob, abs=1e-6)
            # logged (sync_dist averages equal values): the global W2 on both ranks
            assert s["logged"] == pytest.approx(glob, abs=1e-6)


def test_without_gathering_each_rank_takes_its_own_rows(ranks: dict) -> None:
    for step in range(2):
        for r in ranks["0:forward:simclr"]:
            s = r["steps"][step]
            assert s["rows"] == 2 * B
            assert float(s["w2"]) == pytest.approx(bures_w2(s["z"].numpy()), abs=1e-6)
