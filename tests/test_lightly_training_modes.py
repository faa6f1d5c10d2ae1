"""The glue in the ways Lightning users train (issue 11): pickled models, ``ddp_spawn``, a
Trainer given only ``max_steps``, manual optimisation, and logging without Lightning guessing
the batch size. Real Lightning, real lightly heads and losses, no mocks."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from quiet_trainer import lightning, trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

pytest.importorskip("lightly")

from glue_models import DestroyProcessGroup  # noqa: E402
from lightly.loss import NTXentLoss  # noqa: E402
from lightly.models.modules import SimCLRProjectionHead  # noqa: E402

from w2reg import LinearDecay, w2_uniformity  # noqa: E402
from w2reg.adapters.lightly import LOG_W2, LOG_WEIGHT, w2_regularized  # noqa: E402

B = 8


class SimCLR(lightning.LightningModule):
    """lightly's SimCLR example with a tiny backbone; logs with an explicit batch size."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.projection_head = SimCLRProjectionHead(8, 16, 8)
        self.criterion = NTXentLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

    def training_step(self, batch, batch_idx):
        x0, x1 = batch[0]
        loss = self.criterion(self.forward(x0), self.forward(x1))
        self.log("criterion", loss, batch_size=x0.shape[0])
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.06)


class ManualSimCLR(SimCLR):
    """The same model trained with manual optimisation."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.grads: list[dict[str, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x0, x1 = batch[0]
        loss = self.criterion(self.forward(x0), self.forward(x1))
        opt.zero_grad()
        self.manual_backward(loss)
        self.grads.append({n: p.grad.clone() for n, p in self.named_parameters()})
        opt.step()


# The factory form, bound to a new name: its class carries SimCLR's name and module.
W2SimCLR = w2_regularized(SimCLR, weight=0.5)


class Views(Dataset):
    """``(views, target, filename)`` samples, as lightly's ``LightlyDataset`` yields them."""

    def __init__(self, n: int = 2 * B) -> None:
        g = torch.Generator().manual_seed(0)
        self.views = [torch.randn(n, 3, 32, 32, generator=g) for _ in range(2)]

    def __len__(self) -> int:
        return len(self.views[0])

    def __getitem__(self, i: int):
        return [v[i] for v in self.views], 0, f"image_{i}.png"


def loader(batch_size: int = B) -> DataLoader:
    return DataLoader(Views(2 * batch_size), batch_size=batch_size, drop_last=True)


class Weights(lightning.Callback):
    def __init__(self) -> None:
        self.weights: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights.append(float(trainer.callback_metrics[f"{LOG_WEIGHT}_step"]))


def test_factory_form_pickles_with_torch_save():
    assert W2SimCLR.__name__ == "SimCLR" and W2SimCLR is not SimCLR
    model = W2SimCLR()
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert isinstance(loaded, SimCLR) and type(loaded).__mro__[1] is SimCLR
    assert loaded.w2reg.head is loaded.projection_head and loaded.w2reg.loss.weight == 0.5
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    # the rebuilt model trains, and its hook feeds its own regularizer
    batch = next(iter(loader()))
    loss = loaded.training_step(batch, 0)
    assert loaded.w2reg.loss.last_value is not None and loss.requires_grad
    buffer.seek(0)
    assert type(torch.load(buffer, weights_only=False)) is type(loaded)  # one class per spec


def test_factory_form_trains_with_ddp_spawn():
    model = W2SimCLR()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t = trainer(strategy="ddp_spawn", devices=2, max_steps=1, callbacks=[DestroyProcessGroup()])
    t.fit(model, loader())  # pickles the model into two fresh processes
    # rank 0's metrics and weights come back to this process
    assert torch.isfinite(t.callback_metrics[f"{LOG_W2}_step"])
    assert float(t.callback_metrics[f"{LOG_WEIGHT}_step"]) == 0.5
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "no weight was updated"


def test_linear_decay_follows_a_trainer_given_only_max_steps():
    rec = Weights()
    model = w2_regularized(SimCLR, weight=LinearDecay(4.0, 0.0))()
    t = trainer(max_steps=4, callbacks=[rec])  # 2 batches per epoch: a 2-epoch run
    assert t.max_epochs in (None, -1)  # no epoch count given
    t.fit(model, loader())
    assert rec.weights == [4.0, 4.0, 2.0, 2.0]


def test_linear_decay_counts_optimizer_steps_with_accumulation():
    rec = Weights()
    model = w2_regularized(SimCLR, weight=LinearDecay(4.0, 0.0))()
    # 2 batches = 1 optimizer step per epoch: 2 steps are 2 epochs
    trainer(max_steps=2, accumulate_grad_batches=2, callbacks=[rec]).fit(model, loader())
    assert rec.weights == [4.0, 4.0, 2.0, 2.0]


def test_manual_optimisation_backpropagates_the_term():
    model = w2_regularized(ManualSimCLR, weight=0.5)()
    reference = ManualSimCLR()
    reference.load_state_dict(model.state_dict())
    batch = next(iter(loader()))
    trainer(max_steps=1).fit(model, DataLoader([batch], batch_size=None))
    assert model.w2reg.loss.last_weight == 0.5

    x0, x1 = batch[0]
    z0, z1 = reference(x0), reference(x1)
    want = reference.criterion(z0, z1) + 0.5 * w2_uniformity(torch.cat([z0, z1]))
    want.backward()
    got = model.grads[0]
    for name, p in reference.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-4, atol=1e-6)


def test_manual_optimisation_with_projections_after_backward_is_an_error():
    class Late(ManualSimCLR):
        def training_step(self, batch, batch_idx):
            super().training_step(batch, batch_idx)
            self.forward(batch[0][0])  # computed after manual_backward: would be lost

    model = w2_regularized(Late)()
    with pytest.raises(RuntimeError, match="after its last self.manual_backward"):
        trainer(max_steps=1).fit(model, loader())


def test_logging_needs_no_batch_size_inference():
    """A lightly batch (views, targets, filenames) is ambiguous to Lightning's batch-size guess.

    Lightning warns once per message and process; the message carries the batch size, so a
    batch size no other test uses keeps this test independent of the others.
    """
    model = w2_regularized(SimCLR, weight=0.5)()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(max_steps=2).fit(model, loader(batch_size=5))
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "infer the `batch_size`" in m], messages
