"""The eight ready lightly models: W2 wiring, banks, schedules, checkpoints (real lightly).

Tiny backbones on random 32x32 images through a real ``lightning.Trainer`` on CPU; one test
checks the real ResNet-18 recipe (the full training step of all eight ResNet-18 models runs
only with ``W2REG_SLOW_TESTS=1``: a few minutes on two CPU cores).
"""

from __future__ import annotations

import math
import os
import warnings

import pytest
import torch
from quiet_trainer import trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

pytest.importorskip("lightly")
try:  # the package the adapter's models subclass: lightning.pytorch, else pytorch_lightning
    import lightning.pytorch as lightning
except ImportError:  # pragma: no cover
    lightning = pytest.importorskip("pytorch_lightning")

from w2reg import LinearDecay, w2_uniformity  # noqa: E402
from w2reg.adapters import lightly as wl  # noqa: E402
from w2reg.adapters import lightly_recipe as lr  # noqa: E402

ALL = list(wl.METHODS)

warnings.filterwarnings("ignore", message=".*self.log.*")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*LightningModule.train_dataloader.*")
warnings.filterwarnings("ignore", category=UserWarning, module="lightning")

B = 8  # batch
DIM = 8  # projection width of the tiny models


def tiny_backbone() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=4, padding=1, bias=False),  # no bias before BN
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def tiny_kwargs(method: str, **extra) -> dict:
    kw = dict(backbone=tiny_backbone(), feature_dim=8, proj_hidden_dim=16, proj_output_dim=DIM)
    if method in ("mocov2", "nnclr"):
        kw["memory_bank_size"] = 64
    if method in ("nnclr", "byol", "simsiam"):
        kw["pred_hidden_dim"] = 16
    kw.update(extra)
    return kw


def make(method: str, *, w2: bool = True, seed: int = 0, **extra):
    torch.manual_seed(seed)
    return wl.create_model(method, w2=w2, **tiny_kwargs(method, **extra))


class RandomViews(Dataset):
    """``([view_1, ..., view_k], target)`` of random 32x32 images, like lightly + CIFAR."""

    def __init__(self, n: int = 2 * B, n_views: int = 2, seed: int = 0, size: int = 32) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, n_views, 3, size, size, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return [v for v in self.x[i]], 0


def loader(n_views: int = 2, n: int = 2 * B) -> DataLoader:
    return DataLoader(RandomViews(n, n_views), batch_size=B, shuffle=False, drop_last=True)


class Recorder(lightning.Callback):
    """Per step: the loss handed to backward, W2 recomputed from the online branch, metrics."""

    def __init__(self) -> None:
        self.losses, self.expected_w2, self.metrics, self.schedule_epoch_at_start = [], [], [], []

    def on_train_start(self, trainer, pl_module) -> None:
        reg = getattr(pl_module, "w2reg", None)
        if reg is not None:
            self.schedule_epoch_at_start.append(reg.loss.schedule.epoch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._views = batch[0]

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.losses.append(float(loss.detach()))
        with torch.no_grad():  # train-mode BN: the same projections the step used
            z = torch.cat([pl_module.project(v) for v in self._views])
        self.expected_w2.append(float(w2_uniformity(z)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})


# -- API -----------------------------------------------------------------------------------------
def test_methods_registry_and_classes():
    assert list(wl.METHODS) == [
        "simclr",
        "mocov2",
        "nnclr",
        "byol",
        "simsiam",
        "align_uniform",
        "barlow_twins",
        "zero_cl",
    ]
    assert set(wl.W2_METHODS) == set(wl.METHODS)
    for key, cls in wl.METHODS.items():
        assert issubclass(wl.W2_METHODS[key], cls)
        assert isinstance(cls, type) and issubclass(cls, lightning.LightningModule)
    with pytest.raises(ValueError, match="method must be one of"):
        wl.create_model("swav")
    with pytest.raises(ValueError, match="w2_weight"):
        wl.create_model("simclr", w2=False, w2_weight=1.0)


@pytest.mark.parametrize(
    "method, expected",
    [
        ("simclr", 0.5),
        ("mocov2", 1.0),
        ("nnclr", 0.5),
        ("byol", 0.2),
        ("simsiam", 0.2),
        ("align_uniform", 0.2),
        ("zero_cl", 30.0),
    ],
)
def test_default_weights(method, expected):
    model = make(method)
    assert model.w2reg.loss.schedule.value == expected
    assert make(method, w2_weight=3.0).w2reg.loss.schedule.value == 3.0


def test_barlow_twins_default_decays_over_max_epochs():
    model = make("barlow_twins", max_epochs=10)
    schedule = model.w2reg.loss.schedule
    assert isinstance(schedule, LinearDecay)
    assert (schedule(0), schedule(5), schedule(10)) == (30.0, 15.0, 0.0)


def test_plain_model_has_no_regularizer_and_same_state_dict_keys():
    for method in ALL:
        plain, reg = make(method, w2=False), make(method)
        assert not hasattr(plain, "w2reg")
        assert list(plain.state_dict()) == list(reg.state_dict())
        assert sum(p.numel() for p in plain.parameters()) == sum(
            p.numel() for p in reg.parameters()
        )


def test_gather_distributed_switches_criterion_and_w2_term():
    model = make("simclr", gather_distributed=True)
    assert model.criterion.gather_distributed and model.w2reg.loss.gather_distributed
    assert not make("simclr").w2reg.loss.gather_distributed


def test_w2_models_pickle_and_deepcopy_with_their_regularizer():
    import copy
    import pickle

    views = [torch.randn(B, 3, 32, 32), torch.randn(B, 3, 32, 32)]
    for model in (make("byol"), copy.deepcopy(make("byol"))):
        clone = pickle.loads(pickle.dumps(model))
        assert type(clone) is wl.W2_METHODS["byol"]
        assert clone.w2reg.head is clone.projection_head
        assert torch.isfinite(clone.training_step((views, None), 0))


def test_bad_batch_and_arguments():
    model = make("simclr")
    with pytest.raises(ValueError, match="at least two"):
        model.training_step(([torch.randn(B, 3, 32, 32)], None), 0)
    with pytest.raises(ValueError, match="proj_output_dim"):
        wl.create_model("simclr", **tiny_kwargs("simclr", proj_output_dim=0))


# -- the W2 term in the loss ------------------------------------------------------------------
@pytest.mark.parametrize("method", ALL)
def test_trainer_loss_is_criterion_plus_weighted_w2(method):
    """Through a real Trainer: loss = criterion + a_t * W2(online projections of all views)."""
    rec_w2 = Recorder()
    model = make(method, w2_weight=LinearDecay(3.0, 1.0, epochs=2))
    trainer(max_epochs=2, callbacks=[rec_w2]).fit(model, loader(n=B))
    # the plain model, same init, on the same first batch (step 0: momentum copies equal
    # the online networks, so the momentum value does not matter yet)
    plain = make(method, w2=False)
    plain_loss = float(plain.training_step((list(RandomViews(B).x.unbind(1)), None), 0))

    assert len(rec_w2.losses) == 2
    for step, (loss, w2_expected, metrics) in enumerate(
        zip(rec_w2.losses, rec_w2.expected_w2, rec_w2.metrics, strict=True)
    ):
        weight = 3.0 if step == 0 else 2.0  # epochs 0 and 1 of LinearDecay(3, 1, 2)
        for key in ("train_w2_uniformity_step", "train_w2_weight_step", "train_w2_loss_step"):
            assert key in metrics, sorted(metrics)
        assert metrics["train_w2_weight_step"] == pytest.approx(weight)
        # W2 is that of the online projections only (no momentum branch, no no-grad pass)
        assert metrics["train_w2_uniformity_step"] == pytest.approx(w2_expected, rel=1e-4)
        assert metrics["train_w2_loss_step"] == pytest.approx(weight * w2_expected, rel=1e-4)
        assert loss == pytest.approx(
            metrics["train_loss_step"] + weight * w2_expected, rel=1e-4, abs=1e-5
        )
    # same init, same first batch: the plain model's loss is the W2 model's criterion value
    assert plain_loss == pytest.approx(rec_w2.metrics[0]["train_loss_step"], rel=1e-5)


@pytest.mark.parametrize("method", ALL)
def test_w2_gradient_reaches_backbone(method):
    """grad(W2 model) - grad(plain model) == grad(a * W2(online projections)) in the backbone."""
    views = [torch.randn(B, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
    batch = (views, torch.zeros(B))
    grads = []
    for w2 in (True, False):
        model = make(method, w2=w2, w2_weight=0.7 if w2 else None)
        model.training_step(batch, 0).backward()
        grads.append([p.grad.clone() for p in model.backbone.parameters()])
    reference = make(method, w2=False)
    z = torch.cat([reference.project(v) for v in views])
    (0.7 * w2_uniformity(z)).backward()
    expected = [p.grad for p in reference.backbone.parameters()]
    diff = [g_w2 - g_plain for g_w2, g_plain in zip(*grads, strict=True)]
    assert any(float(d.abs().max()) > 1e-6 for d in diff)
    for d, e, g in zip(diff, expected, grads[1], strict=True):
        # float32 rounding of both gradients (and of the float32 whitening of Zero-CL)
        tol = 1e-5 + 1e-3 * float(e.abs().max()) + 1e-3 * float(g.abs().max())
        torch.testing.assert_close(d, e, rtol=1e-3, atol=tol)


# -- memory banks and momentum ------------------------------------------------------------------
def _banks(model):
    from lightly.models.modules.memory_bank import MemoryBankModule

    return [m for m in model.modules() if isinstance(m, MemoryBankModule) and len(m.size) == 2]


@pytest.mark.parametrize("method, rows_per_step", [("mocov2", 2 * B), ("nnclr", B)])
def test_memory_bank_advances_once_per_step(method, rows_per_step):
    for w2 in (True, False):
        model = make(method, w2=w2)
        (bank,) = _banks(model)
        calls = []
        original = bank._dequeue_and_enqueue

        def counting(batch, _original=original, _calls=calls):
            _calls.append(batch.shape[0])
            return _original(batch)

        bank._dequeue_and_enqueue = counting
        trainer(max_steps=2).fit(model, loader())
        assert calls == [rows_per_step] * 2
        assert int(bank.bank_ptr) == (2 * rows_per_step) % bank.size[0]


@pytest.mark.parametrize("method", ["mocov2", "byol"])
def test_momentum_branch_moves_and_is_not_trained(method):
    model = make(method)
    before = [p.clone() for p in model.projection_head_momentum.parameters()]
    assert not any(p.requires_grad for p in model.projection_head_momentum.parameters())
    trainer(max_steps=2).fit(model, loader())
    after = list(model.projection_head_momentum.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert all(p.grad is None for p in model.backbone_momentum.parameters())


def test_multi_crop_regularizes_all_views():
    rec = Recorder()
    model = make("byol", w2_weight=1.0)
    trainer(max_steps=1, callbacks=[rec]).fit(model, loader(n_views=4))
    z_rows = 4 * B
    assert rec.metrics[0]["train_w2_uniformity_step"] == pytest.approx(rec.expected_w2[0], rel=1e-4)
    assert z_rows == 32  # the expected value above is W2 over all four views' projections


def test_bf16_mixed_precision_runs_every_method():
    # Lightning 1.9 spells bf16 autocast "bf16"; 2.x calls it "bf16-mixed"
    major = int(lightning.__version__.split(".")[0])
    precision = "bf16-mixed" if major >= 2 else "bf16"
    for method in ALL:
        rec = Recorder()
        trainer(max_steps=1, precision=precision, callbacks=[rec]).fit(make(method), loader())
        assert math.isfinite(rec.losses[0]), method
        assert math.isfinite(rec.metrics[0]["train_w2_uniformity_step"]), method


# -- optimizer and schedules --------------------------------------------------------------------
def test_optimizer_is_lars_with_recipe_groups():
    from lightly.utils.lars import LARS

    model = make("byol", batch_size=512)
    trainer(max_steps=1).fit(model, loader())
    (opt,) = model.trainer.optimizers
    assert isinstance(opt, LARS)
    weights, biases = opt.param_groups
    assert weights["weight_decay"] == 1e-4 and biases["weight_decay"] == 0.0
    assert model.lr == pytest.approx(0.4)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    grouped = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(trainable)  # momentum copies are not optimized


def test_warmup_cosine_factor():
    f = [lr._warmup_cosine(s, 100, 10) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[100] == pytest.approx(0.001)
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False))


def test_resume_restores_schedule(tmp_path):
    """LinearDecay after resuming from a checkpoint equals the uninterrupted run."""
    full = Recorder()
    data = loader(n=B)  # one step per epoch
    trainer(max_epochs=4, callbacks=[full]).fit(make("barlow_twins", max_epochs=4), data)
    weights_full = [m["train_w2_weight_step"] for m in full.metrics]
    assert weights_full == [30.0, 22.5, 15.0, 7.5]

    first = trainer(max_epochs=2, enable_checkpointing=True, default_root_dir=tmp_path)
    first.fit(make("barlow_twins", max_epochs=4), data)
    ckpt = tmp_path / "half.ckpt"
    first.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=False)
    assert state["w2reg"]["schedule"]["epoch"] == 1

    resumed = Recorder()
    trainer(max_epochs=4, callbacks=[resumed]).fit(
        make("barlow_twins", max_epochs=4, seed=1), data, ckpt_path=ckpt
    )
    assert resumed.schedule_epoch_at_start == [1]  # restored before the first resumed step
    assert [m["train_w2_weight_step"] for m in resumed.metrics] == weights_full[2:]


@pytest.mark.parametrize("method", ["mocov2", "byol", "barlow_twins"])
def test_w2_checkpoint_loads_into_plain_model_strictly(method, tmp_path):
    model = make(method)
    t = trainer(max_steps=1, enable_checkpointing=True, default_root_dir=tmp_path)
    t.fit(model, loader())
    t.save_checkpoint(tmp_path / "w2.ckpt")
    plain_cls = wl.METHODS[method]
    extra = {k: v for k, v in tiny_kwargs(method).items() if k == "backbone"}
    plain = plain_cls.load_from_checkpoint(tmp_path / "w2.ckpt", strict=True, **extra)
    for (k, a), (k2, b) in zip(plain.state_dict().items(), model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)


# -- the real recipe ---------------------------------------------------------------------------
def test_resnet18_recipe_shapes():
    model = wl.create_model("byol", w2=False)
    conv1 = model.backbone.conv1
    assert (conv1.kernel_size, conv1.stride, conv1.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(model.backbone.maxpool, nn.Identity)
    assert isinstance(model.backbone.fc, nn.Identity)
    linears = [m for m in model.projection_head.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (512, 2048),
        (2048, 2048),
        (2048, 256),
    ]
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    assert model.lr == pytest.approx(0.2)


SLOW = os.environ.get("W2REG_SLOW_TESTS") == "1"


slow = pytest.mark.skipif(not SLOW, reason="set W2REG_SLOW_TESTS=1 (about 2 min on 2 CPU cores)")


@pytest.mark.parametrize(
    "method", [m if m == "barlow_twins" else pytest.param(m, marks=slow) for m in ALL]
)
def test_resnet18_one_step(method):
    """The real recipe, one step at batch 4 (Barlow Twins always; the rest when SLOW)."""
    rec = Recorder()
    model = wl.create_model(method, batch_size=4, max_epochs=1)
    # 16x16 crops: the same network (the CIFAR ResNet-18 takes any size >= 8) at 1/4 the cost
    data = DataLoader(RandomViews(4, 2, size=16), batch_size=4)
    trainer(max_steps=1, callbacks=[rec]).fit(model, data)
    assert math.isfinite(rec.losses[0])
    linears = [m for m in model.projection_head.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [2048, 2048, 256]
    assert rec.metrics[0]["train_w2_uniformity_step"] == pytest.approx(rec.expected_w2[0], rel=1e-3)
