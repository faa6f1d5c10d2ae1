"""The held-out defects of the 0.1 glue (issue 20), one test each, on real lightly models.

Each test failed on 354286e (the glue before its second draft; the note in the report says
how each failed) and passes on the rewritten glue (:mod:`w2reg.adapters.head`,
:mod:`w2reg.adapters._lightning`). Models are written like lightly's examples
(``tests/glue_models.py``), trained by a real Lightning ``Trainer`` on CPU; the distributed
cases run two gloo processes.
"""

from __future__ import annotations

import copy
import io
import os
import pickle
import tempfile
import warnings
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

pytest.importorskip("lightly")

from glue_models import (  # noqa: E402
    DIM,
    B,
    SimCLR,
    batch_of,
    leave,
    loader,
    online_projections,
    ready_kwargs,
    watchdog,
    weight_of_model,
)
from lightly.loss import BarlowTwinsLoss, NTXentLoss  # noqa: E402
from lightly.models.modules import BarlowTwinsProjectionHead, SimCLRProjectionHead  # noqa: E402
from quiet_trainer import lightning, trainer  # noqa: E402

from w2reg import w2_uniformity  # noqa: E402
from w2reg.adapters import lightly as wl  # noqa: E402
from w2reg.adapters.lightly import w2_regularized  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")


class Expect(lightning.Callback):
    """Per step: the loss handed to backward, and ``criterion + weight * W2`` recomputed from
    the online head's outputs of the step's views (same parameters, train-mode BN)."""

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.losses: list[float] = []
        self.expected: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._views = batch[0]

    def on_before_backward(self, trainer, pl_module, loss):
        self.losses.append(float(loss.detach()))
        zs = [online_projections(pl_module, [v]) for v in self._views]
        with torch.no_grad():
            plain = float(pl_module.criterion(*zs))
            self.expected.append(plain + self.weight * float(w2_uniformity(torch.cat(zs))))

    def check(self, steps: int) -> None:
        assert len(self.losses) == steps
        assert self.losses == pytest.approx(self.expected, rel=1e-5, abs=1e-6)


# -- (a) the head is looked up at every step ---------------------------------------------------
@w2_regularized(weight=0.5)
class SimCLRW2(SimCLR):
    pass


class BarlowTwins(SimCLRW2):
    """Barlow Twins as a subclass of (regularized) SimCLR: it replaces ``projection_head``
    after the decorated class's ``__init__`` has run."""

    def __init__(self):
        super().__init__()
        self.projection_head = BarlowTwinsProjectionHead(8, 16, DIM)
        self.criterion = BarlowTwinsLoss()


def test_subclass_that_replaces_the_head_is_regularized_on_its_own_head():
    model = BarlowTwins()
    old_head = SimCLR().projection_head
    expect = Expect(0.5)
    trainer(max_steps=2, callbacks=[expect]).fit(model, loader())
    expect.check(2)
    assert model.w2reg.head is model.projection_head and model.w2reg.head is not old_head


def test_head_reassigned_after_construction_is_followed():
    model = SimCLRW2()
    first = model.projection_head
    model.projection_head = SimCLRProjectionHead(8, 32, DIM)
    expect = Expect(0.5)
    trainer(max_steps=2, callbacks=[expect]).fit(model, loader())
    expect.check(2)
    # the head it replaced is not captured any more (it runs, without effect on the loss)
    model.w2reg.begin()
    first(torch.randn(B, 8))
    assert not model.w2reg.pending
    model.w2reg.abort()


# -- (a) decorated twice: one term ---------------------------------------------------------------
Twice = w2_regularized(w2_regularized(SimCLR, weight=0.1), weight=0.5)


@w2_regularized(weight=0.5)
class Again(SimCLRW2):  # SimCLRW2 has weight 0.5 too: two terms would double it
    pass


@pytest.mark.parametrize("cls", [Twice, Again], ids=["factory-of-factory", "decorated-subclass"])
def test_class_decorated_again_carries_one_term_with_the_outer_settings(cls):
    expect = Expect(0.5)
    trainer(max_steps=2, callbacks=[expect]).fit(cls(), loader())
    expect.check(2)


def test_class_decorated_again_pickles_and_unpickles_with_one_term():
    """The factory applied to a factory-made class (both bound to new names): pickling
    rebuilds both classes from their specs (torch.save, ddp_spawn)."""
    for blob in (pickle.dumps(Twice()), _torch_saved(Twice())):
        loaded = (
            pickle.loads(blob) if isinstance(blob, bytes) else torch.load(blob, weights_only=False)
        )
        assert isinstance(loaded, SimCLR) and type(loaded).__name__ == "SimCLR"
        assert loaded.w2reg.loss.weight == 0.5
        trains_on_its_own_head(loaded, 0.5)  # one term, with the outer weight
        again = pickle.loads(pickle.dumps(loaded))  # the rebuilt classes pickle again
        assert type(again) is type(loaded)


def _torch_saved(model) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return buffer


# -- (b) the weight is checked where the decorator is applied --------------------------------------
BAD_WEIGHTS = ["0.2", None, torch.tensor(0.2), torch.tensor([0.2]), -1.0, float("nan"), True]


@pytest.mark.parametrize("weight", BAD_WEIGHTS, ids=repr)
def test_bad_weight_is_a_value_error_naming_weight_at_decoration(weight):
    with pytest.raises(ValueError, match="weight"):
        w2_regularized(weight=weight)  # the decorator, before any class
    with pytest.raises(ValueError, match="weight"):
        w2_regularized(SimCLR, weight=weight)  # the factory
    if weight is not None:  # None is the ready models' "the method's default"
        with pytest.raises(ValueError, match="w2_weight"):
            wl.W2_METHODS["byol"](w2_weight=weight, **ready_kwargs("byol"))


@pytest.mark.parametrize("weight", [np.float32(0.25), np.float64(0.25), np.int64(2)], ids=repr)
def test_numpy_weights_are_accepted_and_saved_as_plain_numbers(weight, tmp_path):
    cls = w2_regularized(SimCLR, weight=weight)
    model = cls()
    assert model.w2reg.loss.weight == float(weight)
    expect = Expect(float(weight))
    fit = trainer(max_steps=1, callbacks=[expect])
    fit.fit(model, loader())
    expect.check(1)
    fit.save_checkpoint(tmp_path / "np.ckpt")
    state = torch.load(tmp_path / "np.ckpt", weights_only=True)["w2reg"]  # plain types only
    assert state["schedule"]["start"] == float(weight)
    ready = wl.W2_METHODS["simclr"](w2_weight=weight, **ready_kwargs("simclr"))
    assert ready.w2reg.loss.weight == float(weight)


# -- a training_step that returns None skips the batch -------------------------------------------
class SkipsFirst(SimCLR):
    def training_step(self, batch, batch_index):
        loss = super().training_step(batch, batch_index)
        return None if batch_index == 0 else loss


class Snapshots(lightning.Callback):
    def __init__(self) -> None:
        self.params: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.params.append({k: v.detach().clone() for k, v in pl_module.named_parameters()})


def test_training_step_returning_none_skips_the_batch():
    model = w2_regularized(SkipsFirst, weight=0.5)()
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    expect, snapshots = Expect(0.5), Snapshots()
    fit = trainer(max_epochs=1, callbacks=[expect, snapshots])
    fit.fit(model, loader())
    for key, value in start.items():  # the skipped batch left the weights as they were
        assert torch.equal(snapshots.params[0][key], value), key
    assert any(not torch.equal(snapshots.params[1][k], v) for k, v in start.items())
    expect.check(1)  # the second batch: its own projections only (nothing left from the first)
    assert not model.w2reg.active and not model.w2reg.pending


# -- callable weights, copies, pickles -------------------------------------------------------------
LambdaWeighted = w2_regularized(SimCLR, weight=lambda model: 0.3)
FunctionWeighted = w2_regularized(SimCLR, weight=weight_of_model)


def trains_on_its_own_head(model, weight: float) -> None:
    batch = batch_of()
    loss = model.training_step(batch, 0)
    with torch.no_grad():
        zs = [online_projections(model, [v]) for v in batch[0]]
        want = float(model.criterion(*zs)) + weight * float(w2_uniformity(torch.cat(zs)))
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5)
    assert model.w2reg.head is model.projection_head


def test_factory_with_a_lambda_weight_deep_copies_and_averages():
    model = LambdaWeighted()
    twin = copy.deepcopy(model)
    assert type(twin) is type(model) and twin.w2reg is not model.w2reg
    trains_on_its_own_head(twin, 0.3)
    assert model.w2reg.loss.last_value is None  # the copy's step did not feed the original
    averaged = torch.optim.swa_utils.AveragedModel(model)
    averaged.update_parameters(model)
    assert type(averaged.module) is type(model)
    trains_on_its_own_head(averaged.module, 0.3)


def test_factory_with_a_lambda_weight_refuses_to_pickle_clearly():
    with pytest.raises(pickle.PicklingError, match="module level"):
        torch.save(LambdaWeighted(), io.BytesIO())
    with pytest.raises(pickle.PicklingError, match="lambda"):
        pickle.dumps(LambdaWeighted())  # what ddp_spawn does with the model


def test_factory_with_a_module_level_weight_function_pickles():
    model = FunctionWeighted()
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert loaded.w2reg.loss.weight == model.w2reg.loss.weight == weight_of_model(model)
    trains_on_its_own_head(loaded, weight_of_model(model))
    trains_on_its_own_head(copy.deepcopy(model), weight_of_model(model))


def test_decorated_class_defined_in_a_function_deep_copies():
    @w2_regularized(weight=0.5)
    class Local(SimCLR):
        pass

    twin = copy.deepcopy(Local())
    assert type(twin) is Local
    trains_on_its_own_head(twin, 0.5)
    with pytest.raises(pickle.PicklingError, match="module level"):
        pickle.dumps(Local())


# -- a head with a 0-d output --------------------------------------------------------------------
class ScalarHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, DIM)

    def forward(self, x):
        return self.linear(x).square().mean()  # 0-d: not (B, m) projections


class ScalarModel(SimCLR):
    def __init__(self):
        super().__init__()
        self.projection_head = ScalarHead()

    def training_step(self, batch, batch_index):
        return self.forward(batch[0][0]) + self.forward(batch[0][1])


def test_head_with_a_zero_dim_output_is_a_clear_error():
    model = w2_regularized(ScalarModel, weight=0.5)()
    with pytest.raises(ValueError, match="0-d"):
        model.training_step(batch_of(), 0)
    assert not model.w2reg.active  # aborted: the next step starts clean


# -- string flags ---------------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["normalize", "gather_distributed"])
@pytest.mark.parametrize("value", ["no", "False", 0, None], ids=repr)
def test_string_and_number_flags_are_refused_at_decoration(flag, value):
    with pytest.raises(ValueError, match=flag):
        w2_regularized(**{flag: value})
    with pytest.raises(ValueError, match=flag):
        w2_regularized(SimCLR, **{flag: value})


# -- (c) uneven row counts under gathering; (d) the logged batch size ----------------------------
Gathered = w2_regularized(SimCLR, weight=0.5, gather_distributed=True)
WORLD = 2


class GatheringSimCLR(SimCLR):
    """The example set up for DDP: lightly's criterion gathers too (and runs before the term)."""

    def __init__(self):
        super().__init__()
        self.criterion = NTXentLoss(gather_distributed=True)


GatheringW2 = w2_regularized(GatheringSimCLR, weight=0.5, gather_distributed=True)


def _ready_gathering():
    return wl.W2_METHODS["simclr"](gather_distributed=True, **ready_kwargs("simclr"))


UNEVEN = {"decorated": Gathered, "criterion-gathers": GatheringW2, "ready": _ready_gathering}


def _uneven_worker(rank: int, init_file: str, out_dir: str) -> None:
    watchdog(60)
    torch.set_num_threads(1)  # two processes on a small machine: no oversubscription
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=20),
    )
    logs: dict[str, dict[str, object]] = {}
    for name, make in UNEVEN.items():
        torch.manual_seed(0)
        model = make()
        log = logs[name] = {}
        loss = model.training_step(batch_of(B, seed=rank), 0)  # equal counts: fine
        log["first"] = float(loss.detach())
        rows = B if rank == 0 else B - 2  # rank 1's last batch is short (drop_last=False)
        try:
            model.training_step(batch_of(rows, seed=10 + rank), 1)
            log["second"] = "no error"
        except Exception as err:  # what a user sees, whatever it is
            log["second"] = f"{type(err).__name__}: {err}"
        log["active_after"] = model.w2reg.active
        torch.save(logs, os.path.join(out_dir, f"uneven{rank}.pt"))  # a crash keeps the rest
    leave()


def test_uneven_rows_after_the_first_step_name_drop_last():
    """Also where lightly's criterion gathers before the term (the ready models'
    ``gather_distributed=True``, an example set up for DDP): the rows are compared when the
    head produces them, before anything is gathered."""
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_uneven_worker, args=(os.path.join(tmp, "init"), tmp), nprocs=WORLD)
        logs = [torch.load(os.path.join(tmp, f"uneven{r}.pt")) for r in range(WORLD)]
    for rank_logs in logs:
        assert list(rank_logs) == list(UNEVEN)
        for name, log in rank_logs.items():
            assert isinstance(log["first"], float), name
            second = log["second"]
            assert second.startswith("ValueError") and "drop_last" in second, (name, second)
            assert f"[{B}, {B - 2}]" in second or f"[{2 * B}, {2 * (B - 2)}]" in second, second
            assert log["active_after"] is False, name


class LoggedSimCLR(SimCLR):
    """Records the batch size given with every W2 log call, per rank, into ``out_dir``."""

    out_dir = ""

    def log(self, name, value, *args, **kwargs):
        if name.startswith("train_w2") and self.out_dir:
            path = os.path.join(self.out_dir, f"log{self.global_rank}.txt")
            with open(path, "a") as handle:
                handle.write(f"{name} {kwargs.get('batch_size')}\n")
        return super().log(name, value, *args, **kwargs)


#: the factory form, gathering, with a module-level weight function: through ddp_spawn
LoggedW2 = w2_regularized(LoggedSimCLR, weight=weight_of_model, gather_distributed=True)


def test_ddp_spawn_factory_with_weight_function_logs_the_gathered_batch_size(tmp_path):
    from glue_models import DestroyProcessGroup

    model = LoggedW2()
    model.out_dir = str(tmp_path)
    want_weight = weight_of_model(model)
    fit = trainer(
        strategy="ddp_spawn", devices=WORLD, max_steps=1, callbacks=[DestroyProcessGroup()]
    )
    fit.fit(model, loader(n=2 * WORLD * B))  # pickles the model into two fresh processes
    assert float(fit.callback_metrics["train_w2_weight_step"]) == pytest.approx(want_weight)
    for rank in range(WORLD):
        lines = (tmp_path / f"log{rank}.txt").read_text().split()
        sizes = {int(size) for size in lines[1::2]}
        assert sizes == {WORLD * 2 * B}, (rank, lines)  # 2 views x B rows x 2 ranks
