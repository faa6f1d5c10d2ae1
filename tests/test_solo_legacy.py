"""w2reg.adapters.solo with solo-learn 1.0.2, PyPI's only release (2021; no mocks).

1.0.2 pins torch 1.9 and pytorch-lightning 1.4; installed with ``--no-deps`` next to torch
2.x it imports with pytorch-lightning 1.9.5, lightning-bolts 0.7.0, timm and
``setuptools<81`` (docs/install.md, 'solo-learn'). What the adapter supports there, and what is
tested here: :func:`register` and :func:`w2_class` (W2 settings as constructor keywords) and
the training step. Skipped unless solo-learn 1.0.2 is the installed version.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

try:
    import w2reg.adapters.solo as ws
except ImportError as err:  # not installed, not importable, or an unsupported version
    pytest.skip(str(err), allow_module_level=True)
if ws.SOLO_API != "legacy":
    pytest.skip(
        f"solo-learn 1.0.2 is not installed (found {ws.SOLO_VERSION}, API {ws.SOLO_API!r}); "
        "test_solo_adapter.py covers current solo-learn",
        allow_module_level=True,
    )

import solo_cfg  # noqa: E402
from solo.methods import METHODS  # noqa: E402

import w2reg  # noqa: E402
from w2reg.adapters import defaults as paper_defaults  # noqa: E402

BATCH = 4
LEGACY_METHODS = ("simclr", "mocov2plus", "nnclr", "byol", "simsiam", "barlow_twins")
METHOD_KWARGS: dict[str, dict[str, Any]] = {
    "simclr": {"temperature": 0.2},
    "mocov2plus": {"temperature": 0.2, "queue_size": 8},
    "nnclr": {"temperature": 0.2, "pred_hidden_dim": 16, "queue_size": 8},
    "byol": {"pred_hidden_dim": 16},
    "simsiam": {"pred_hidden_dim": 16},
    "barlow_twins": {"lamb": 0.0051, "scale_loss": 0.1},
}
MOMENTUM = {"mocov2plus", "byol"}


class TinyEncoder(nn.Module):
    """Stands in for the ResNet-18 trunk: 512 features (the projectors' input) in a few ops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def make_kwargs(method: str, **extra: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "encoder": "resnet18",
        "num_classes": 3,
        "backbone_args": {"cifar": True, "zero_init_residual": True},
        "max_epochs": 3,
        "batch_size": BATCH,
        "optimizer": "sgd",
        "lars": False,
        "lr": 0.01,
        "weight_decay": 1e-5,
        "classifier_lr": 0.1,
        "exclude_bias_n_norm": False,
        "accumulate_grad_batches": 1,
        "extra_optimizer_args": {"momentum": 0.9},
        "scheduler": "none",
        "min_lr": 0.0,
        "warmup_start_lr": 0.0,
        "warmup_epochs": 0,
        "num_large_crops": 2,
        "num_small_crops": 0,
        "proj_hidden_dim": 16,
        "proj_output_dim": 8,
        **METHOD_KWARGS[method],
        **extra,
    }
    if method in MOMENTUM:
        kwargs.update(base_tau_momentum=0.99, final_tau_momentum=1.0, momentum_classifier=False)
    return kwargs


def build(name: str, **extra: Any) -> nn.Module:
    model = METHODS[name](**make_kwargs(ws.base_method_name(name), **extra))
    model.encoder = TinyEncoder()
    if hasattr(model, "momentum_encoder"):
        model.momentum_encoder = TinyEncoder()
    return model


@pytest.fixture(scope="module", autouse=True)
def _registered():
    ws.register()


def test_register_adds_the_w2_variants():
    added = ws.register()
    assert sorted(added) == sorted(m + "_w2" for m in LEGACY_METHODS)
    for name in LEGACY_METHODS:
        assert issubclass(METHODS[name + "_w2"], METHODS[name])


@pytest.mark.parametrize("method", LEGACY_METHODS)
def test_training_step_adds_weight_times_w2(method):
    model = build(method + "_w2")
    plain = build(method)
    plain.load_state_dict(model.state_dict(), strict=True)  # nothing added
    seen: list[torch.Tensor] = []
    model.projector.register_forward_hook(lambda mod, inp, out: seen.append(out))
    g = torch.Generator().manual_seed(0)
    crops = [torch.randn(BATCH, 3, 16, 16, generator=g) for _ in range(2)]
    batch = [torch.arange(BATCH), crops, torch.randint(0, 3, (BATCH,), generator=g)]

    torch.manual_seed(1)
    out = model.training_step(batch, 0)
    torch.manual_seed(1)
    ref = plain.training_step(batch, 0)
    loss = out["loss"] if isinstance(out, dict) else out
    ref = ref["loss"] if isinstance(ref, dict) else ref

    z = torch.cat([o for o in seen if o.requires_grad])
    assert z.shape[0] == 2 * BATCH
    weight = ws.default_weights(method, make_kwargs(method))[0]
    expected = w2reg.w2_uniformity(z.detach())
    assert model.w2reg.loss.last_weight == weight
    torch.testing.assert_close(loss - ref, weight * expected, rtol=1e-4, atol=1e-4)


def test_barlow_twins_default_follows_scale_loss():
    # solo-learn's Barlow Twins loss is scale_loss times the paper's: so is the default weight
    assert build("barlow_twins_w2").w2reg.loss.schedule.value_at(0, 3) == pytest.approx(3.0)
    model = build("barlow_twins_w2", scale_loss=1.0, w2_weight=10.0)
    assert model.w2reg.loss.schedule.value_at(3, 3) == 0.0  # a decaying default keeps its end


@pytest.mark.parametrize(
    ("method", "given", "expected"),
    [case for case in solo_cfg.RULE_CASES if case[0] in LEGACY_METHODS],
)
def test_keywords_override_the_defaults_by_the_one_rule(method, given, expected):
    # the same cases as test_solo_adapter.py's cfg keys: one rule for both APIs. Before the
    # rule had one home, BYOL's constant 0.2 given w2_weight=3.0 became LinearDecay(3.0, 0.2)
    # here (a decay to the default's end) while the cfg API kept 3.0 constant.
    model = build(method + "_w2", **given)
    schedule = model.w2reg.loss.schedule
    assert (schedule.value_at(0, 3), schedule.value_at(3, 3)) == pytest.approx(expected)
    assert model.w2reg.loss.term.name == given.get("w2_term", "w2")
    assert not {"w2_weight", "w2_final_weight", "w2_term"} & set(model.extra_args)


def test_lu_default_is_the_tables_lu_weight_times_solos_scale():
    model = build("simsiam_w2", w2_term="lu")
    expected = paper_defaults.default_weights("simsiam", "lu")[0] * ws.SOLO_LOSS_SCALE["simsiam"]
    assert model.w2reg.loss.schedule.value_at(0, 3) == pytest.approx(expected)
    with pytest.raises(ValueError, match="w2_term must be one of"):
        build("byol_w2", w2_term="sigreg")


def test_non_default_settings_survive_pickling():
    import pickle

    model = build("byol_w2", w2_weight=0.7, w2_final_weight=0.1, w2_method="iterative")
    copy = pickle.loads(pickle.dumps(model))
    assert type(copy) is type(model) and copy.w2reg.settings() == model.w2reg.settings()
    assert copy.w2reg.loss.method == "iterative"
    schedule = copy.w2reg.loss.schedule
    assert (schedule.value_at(0, 3), schedule.value_at(3, 3)) == pytest.approx((0.7, 0.1))


def test_w2_settings_are_constructor_keywords():
    model = build("barlow_twins_w2", w2_weight=3.0, w2_final_weight=1.0)
    assert model.w2reg.loss.schedule.value_at(0, 3) == 3.0
    assert model.w2reg.loss.schedule.value_at(3, 3) == 1.0
    assert "w2_weight" not in model.extra_args
    with pytest.raises(ValueError, match="w2_weight"):
        build("simclr_w2", w2_weight=-1.0)


def test_fit_logs_and_follows_epochs():
    import pytorch_lightning as pl

    weights: dict[int, float] = {}

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args: Any) -> None:
            weights[trainer.current_epoch] = pl_module.w2reg.loss.last_weight

    model = build("barlow_twins_w2", scale_loss=1.0)  # the paper's loss scale: 30 -> 0
    trainer = solo_cfg.trainer(pl, max_epochs=3, limit_train_batches=1, callbacks=[Record()])
    trainer.fit(model, solo_cfg.loader(2 * BATCH))
    assert weights == pytest.approx({0: 30.0, 1: 20.0, 2: 10.0})
    for key in (ws.LOG_W2, ws.LOG_WEIGHT, ws.LOG_TERM):
        assert f"{key}_epoch" in trainer.callback_metrics
