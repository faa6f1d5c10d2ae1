"""Ending a gloo process group in a test's worker process without the torch 2.1 deadlock.

``destroy_process_group`` joins gloo's worker threads while holding the GIL. On torch 2.1 a
worker thread that drops the last reference to a finished collective (it does so just after
the collective completes) needs the GIL to free the tensors' Python objects: both threads
wait for each other forever. It hung py310-min's CI (torch 2.1) for 50 minutes in a
``ddp_spawn`` test, about 1 run in 7 per test_distributed.py's earlier measurement. After the
barrier, a short sleep releases the GIL so the worker threads finish with their last work
before the group is destroyed.
"""

from __future__ import annotations

import time

import torch

#: seconds the worker threads get to drop their last finished work (they need microseconds)
SETTLE_SECONDS = 0.2


def end_process_group() -> None:
    """Barrier, let gloo's threads settle, destroy the default group (no-op without one)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        time.sleep(SETTLE_SECONDS)
        dist.destroy_process_group()
