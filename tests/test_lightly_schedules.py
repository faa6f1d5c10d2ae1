"""The ready lightly models' schedules in a plain PyTorch loop and in short runs.

Outside a Trainer the models used to see a run of one step (the cosine learning rate sat at
its floor after the first few steps, MoCo's momentum jumped to its end value), and the
default 10 warm-up epochs covered any run of 10 epochs or less without a word. Here: a plain
loop given ``steps_per_epoch`` reproduces the Trainer's learning rates, momentum, W2 weights
and losses step for step; without it the error names what to pass; the default warm-up is
at most a tenth of the run, and a longer explicit one warns.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from quiet_trainer import trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("lightly")
try:  # the package the adapter's models subclass: lightning.pytorch, else pytorch_lightning
    import lightning.pytorch as lightning
except ImportError:  # pragma: no cover
    lightning = pytest.importorskip("pytorch_lightning")

from w2reg.adapters import lightly as wl  # noqa: E402
from w2reg.adapters import lightly_recipe as lr  # noqa: E402

warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", category=UserWarning, module="lightning")

B = 8


def tiny_model(method: str, *, w2: bool = True, seed: int = 0, **kw):
    torch.manual_seed(seed)
    backbone = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=4, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    extra = {"memory_bank_size": 32} if method in ("mocov2", "nnclr") else {}
    return wl.create_model(
        method,
        w2=w2,
        backbone=backbone,
        feature_dim=8,
        proj_hidden_dim=16,
        proj_output_dim=8,
        **extra,
        **kw,
    )


class Views(TensorDataset):
    """``([view_1, view_2], 0)`` of fixed random 16x16 images."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(1)
        super().__init__(torch.randn(n, 2, 3, 16, 16, generator=g))

    def __getitem__(self, i: int):
        return list(self.tensors[0][i].unbind(0)), 0


def loader(steps: int) -> DataLoader:
    return DataLoader(Views(steps * B), batch_size=B, shuffle=False, drop_last=True)


def _state(model) -> dict:
    reg = getattr(model, "w2reg", None)
    momentum = getattr(model, "momentum_start", None)
    return {
        "momentum": None if momentum is None else model._momentum(momentum, model.momentum_end),
        "w2_weight": None if reg is None else reg.loss.last_weight,
    }


class Record(lightning.Callback):
    def __init__(self) -> None:
        self.lrs, self.losses, self.momenta, self.weights = [], [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        self.momenta.append(_state(pl_module)["momentum"])

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.losses.append(float(loss.detach()))
        self.weights.append(_state(pl_module)["w2_weight"])


def plain_loop(model, data: DataLoader, epochs: int) -> Record:
    rec = Record()
    optimizer, scheduler = model.optimizer_and_scheduler()
    model.train()
    for _ in range(epochs):
        for batch in data:
            rec.lrs.append(optimizer.param_groups[0]["lr"])
            rec.momenta.append(_state(model)["momentum"])
            loss = model.training_step(batch, 0)
            rec.losses.append(float(loss.detach()))
            rec.weights.append(_state(model)["w2_weight"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return rec


@pytest.mark.parametrize("method", ["mocov2", "barlow_twins"])
def test_plain_loop_follows_the_trainer_step_for_step(method):
    """Same init, data and length: the same LR, momentum, W2 weight and loss every step."""
    epochs, steps = 3, 2
    under = Record()
    model = tiny_model(method, max_epochs=epochs)
    trainer(max_epochs=epochs, callbacks=[under]).fit(model, loader(steps))

    plain = plain_loop(
        tiny_model(method, max_epochs=epochs, steps_per_epoch=steps), loader(steps), epochs
    )
    assert len(plain.lrs) == len(under.lrs) == epochs * steps
    assert plain.lrs == pytest.approx(under.lrs, rel=1e-6)
    assert max(plain.lrs) == pytest.approx(model.lr, rel=0.05)  # the peak is reached
    assert plain.lrs[-1] < 0.5 * model.lr  # and the cosine decays within the run
    if method == "mocov2":
        assert plain.momenta == pytest.approx(under.momenta)
        assert plain.momenta[0] == 0.99 and plain.momenta[-1] > plain.momenta[1]
    else:  # BarlowTwins' default W2 weight: LinearDecay(30, 0) over the 3 epochs
        assert plain.weights == under.weights == [30.0, 30.0, 20.0, 20.0, 10.0, 10.0]
    assert plain.losses == pytest.approx(under.losses, rel=1e-4, abs=1e-5)


def test_plain_loop_without_length_names_what_to_pass():
    model = tiny_model("byol", max_epochs=5)
    with pytest.raises(ValueError, match=r"steps_per_epoch=len\(train_loader\)"):
        model.optimizer_and_scheduler()
    with pytest.raises(ValueError, match="max_epochs"):
        model.configure_optimizers()
    # MoCo's momentum needs the length from the second step on
    moco = tiny_model("mocov2", w2=False)
    batch = next(iter(loader(1)))
    moco.training_step(batch, 0)  # step 0: the momentum is its start value anyway
    with pytest.raises(ValueError, match="steps_per_epoch"):
        moco.training_step(batch, 1)
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1, got 0"):
        tiny_model("byol", steps_per_epoch=0)


def test_short_run_default_warmup_fits_the_run():
    """A 2-epoch run of 4 steps per epoch: warm-up 0.2 epochs (1 step), then the cosine."""
    rec = Record()
    model = tiny_model("simclr", max_epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no warm-up warning by default
        warnings.filterwarnings("ignore", module="lightning")
        trainer(max_epochs=2, callbacks=[rec]).fit(model, loader(4))
    assert model.run_length() == (8, 4.0) and model.warmup_steps() == 1
    expected = [model.lr * lr._warmup_cosine(s, 8, 1) for s in range(8)]
    assert rec.lrs == pytest.approx(expected, rel=1e-6)
    assert rec.lrs[0] == pytest.approx(model.lr) and rec.lrs[-1] < 0.1 * model.lr


def test_explicit_long_warmup_warns():
    model = tiny_model("simclr", max_epochs=4, steps_per_epoch=3, warmup_epochs=10)
    with pytest.warns(UserWarning, match=r"warmup_epochs=10 is more than half of this 4-epoch"):
        model.optimizer_and_scheduler()
    assert model.warmup_steps() == 12  # clipped to the run
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_model("simclr", max_epochs=4, steps_per_epoch=3, warmup_epochs=1).warmup_steps()
    with pytest.raises(ValueError, match="warmup_epochs must be None or a number >= 0"):
        tiny_model("simclr", warmup_epochs=-1)


@pytest.mark.parametrize(
    "epochs, steps_per_epoch, warmup_steps",
    [(500, 2, 20), (100, 3, 30), (50, 2, 10), (5, 10, 5)],
)
def test_default_warmup_is_the_papers_ten_epochs_capped_at_a_tenth(
    epochs, steps_per_epoch, warmup_steps
):
    model = tiny_model("byol", max_epochs=epochs, steps_per_epoch=steps_per_epoch)
    assert model.warmup_steps() == warmup_steps


def test_trainer_with_only_max_steps():
    """max_steps and no max_epochs: the length is the trainer's steps, epochs its batches."""
    rec = Record()
    model = tiny_model("simsiam", w2=False)
    trainer(max_steps=6, max_epochs=-1, callbacks=[rec]).fit(model, loader(2))
    assert model.run_length() == (6, 2.0)
    expected = [model.lr * lr._warmup_cosine(s, 6, 1) for s in range(6)]
    assert rec.lrs == pytest.approx(expected, rel=1e-6)
