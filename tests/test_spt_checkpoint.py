"""Checkpoints: the callback's settings and schedule position ride in Lightning's checkpoint
(the callback's ``state_dict``, plain types) and come back with ``fit(ckpt_path=...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("stable_pretraining")

import lightning.pytorch as pl  # noqa: E402
from spt_fixture import (  # noqa: E402
    from_forward,
    loader,
    quiet_spt,  # noqa: F401  (autouse fixture)
    trainer,
)

from w2reg import LinearDecay  # noqa: E402
from w2reg.adapters.spt import W2Regularizer  # noqa: E402


class Weights(pl.Callback):
    """The weight the regularizer used in each training step."""

    def __init__(self) -> None:
        self.weights: list[float] = []

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        reg = next(c for c in trainer.callbacks if isinstance(c, W2Regularizer)).regularizer
        self.weights.append(reg.loss.last_weight)


def first_run(path: Path, epochs: int = 2) -> dict[str, Any]:
    cb = W2Regularizer(LinearDecay(4.0, 0.0, epochs=4), gather_distributed=False)
    rec = Weights()
    t = trainer(max_epochs=epochs, callbacks=[cb, rec])
    t.fit(from_forward("byol"), loader())  # one batch per epoch
    assert rec.weights == [4.0, 3.0]
    t.save_checkpoint(path)
    return cb.state_dict()


def test_resume_keeps_the_settings_and_the_schedule(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    saved = first_run(path)
    ckpt = torch.load(path, weights_only=True)  # plain types only
    assert ckpt["callbacks"]["W2Regularizer[term=w2]"] == saved
    assert saved["settings"]["head"] == "projector.student"
    assert saved["settings"]["gather_distributed"] is False
    assert saved["schedule"]["epoch"] == 1

    # resumed with another weight and gathering: the checkpoint's settings win
    cb = W2Regularizer(9.0, gather_distributed=True)
    rec = Weights()
    t = trainer(max_epochs=4, callbacks=[cb, rec])
    t.fit(from_forward("byol"), loader(), ckpt_path=path)
    assert rec.weights == [2.0, 1.0]  # epochs 2 and 3 of LinearDecay(4, 0) over 4 epochs
    reg = cb.regularizer
    assert reg.settings() == saved["settings"]
    assert isinstance(reg.loss.schedule, LinearDecay) and reg.loss.schedule.epochs == 4
    assert cb.state_dict()["schedule"]["epoch"] == 3


def test_resume_with_the_same_settings_loads_into_the_callbacks_regularizer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.ckpt"
    first_run(path)
    cb = W2Regularizer(LinearDecay(4.0, 0.0, epochs=4), gather_distributed=False)
    rec = Weights()
    trainer(max_epochs=3, callbacks=[cb, rec]).fit(from_forward("byol"), loader(), ckpt_path=path)
    assert rec.weights == [2.0]


def test_an_lu_callback_and_a_w2_callback_resume_separately(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    w2, lu = W2Regularizer(LinearDecay(2.0, 0.0, epochs=2)), W2Regularizer(0.3, term="lu")
    t = trainer(max_epochs=1, callbacks=[w2, lu])
    t.fit(from_forward("simclr"), loader())
    t.save_checkpoint(path)
    states = torch.load(path, weights_only=True)["callbacks"]
    assert states["W2Regularizer[term=w2]"]["settings"]["term"] == "w2"
    assert states["W2Regularizer[term=lu]"]["settings"]["term"] == "lu"
    w2b, lub = W2Regularizer(), W2Regularizer(1.0, term="lu")
    t = trainer(max_epochs=2, callbacks=[w2b, lub])
    t.fit(from_forward("simclr"), loader(), ckpt_path=path)
    assert w2b.regularizer.loss.last_weight == 1.0  # LinearDecay(2, 0) at epoch 1 of 2
    assert lub.regularizer.loss.last_weight == 0.3
