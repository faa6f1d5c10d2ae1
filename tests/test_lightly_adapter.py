"""``w2_regularized`` on models written the way lightly's examples write them (real lightly).

The classes below follow ``examples/pytorch_lightning/{simclr,byol}.py`` of lightly (a
``backbone``, a ``projection_head``, momentum copies made with ``copy.deepcopy``, a lightly
criterion), with tiny backbones; the W2 term is added by one line.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from quiet_trainer import trainer
from torch.utils.data import DataLoader, Dataset

pytest.importorskip("lightly")
try:  # the package the adapter's models subclass: lightning.pytorch, else pytorch_lightning
    import lightning.pytorch as lightning
except ImportError:  # pragma: no cover
    lightning = pytest.importorskip("pytorch_lightning")


import glue_models  # noqa: E402

from w2reg import LinearDecay, w2_uniformity  # noqa: E402
from w2reg.adapters.lightly import (  # noqa: E402
    CHECKPOINT_KEY,
    LOG_TERM,
    LOG_W2,
    LOG_WEIGHT,
    w2_regularized,
)

warnings.filterwarnings("ignore", category=UserWarning, module="lightning")

B = 8


# -- lightly's example models (tests/glue_models.py), logging their own loss as "criterion" ----
class SimCLR(glue_models.SimCLR):
    def training_step(self, batch, batch_index):
        loss = super().training_step(batch, batch_index)
        self.log("criterion", loss)
        return loss


class BYOL(glue_models.BYOL):
    def training_step(self, batch, batch_index):
        loss = super().training_step(batch, batch_index)
        self.log("criterion", loss)
        return loss


# The one line, in its two forms.
@w2_regularized(weight=0.5)
class SimCLRW2(SimCLR):
    pass


W2BYOL = w2_regularized(BYOL, weight=0.2)


# -- data, trainer, recorder -------------------------------------------------------------------
class RandomViews(Dataset):
    def __init__(self, n=2 * B, sizes=(32, 32), seed=0):
        g = torch.Generator().manual_seed(seed)
        self.views = [torch.randn(n, 3, s, s, generator=g) for s in sizes]

    def __len__(self):
        return len(self.views[0])

    def __getitem__(self, i):
        return [v[i] for v in self.views], 0


def loader(**kw):
    return DataLoader(RandomViews(**kw), batch_size=B, drop_last=True)


def online_projections(model, views):
    """What the online head outputs for ``views`` (train-mode BN), without gradients."""
    with torch.no_grad():
        return torch.cat([model.projection_head(model.backbone(v).flatten(1)) for v in views])


class Recorder(lightning.Callback):
    def __init__(self):
        self.losses, self.expected_w2, self.metrics = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._views = batch[0]

    def on_before_backward(self, trainer, pl_module, loss):
        self.losses.append(float(loss.detach()))
        self.expected_w2.append(float(w2_uniformity(online_projections(pl_module, self._views))))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def check_steps(rec, weight):
    assert rec.losses
    for loss, w2, metrics in zip(rec.losses, rec.expected_w2, rec.metrics, strict=True):
        for key in (LOG_W2, LOG_WEIGHT, LOG_TERM):
            assert f"{key}_step" in metrics, sorted(metrics)
        assert metrics[f"{LOG_WEIGHT}_step"] == pytest.approx(weight)
        assert metrics[f"{LOG_W2}_step"] == pytest.approx(w2, rel=1e-4)
        assert metrics[f"{LOG_TERM}_step"] == pytest.approx(weight * w2, rel=1e-4)
        assert loss == pytest.approx(metrics["criterion"] + weight * w2, rel=1e-4, abs=1e-5)


# -- tests -------------------------------------------------------------------------------------
def test_one_line_on_lightly_example_simclr():
    assert SimCLRW2.__name__ == "SimCLRW2" and issubclass(SimCLRW2, SimCLR)
    rec = Recorder()
    trainer(max_steps=2, callbacks=[rec]).fit(SimCLRW2(), loader())
    check_steps(rec, 0.5)


def test_one_line_on_lightly_example_byol_ignores_momentum_branch():
    """W2 of the online projections only, before the example's detach; target never captured."""
    assert W2BYOL is not BYOL and not hasattr(BYOL, "w2reg")
    model = W2BYOL()
    target_calls = []
    model.projection_head_momentum.register_forward_hook(lambda m, i, o: target_calls.append(o))
    rec = Recorder()
    trainer(max_steps=2, callbacks=[rec]).fit(model, loader())
    assert len(target_calls) == 4  # the target head ran, and W2 below excludes it
    check_steps(rec, 0.2)


def test_state_dict_and_checkpoint_load_into_plain_class_strictly(tmp_path):
    model = W2BYOL()
    assert list(model.state_dict()) == list(BYOL().state_dict())
    t = trainer(max_steps=1, enable_checkpointing=True, default_root_dir=tmp_path)
    t.fit(model, loader())
    t.save_checkpoint(tmp_path / "m.ckpt")
    state = torch.load(tmp_path / "m.ckpt", weights_only=False)
    assert state[CHECKPOINT_KEY]["settings"]["head"] == "projection_head"
    plain = BYOL()
    plain.load_state_dict(state["state_dict"], strict=True)


def test_bare_decorator_and_factory_leave_the_class_alone():
    @w2_regularized
    class Bare(SimCLR):
        pass

    model = Bare()
    assert Bare.__name__ == "Bare" and model.w2reg.loss.weight == 1.0
    made = w2_regularized(SimCLR, weight=LinearDecay(2.0, 0.0, epochs=4), name="Made")
    assert made.__name__ == "Made" and made().w2reg.loss.schedule(2) == 1.0
    assert not hasattr(SimCLR(), "w2reg")
    with pytest.raises(TypeError, match="by keyword"):
        w2_regularized(0.5)  # type: ignore[arg-type]


def test_missing_head_is_a_clear_error():
    with pytest.raises(ValueError, match="projector.*backbone.*projection_head"):
        w2_regularized(SimCLR, head="projector")()


def test_head_without_grad_output_is_a_clear_error():
    class Frozen(SimCLR):
        def training_step(self, batch, batch_idx):
            with torch.no_grad():
                self.forward(batch[0][0])
            return self.backbone(batch[0][0]).sum()

    with pytest.raises(RuntimeError, match="produced no output with gradients"):
        trainer(max_steps=1).fit(w2_regularized(Frozen)(), loader())


def test_no_grad_passes_and_late_deep_copies_are_not_captured():
    """kNN-style no_grad passes, validation, and a head deep-copied after wrapping."""

    class Busy(SimCLR):
        def on_fit_start(self):
            # a target copy made after the hook exists, still requiring grad
            self.late_copy = copy.deepcopy(self.projection_head)

        def training_step(self, batch, batch_idx):
            with torch.no_grad():
                self.forward(batch[0][0] * 2)  # e.g. a kNN monitor
            self.late_copy(self.backbone(batch[0][1]).flatten(1))
            return super().training_step(batch, batch_idx)

        def validation_step(self, batch, batch_idx):
            self.forward(batch[0][0])

    model = w2_regularized(Busy, weight=0.5)()
    rec = Recorder()
    trainer(max_steps=2, callbacks=[rec], limit_val_batches=1, val_check_interval=1).fit(
        model, loader(), loader()
    )
    check_steps(rec, 0.5)


def test_multi_crop_uses_every_online_projection():
    class MultiCrop(SimCLR):
        def training_step(self, batch, batch_idx):
            z = [self.forward(x) for x in batch[0]]
            loss = sum(self.criterion(z[0], zj) for zj in z[1:]) / (len(z) - 1)
            self.log("criterion", loss)
            return loss

    rec = Recorder()
    model = w2_regularized(MultiCrop, weight=1.0)()
    trainer(max_steps=1, callbacks=[rec]).fit(model, loader(sizes=(32, 32, 16, 16)))
    check_steps(rec, 1.0)  # expected W2 is over all four crops (4 * B rows)


def test_schedule_without_horizon_follows_trainer_max_epochs():
    rec = Recorder()
    model = w2_regularized(SimCLR, weight=LinearDecay(4.0, 0.0))()
    trainer(max_epochs=2, callbacks=[rec]).fit(model, loader())
    assert [m[f"{LOG_WEIGHT}_step"] for m in rec.metrics] == [4.0, 4.0, 2.0, 2.0]
