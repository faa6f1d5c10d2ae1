"""The W2 settings of a solo-learn ``<method>_w2`` (current solo-learn, the cfg API; no mocks).

* any term (issue 16): ``method_kwargs.w2_term`` ``w2`` or ``lu``; the loss of a real solo
  method grows by exactly ``weight * term`` of its online projections (float64, to 1e-6), the
  term is logged under :func:`w2reg.adapters.solo.log_keys`, bad values name the key;
* settings that travel (issue 20): every non-default setting (term, weight, final weight,
  method) survives pickling, ``torch.save``, ``load_from_checkpoint`` with a default cfg, and a
  resumed ``trainer.fit(ckpt_path=...)``.

Tiny models as in test_solo_adapter.py (:mod:`solo_cfg`), on the CPU.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np
import pytest
import torch

try:
    import w2reg.adapters.solo as ws
except ImportError as err:  # not installed, not importable, or an unsupported version
    pytest.skip(str(err), allow_module_level=True)
if ws.SOLO_API != "cfg":
    pytest.skip("needs current solo-learn (Hydra/cfg API)", allow_module_level=True)

import oracle  # noqa: E402
import solo.methods.base as solo_base  # noqa: E402
import solo_cfg  # noqa: E402
from solo.methods import METHODS  # noqa: E402

from w2reg.adapters import defaults as paper_defaults  # noqa: E402

pl = solo_base.pl
TINY = "w2reg_tiny_settings"
BATCH = solo_cfg.BATCH


@pytest.fixture(scope="module", autouse=True)
def _solo_setup():
    with solo_cfg.backbone(TINY):
        ws.register()
        yield


def make(method: str, **kwargs: Any) -> Any:
    return METHODS[method](solo_cfg.make_cfg(method, backbone=TINY, **kwargs))


def make_batch(dtype: torch.dtype = torch.float32) -> list[Any]:
    g = torch.Generator().manual_seed(0)
    crops = [torch.randn(BATCH, 3, 16, 16, generator=g, dtype=dtype) for _ in range(2)]
    targets = torch.randint(0, solo_cfg.NUM_CLASSES, (BATCH,), generator=g)
    return [torch.arange(BATCH), crops, targets]


def loader() -> torch.utils.data.DataLoader:
    return solo_cfg.loader(2 * BATCH)


def trainer(**kwargs: Any) -> Any:
    return solo_cfg.trainer(pl, **kwargs)


# ------------------------------------------------------------------ any term


def _oracle(term: str, z: np.ndarray) -> float:
    return oracle.bures_w2(z) if term == "w2" else oracle.wang_isola(z)


@pytest.mark.parametrize("term", ["w2", "lu"])
@pytest.mark.parametrize("method", ["byol", "simclr"])
def test_loss_minus_plain_loss_is_weight_times_the_term(method, term):
    """float64 end to end, so the difference of two losses is exact to 1e-6."""
    model = make(method + "_w2", w2_term=term, w2_weight=0.3).double()
    plain = make(method).double()
    plain.load_state_dict(model.state_dict(), strict=True)
    seen: list[torch.Tensor] = []
    model.projector.register_forward_hook(lambda mod, inp, out: seen.append(out))
    batch = make_batch(torch.float64)
    torch.manual_seed(1)
    loss = model.training_step(batch, 0)
    torch.manual_seed(1)
    reference = plain.training_step(batch, 0)
    z = torch.cat(seen).detach()
    assert z.shape == (2 * BATCH, 8) and loss.dtype == torch.float64
    expected = 0.3 * _oracle(term, z.numpy())
    assert model.w2reg.loss.term.name == term and model.w2reg.loss.last_weight == 0.3
    assert abs(float((loss - reference).detach()) - expected) < 1e-6
    assert abs(float(model.w2reg.loss.last_value) - expected / 0.3) < 1e-6


def test_lu_default_weight_is_the_tables_times_solos_scale():
    for method in ("simsiam", "mocov2plus", "byol"):
        model = make(method + "_w2", w2_term="lu")
        start, end = paper_defaults.default_weights(method, "lu")
        factor = ws.SOLO_LOSS_SCALE[method]
        assert model.cfg.method_kwargs.w2_weight == pytest.approx(start * factor)
        assert model.cfg.method_kwargs.w2_final_weight == pytest.approx(end * factor)
        assert ws.default_weights(method, term="lu") == pytest.approx((start * factor,) * 2)


def test_lu_is_logged_under_its_keys():
    model = make("byol_w2", w2_term="lu")
    t = trainer(fast_dev_run=True)
    t.fit(model, loader())
    value, weight, term = ws.log_keys("lu")
    assert (value, weight, term) == ("train_lu", "train_lu_weight", "train_lu_loss")
    for key in (value, weight, term):
        assert f"{key}_step" in t.callback_metrics and f"{key}_epoch" in t.callback_metrics
    assert ws.LOG_W2 + "_step" not in t.callback_metrics
    lu_weight = ws.default_weights("byol", term="lu")[0]  # LU_RELATIVE_WEIGHT x W2's 0.2
    assert float(t.callback_metrics[f"{weight}_epoch"]) == pytest.approx(lu_weight)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"w2_term": "sigreg"}, r"method_kwargs.w2_term must be one of \['w2', 'lu'\]"),
        ({"w2_term": 2}, r"method_kwargs.w2_term must be one of"),
        ({"w2_term": "lu", "w2_method": "iterative"}, r"method_kwargs.w2_method='iterative'"),
        ({"w2_weight": True}, r"method_kwargs.w2_weight must be a finite, non-negative"),
        ({"w2_final_weight": -0.5}, r"method_kwargs.w2_final_weight must be a finite"),
    ],
)
def test_bad_settings_name_the_key(given, message):
    with pytest.raises(ValueError, match=message):
        make("byol_w2", **given)


# ------------------------------------------------------------------ settings that travel

#: Non-default values of every setting, and what the schedule then is over 3 epochs.
NON_DEFAULT = [
    ({"w2_weight": 0.7, "w2_final_weight": 0.1, "w2_method": "iterative"}, "w2", (0.7, 0.1)),
    ({"w2_term": "lu", "w2_weight": 0.3}, "lu", (0.3, 0.3)),
]


def _same_settings(model: Any, term: str, weights: tuple[float, float], method: str) -> None:
    loss = model.w2reg.loss
    assert loss.term.name == term
    assert getattr(loss.term, "method", "auto") == method
    assert (loss.schedule.value_at(0, 3), loss.schedule.value_at(3, 3)) == pytest.approx(weights)


class _WeightPerEpoch(pl.Callback):
    def __init__(self) -> None:
        self.weights: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights[trainer.current_epoch] = pl_module.w2reg.loss.last_weight


@pytest.mark.parametrize(("given", "term", "weights"), NON_DEFAULT)
def test_non_default_settings_survive_pickle_checkpoint_and_resume(given, term, weights, tmp_path):
    method = given.get("w2_method", "auto")
    model = make("byol_w2", max_epochs=3, **given)
    _same_settings(model, term, weights, method)

    # pickle (ddp_spawn, multiprocessing) and torch.save of the whole model
    _same_settings(pickle.loads(pickle.dumps(model)), term, weights, method)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    _same_settings(torch.load(buffer, weights_only=False), term, weights, method)

    # one epoch of a 3-epoch run, checkpointed
    t = trainer(max_epochs=1, limit_train_batches=1)
    t.fit(model, loader())
    path = tmp_path / "w2.ckpt"
    t.save_checkpoint(path)

    # load_from_checkpoint with the default cfg: the checkpoint's settings win
    default_cfg = solo_cfg.make_cfg("byol_w2", backbone=TINY, max_epochs=3)
    loaded = METHODS["byol_w2"].load_from_checkpoint(path, cfg=default_cfg)
    assert loaded.cfg.method_kwargs.w2_weight == pytest.approx(0.2)  # the cfg says default
    _same_settings(loaded, term, weights, method)
    torch.manual_seed(1)
    loaded.training_step(make_batch(), 0)
    assert loaded.w2reg.loss.last_weight == pytest.approx(weights[0])  # no trainer: epoch 0

    # resume a fresh default model from it: epochs 1 and 2 of the saved schedule
    fresh = make("byol_w2", max_epochs=3)
    record = _WeightPerEpoch()
    t = trainer(max_epochs=3, limit_train_batches=1, callbacks=[record])
    t.fit(fresh, loader(), ckpt_path=path)
    start, end = weights
    assert record.weights == pytest.approx(
        {1: start - (start - end) / 3, 2: start - 2 * (start - end) / 3}
    )
    _same_settings(fresh, term, weights, method)
