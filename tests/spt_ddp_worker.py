"""One rank of the 2-process DDP run of tests/test_spt_ddp.py (launched by ``torchrun``).

``python -m torch.distributed.run --nproc-per-node 2 spt_ddp_worker.py OUT RUN...``, each
``RUN`` ``GATHER:KIND`` (``1:forward:simclr``, ``0:class:BYOL``; kinds: tests/spt_fixture.py):
one Trainer after the other in the same process group (one launch: the imports of torch,
Lightning and spt are most of a run's time), the module trains two steps with
``W2Regularizer(0.5, gather_distributed=GATHER == "1")`` under Lightning's ``ddp`` strategy on
CPU (gloo), each rank on its half of the data (Lightning's distributed sampler). Each rank
writes ``OUT/<RUN>-rank<r>.pt`` (``:`` as ``-``): per step the rows its online projector
produced, the W2 the regularizer computed, its row count, and what was logged
(``trainer.callback_metrics``).

(Not ``ddp_spawn``: spt's default ``HardwareMonitor`` callback, which its entry point adds to
every Trainer, holds a thread lock and cannot be pickled into spawned processes.)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import stable_pretraining as spt
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gloo_teardown import end_process_group  # noqa: E402
from spt_fixture import WITH_ENV_DUMP, B, build, keep_outputs, loader, trainer  # noqa: E402

from w2reg.adapters.spt import LOG_W2, W2Regularizer, projector_name  # noqa: E402


class Record(pl.Callback):
    def __init__(self, reg: W2Regularizer, kept: list[torch.Tensor]) -> None:
        self.reg, self.kept, self.steps = reg, kept, []

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        reg = self.reg.regularizer
        self.steps.append(
            {
                "z": torch.cat(self.kept),
                "w2": reg.loss.last_value.double(),
                "rows": reg.last_rows,
                "logged": float(trainer.callback_metrics[f"{LOG_W2}_step"]),
            }
        )
        self.kept.clear()


def main(out: str, *runs: str) -> None:
    spt.set(verbose="ERROR", progress_bar="none", cache_dir=str(Path(out) / "spt-cache"))
    spt.set(**WITH_ENV_DUMP)  # all of spt's default callbacks, as users get them
    for name in runs:
        gather, kind = name.split(":", 1)
        torch.manual_seed(0)  # the same initial weights on both ranks
        module = build(kind)
        kept = keep_outputs(module.get_submodule(projector_name(module)))
        reg = W2Regularizer(0.5, gather_distributed=gather == "1")
        record = Record(reg, kept)
        t = trainer(strategy="ddp", devices=2, max_steps=2, callbacks=[reg, record])
        t.fit(module, loader(4 * B))  # 2 batches of B per rank
        rank = t.global_rank
        result = {"rank": rank, "world": t.world_size, "steps": record.steps}
        torch.save(result, Path(out) / f"{name.replace(':', '-')}-rank{rank}.pt")
    end_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
