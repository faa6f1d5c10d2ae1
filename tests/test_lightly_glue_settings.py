"""Every regularizer setting survives pickling, ``load_from_checkpoint`` and resume (issue 20).

Held-out tests of the glue's one settings mechanism: weight or schedule, method, term,
normalize, gathering and head, each at a non-default value, for the eight ready models
(:mod:`w2reg.adapters.lightly_methods`) and for the factory form
(``W2X = w2_regularized(X, ...)``), whose class is rebuilt from its spec in a fresh process.
Real lightly models, a real Lightning ``Trainer`` on CPU, tiny backbones.

Against the 0.1 glue (354286e) the ready-model cases fail on reload (``w2_weight`` /
``w2_method`` were not saved: a Barlow Twins weight raised, ``"iterative"`` came back as
``"auto"``) and the fresh-process case fails on ``method``/``normalize`` of a new instance of
the rebuilt class.
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightly")

from glue_models import (  # noqa: E402
    SimCLR,
    batch_of,
    loader,
    ready_backbone,
    ready_kwargs,
    settings_of,
)
from quiet_trainer import lightning, trainer  # noqa: E402

from w2reg import LinearDecay  # noqa: E402
from w2reg.adapters import lightly as wl  # noqa: E402
from w2reg.adapters.lightly import CHECKPOINT_KEY, w2_regularized  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")

HERE = Path(__file__).resolve().parent

#: (method, non-default W2 arguments): every ready model with a weight other than its default
#: (Barlow Twins: another schedule type) and a method other than "auto"; then schedules where
#: the default is a constant, another term, a Barlow Twins decay with other parameters, and
#: the model's DDP switch.
CASES = [(m, {"w2_weight": 0.7, "w2_method": "iterative"}) for m in wl.W2_METHODS] + [
    ("byol", {"w2_weight": LinearDecay(2.0, 0.5, epochs=4), "w2_term": "lu"}),
    ("mocov2", {"w2_weight": LinearDecay(3.0, 1.0, epochs=4), "w2_method": "exact"}),
    ("barlow_twins", {"w2_weight": LinearDecay(5.0, 1.0, epochs=3), "w2_method": "eigh32"}),
    ("simsiam", {"w2_weight": 0.3, "gather_distributed": True}),
]
IDS = [f"{m}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for m, kw in CASES]


def ready(method: str, **kw):
    torch.manual_seed(0)
    return wl.W2_METHODS[method](**ready_kwargs(method, max_epochs=4, **kw))


def fixed_rows() -> torch.Tensor:
    return torch.randn(32, 8, generator=torch.Generator().manual_seed(1))


def term_of(model, z: torch.Tensor) -> float:
    return float(model.w2reg.loss(z))


def same_step(a, b) -> None:
    """``a`` and ``b`` compute the same training loss on one batch (on copies: a step moves
    momentum encoders and memory banks). lightly's memory banks are non-persistent buffers
    (not in a checkpoint): ``b``'s copy gets ``a``'s."""
    batch = batch_of()
    a, b = copy.deepcopy(a), copy.deepcopy(b)
    for model in (a, b):  # outside any Trainer (Lightning 1.9's copies keep a fitted one)
        model._trainer = None
    buffers = dict(a.named_buffers())
    with torch.no_grad():
        for name, buf in b.named_buffers():
            buf.copy_(buffers[name])
    la, lb = a.training_step(batch, 0), b.training_step(batch, 0)
    assert float(la.detach()) == pytest.approx(float(lb.detach()), rel=1e-6, abs=1e-7)


class Seen(lightning.Callback):
    """The settings and weight the model trains with, at every step."""

    def __init__(self) -> None:
        self.settings, self.weights, self.epochs = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.settings.append(settings_of(pl_module))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights.append(pl_module.w2reg.loss.last_weight)
        self.epochs.append(trainer.current_epoch)


# -- the ready models ------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "kw"), CASES, ids=IDS)
def test_ready_model_settings_survive_pickle_and_torch_save(method, kw):
    model = ready(method, **kw)
    want = settings_of(model)
    assert want != settings_of(ready(method)), "the case must differ from the defaults"
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    for loaded in (torch.load(buffer, weights_only=False), pickle.loads(pickle.dumps(model))):
        assert type(loaded) is type(model)
        assert settings_of(loaded) == want
        assert term_of(loaded, fixed_rows()) == term_of(model, fixed_rows())
        same_step(loaded, model)


@pytest.mark.parametrize(("method", "kw"), CASES, ids=IDS)
def test_ready_model_settings_survive_checkpoint_reload_and_resume(method, kw, tmp_path):
    model = ready(method, **kw)
    want = settings_of(model)
    fit = trainer(max_epochs=1)
    fit.fit(model, loader())
    path = tmp_path / "w2.ckpt"
    fit.save_checkpoint(path)
    assert CHECKPOINT_KEY in torch.load(path, weights_only=False)

    # load_from_checkpoint rebuilds with the class's defaults, then gives back the settings
    cls = wl.W2_METHODS[method]
    loaded = cls.load_from_checkpoint(path, backbone=ready_backbone())
    assert settings_of(loaded) == want
    assert loaded.w2reg.loss.schedule.epoch == model.w2reg.loss.schedule.epoch
    assert term_of(loaded, fixed_rows()) == pytest.approx(term_of(model, fixed_rows()), rel=1e-12)
    same_step(loaded, model)

    # resume into a model built with the defaults: it trains with the saved settings
    seen = Seen()
    trainer(max_epochs=2, callbacks=[seen]).fit(ready(method), loader(), ckpt_path=str(path))
    assert seen.settings and all(s == want for s in seen.settings)
    schedule = copy.deepcopy(model.w2reg.loss.schedule)
    for epoch, weight in zip(seen.epochs, seen.weights, strict=True):
        assert epoch == 1
        assert weight == pytest.approx(schedule.value_at(epoch, 2))

    # a W2 checkpoint still loads into the plain class, strictly
    plain = wl.METHODS[method].load_from_checkpoint(path, backbone=ready_backbone(), strict=True)
    assert not hasattr(plain, "w2reg")
    assert plain.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(plain.state_dict()[key], value)


@pytest.mark.parametrize(
    ("method", "weight"), [("barlow_twins", 0.7), ("byol", LinearDecay(2.0, 0.5, epochs=4))]
)
def test_a_first_release_checkpoint_gives_back_its_schedule(method, weight, tmp_path):
    """w2reg 0.1 saved ``{"head", "schedule"}`` (the schedule with its type and parameters, no
    other settings); a schedule of another type than the class default comes back too."""
    model = ready(method, w2_weight=weight)
    fit = trainer(max_epochs=1)
    fit.fit(model, loader())
    path = tmp_path / "v01.ckpt"
    fit.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    schedule = checkpoint[CHECKPOINT_KEY]["schedule"]
    checkpoint[CHECKPOINT_KEY] = {"head": "projection_head", "schedule": schedule}  # 0.1's
    torch.save(checkpoint, path)
    loaded = wl.W2_METHODS[method].load_from_checkpoint(path, backbone=ready_backbone())
    assert loaded.w2reg.loss.schedule.state_dict() == schedule
    assert settings_of(loaded) == settings_of(model)


def test_ready_model_with_a_callable_term_reloads_when_given_the_term(tmp_path):
    """A callable term is code, not saved: reloading names it, and rebuilding with it works.

    A callable term has no default weight, so the rebuild needs some ``w2_weight``; the saved
    one (0.4) is what the reloaded model uses."""
    from glue_models import spread

    model = ready("byol", w2_weight=0.4, w2_term=spread)
    fit = trainer(max_epochs=1)
    fit.fit(model, loader())
    path = tmp_path / "spread.ckpt"
    fit.save_checkpoint(path)
    with pytest.raises(ValueError, match="spread"):
        wl.W2_METHODS["byol"].load_from_checkpoint(path, backbone=ready_backbone())
    loaded = wl.W2_METHODS["byol"].load_from_checkpoint(
        path, backbone=ready_backbone(), w2_term=spread, w2_weight=1.0
    )
    assert loaded.w2reg.loss.weight == 0.4
    assert settings_of(loaded) == settings_of(model)
    assert term_of(loaded, fixed_rows()) == term_of(model, fixed_rows())


# -- the factory form ------------------------------------------------------------------------------
#: every setting at a non-default value; the class carries SimCLR's name and module, so pickle
#: cannot find it by name and rebuilds it from its spec
SimCLRSet = w2_regularized(
    SimCLR,
    head="projection_head.layers",
    weight=LinearDecay(2.0, 0.5, epochs=4),
    method="exact",
    normalize=False,
    gather_distributed=True,
)
FACTORY = {
    "head": "projection_head.layers",
    "method": "exact",
    "normalize": False,
    "term": "w2",
    "gather_distributed": True,
}

FRESH = r"""
import json, sys, torch
sys.path[:0] = [sys.argv[3]]
from glue_models import settings_of
model = torch.load(sys.argv[1], weights_only=False)
z = torch.load(sys.argv[2])
new = type(model)()
print(json.dumps({
    "class": type(model).__name__,
    "base": type(model).__mro__[1].__name__,
    "loaded": settings_of(model),
    "new": settings_of(new),
    "epoch": model.w2reg.loss.schedule.epoch,
    "value": float(model.w2reg.loss(z)),
    "new_value": float(new.w2reg.loss(z)),
}))
"""


def factory_state(model) -> dict:
    got = settings_of(model)
    schedule = got.pop("schedule")
    assert schedule["type"] == "LinearDecay"
    assert (schedule["start"], schedule["end"], schedule["epochs"]) == (2.0, 0.5, 4)
    return got


def test_factory_form_settings_survive_torch_save_into_a_fresh_process(tmp_path):
    model = SimCLRSet()
    assert factory_state(model) == FACTORY
    model.w2reg.loss.set_epoch(2)
    z = fixed_rows()
    torch.save(model, tmp_path / "model.pt")
    torch.save(z, tmp_path / "z.pt")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    args = [str(p) for p in (tmp_path / "model.pt", tmp_path / "z.pt", HERE)]
    out = subprocess.run(
        [sys.executable, "-c", FRESH, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert (got["class"], got["base"]) == ("SimCLR", "SimCLR")
    for key in ("loaded", "new"):  # the unpickled model, and a new one of the rebuilt class
        schedule = got[key].pop("schedule")
        assert (schedule["type"], schedule["start"], schedule["end"], schedule["epochs"]) == (
            "LinearDecay",
            2.0,
            0.5,
            4,
        ), key
        assert got[key] == FACTORY, key
    assert got["epoch"] == 2
    assert got["value"] == pytest.approx(term_of(model, z), rel=1e-12)
    model.w2reg.loss.set_epoch(0)
    assert got["new_value"] == pytest.approx(term_of(model, z), rel=1e-12)


def test_factory_form_settings_survive_checkpoint_reload_and_resume(tmp_path):
    model = SimCLRSet()
    fit = trainer(max_epochs=2)
    fit.fit(model, loader())
    path = tmp_path / "factory.ckpt"
    fit.save_checkpoint(path)
    loaded = SimCLRSet.load_from_checkpoint(path)
    assert factory_state(loaded) == FACTORY
    assert loaded.w2reg.loss.schedule.epoch == 1
    assert loaded.w2reg.head is loaded.projection_head.layers
    same_step(loaded, model)

    seen = Seen()
    trainer(max_epochs=3, callbacks=[seen]).fit(SimCLRSet(), loader(), ckpt_path=str(path))
    assert seen.settings and all(s == settings_of(model) for s in seen.settings)
    assert seen.epochs == [2, 2] and seen.weights == [pytest.approx(1.25)] * 2  # 2 - 2 * 1.5 / 4

    plain = SimCLR.load_from_checkpoint(path, strict=True)
    assert type(plain) is SimCLR and not hasattr(plain, "w2reg")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(plain.state_dict()[key], value)
