"""gather_distributed=True on 2 CPU processes (gloo) equals the single-process computation."""

from __future__ import annotations

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from w2reg import w2_uniformity

WORLD, ROWS, DIM = 2, 24, 10


def _global_batch() -> tuple[torch.Tensor, torch.nn.Linear]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(WORLD * ROWS, 6, generator=g, dtype=torch.float64)
    lin = torch.nn.Linear(6, DIM).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(DIM, 6, generator=g, dtype=torch.float64))
        lin.bias.copy_(torch.randn(DIM, generator=g, dtype=torch.float64))
    return x, lin


def _leave() -> None:
    """End a worker that succeeded: wait for the other rank, then exit without teardown.

    Tearing gloo down is what fails here, not the code under test: ``destroy_process_group``
    hangs in about 1 of 7 runs on torch 2.1, and a process group left alive makes the
    interpreter abort at exit ("terminate called without an active exception") in about 1 of 3
    runs on torch 2.14 / Python 3.13. ``os._exit`` skips both; the results are on disk by then.
    """
    dist.barrier()
    os._exit(0)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    x, lin = _global_batch()
    local = x[rank * ROWS : (rank + 1) * ROWS]
    z = lin(local)
    z.retain_grad()
    value = w2_uniformity(z, gather_distributed=True)
    value.backward()
    # what DDP does to parameter gradients: average over ranks
    for p in lin.parameters():
        dist.all_reduce(p.grad)
        p.grad /= WORLD
    torch.save(
        {
            "value": value.detach(),
            "z_grad": z.grad,
            "w_grad": lin.weight.grad,
            "b_grad": lin.bias.grad,
        },
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    _leave()


def test_gather_matches_single_process_on_concatenated_batch() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(os.path.join(tmp, "init"), tmp), nprocs=WORLD, join=True)
        results = [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(WORLD)]

    x, lin = _global_batch()
    z = lin(x)
    z.retain_grad()
    value = w2_uniformity(z)
    value.backward()
    for rank, res in enumerate(results):
        assert torch.allclose(res["value"], value.detach(), rtol=1e-12)
        # gradients are summed over ranks (lightly / solo-learn semantics) ...
        want = WORLD * z.grad[rank * ROWS : (rank + 1) * ROWS]
        assert torch.allclose(res["z_grad"], want, rtol=1e-10, atol=1e-14)
        # ... so that after DDP's averaging the parameters get the single-process gradient
        assert torch.allclose(res["w_grad"], lin.weight.grad, rtol=1e-10, atol=1e-14)
        assert torch.allclose(res["b_grad"], lin.bias.grad, rtol=1e-10, atol=1e-14)


def test_without_process_group_it_is_a_no_op() -> None:
    assert not dist.is_initialized()
    z = torch.randn(32, 8)
    assert torch.equal(w2_uniformity(z, gather_distributed=True), w2_uniformity(z))


def _sizes_worker(rank: int, init_file: str, out_dir: str) -> None:
    from w2reg import _distributed, set_strict_checks

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    log: dict[str, object] = {}
    try:
        log["checked_before"] = _distributed.sizes_checked()
        try:  # first gather: the row counts are compared (one host sync) ...
            w2_uniformity(torch.randn(ROWS - 4 * rank, DIM), gather_distributed=True)
        except ValueError as err:
            log["first_error"] = str(err)
        log["checked_after_error"] = _distributed.sizes_checked()
        w2_uniformity(torch.randn(ROWS, DIM), gather_distributed=True)
        log["checked_after_success"] = _distributed.sizes_checked()
        # ... and not again unless strict checks are on (then on every call)
        w2_uniformity(torch.randn(ROWS, DIM), gather_distributed=True)
        set_strict_checks(True)
        try:
            w2_uniformity(torch.randn(ROWS + rank, DIM), gather_distributed=True)
        except ValueError as err:
            log["strict_error"] = str(err)
        finally:
            set_strict_checks(False)
    finally:
        torch.save(log, os.path.join(out_dir, f"sizes{rank}.pt"))
    _leave()


def test_row_counts_compared_on_the_first_gather_and_under_strict_checks() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_sizes_worker, args=(os.path.join(tmp, "init"), tmp), nprocs=WORLD, join=True)
        logs = [torch.load(os.path.join(tmp, f"sizes{r}.pt")) for r in range(WORLD)]
    for log in logs:
        assert log["checked_before"] is False
        assert "same number of rows on every rank, got [24, 20]" in log["first_error"]
        assert log["checked_after_error"] is False
        assert log["checked_after_success"] is True
        assert "got [24, 25]" in log["strict_error"]
