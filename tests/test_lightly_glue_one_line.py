"""Issue 16, "Done when" (first bullet): the one line with ``term=`` on lightly's own example
models and on the ready models, for W2, Wang & Isola's L_U and a user's callable.

For every case ``loss - plain loss = weight * term(z)`` to 1e-6, where ``z`` is the
concatenation of the online head's outputs of the step's views, recomputed here, the term
is computed here with the core's functions (:func:`w2reg.w2_uniformity`,
:func:`w2reg.wang_isola_uniformity`) or the user's function, and the plain loss is that of the
undecorated class in the same state on the same batch. In float64, so that 1e-6 is far above
rounding. Then the same under a Lightning ``Trainer``, and under DDP (two gloo processes,
``gather_distributed=True``), where the term is that of the global batch.

On 354286e every case fails: ``term=`` / ``w2_term=`` did not exist (a TypeError).
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytest.importorskip("lightly")

from glue_models import (  # noqa: E402
    EXAMPLES,
    B,
    RandomViews,
    batch_of,
    leave,
    online_projections,
    ready_kwargs,
    spread,
    watchdog,
)
from quiet_trainer import lightning, trainer  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from w2reg import w2_uniformity, wang_isola_uniformity  # noqa: E402
from w2reg.adapters import lightly as wl  # noqa: E402
from w2reg.adapters.lightly import w2_regularized  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")

#: term -> (the ``term=`` argument, its weight, the oracle of the concatenated rows, log name)
TERMS = {
    "w2": ("w2", 0.7, w2_uniformity, "w2"),
    "lu": ("lu", 0.3, wang_isola_uniformity, "lu"),
    "callable": (spread, 2.0, spread, "spread"),
}
KINDS = [f"example:{k}" for k in EXAMPLES] + [f"ready:{m}" for m in wl.W2_METHODS]


def pair(kind: str, term: str, *, gather: bool = False, seed: int = 0):
    """``(plain, regularized)`` models of ``kind`` in one state, float64."""
    arg, weight, _, _ = TERMS[term]
    family, name = kind.split(":")
    torch.manual_seed(seed)
    if family == "example":
        plain = EXAMPLES[name]()
        # the one line, in its factory form (the decorator form is the same call)
        reg = w2_regularized(EXAMPLES[name], weight=weight, term=arg, gather_distributed=gather)()
    else:
        kw = ready_kwargs(name, gather_distributed=gather)
        plain = wl.METHODS[name](**copy.deepcopy(kw))
        reg = wl.W2_METHODS[name](w2_weight=weight, w2_term=arg, **kw)
    plain.double()
    reg.double()
    sync(reg, plain)
    return plain, reg


def sync(target, source) -> None:
    """``target`` gets ``source``'s parameters and buffers (lightly's memory banks are
    non-persistent buffers: outside ``state_dict``)."""
    target.load_state_dict(source.state_dict(), strict=True)
    buffers = dict(source.named_buffers())
    with torch.no_grad():
        for name, buf in target.named_buffers():
            buf.copy_(buffers[name])


def expected(term: str, z: torch.Tensor) -> float:
    _, weight, oracle, _ = TERMS[term]
    return weight * float(oracle(z))


def difference(plain, reg, batch) -> tuple[float, torch.Tensor]:
    """``loss - plain loss`` of one step on ``batch``, and the online rows of the step."""
    z = online_projections(reg, batch[0])
    loss = reg.training_step(batch, 0)
    plain_loss = plain.training_step(batch, 0)
    return float(loss.detach()) - float(plain_loss.detach()), z


@pytest.mark.parametrize("term", list(TERMS))
@pytest.mark.parametrize("kind", KINDS)
def test_loss_minus_plain_loss_is_weight_times_term(kind, term):
    plain, reg = pair(kind, term)
    for step in range(2):  # the second step: after the first moved banks and momentum copies
        diff, z = difference(plain, reg, batch_of(dtype=torch.float64, seed=step))
        assert diff == pytest.approx(expected(term, z), abs=1e-6)
        assert reg.w2reg.last_rows == z.shape[0] == 2 * B


# -- under a Trainer -------------------------------------------------------------------------------
class Lockstep(lightning.Callback):
    """At every step: the plain model, put in the trained model's state, computes the plain
    loss of the batch; the loss handed to backward minus it is compared with the term."""

    def __init__(self, plain) -> None:
        self.plain = plain
        self.diffs: list[float] = []
        self.rows: list[torch.Tensor] = []
        self.logged: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        sync(self.plain, pl_module)
        self._batch = batch
        self._plain = float(self.plain.training_step(batch, batch_idx).detach())

    def on_before_backward(self, trainer, pl_module, loss):
        self.diffs.append(float(loss.detach()) - self._plain)
        self.rows.append(online_projections(pl_module, self._batch[0]))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def float64_trainer(**kw):
    major = int(lightning.__version__.split(".")[0])
    return trainer(precision="64-true" if major >= 2 else 64, **kw)


@pytest.mark.parametrize("term", list(TERMS))
@pytest.mark.parametrize("kind", ["example:simclr", "example:byol", "ready:byol", "ready:mocov2"])
def test_one_line_under_a_trainer(kind, term):
    from w2reg.adapters.lightly import log_keys  # new in the second draft

    plain, reg = pair(kind, term)
    data = DataLoader(RandomViews(2 * B, dtype=torch.float64), batch_size=B, drop_last=True)
    lockstep = Lockstep(plain)
    float64_trainer(max_steps=2, callbacks=[lockstep]).fit(reg, data)
    assert len(lockstep.diffs) == 2
    value_key, weight_key, term_key = log_keys(TERMS[term][3])
    _, weight, oracle, _ = TERMS[term]
    for diff, z, logged in zip(lockstep.diffs, lockstep.rows, lockstep.logged, strict=True):
        assert diff == pytest.approx(expected(term, z), abs=1e-6)
        assert logged[f"{value_key}_step"] == pytest.approx(float(oracle(z)), rel=1e-6)
        assert logged[f"{weight_key}_step"] == weight
        assert logged[f"{term_key}_step"] == pytest.approx(expected(term, z), rel=1e-6)


# -- under DDP: the term of the global batch -------------------------------------------------------
WORLD = 2
DDP_KINDS = ["example:simclr", "example:byol", "ready:byol", "ready:barlow_twins"]


def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    watchdog(120)
    torch.set_num_threads(1)  # two processes on a small machine: no oversubscription
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=60),
    )
    out = {}
    try:
        for kind in DDP_KINDS:
            for term in TERMS:
                plain, reg = pair(kind, term, gather=True)  # the same models on both ranks
                batch = batch_of(dtype=torch.float64, seed=100 + rank)  # each rank its half
                diff, z = difference(plain, reg, batch)
                out[kind, term] = (diff, z, reg.w2reg.last_rows)
    finally:
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    leave()


def test_one_line_under_ddp_is_the_term_of_the_global_batch():
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_ddp_worker, args=(os.path.join(tmp, "init"), tmp), nprocs=WORLD)
        ranks = [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(WORLD)]
    for kind in DDP_KINDS:
        for term in TERMS:
            z = torch.cat([ranks[r][kind, term][1] for r in range(WORLD)])  # the global batch
            want = expected(term, z)
            local = expected(term, ranks[0][kind, term][1])
            assert abs(want - local) > 1e-4, "the global term must differ from a local one"
            for r in range(WORLD):
                diff, _, rows = ranks[r][kind, term]
                assert diff == pytest.approx(want, abs=1e-6), (kind, term, r)
                assert rows == WORLD * 2 * B
