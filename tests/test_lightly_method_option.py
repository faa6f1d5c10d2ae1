"""The ``method`` option reaches W2 through the lightly adapter and the monitor; bad values
are named.

lightly: ``w2_regularized(..., method=)``, ``create_model(..., w2_method=)`` and the ``...W2``
classes; the monitoring callback's ``w2_method``. (solo-learn's ``method_kwargs.w2_method``:
tests/test_solo_method_option.py.)
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

L = pytest.importorskip("lightning")
pytest.importorskip("lightly")

import w2reg  # noqa: E402
from w2reg import w2_uniformity  # noqa: E402


class Toy(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(8, 16)
        self.projection_head = nn.Linear(16, 4)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        z0 = self.projection_head(self.backbone(batch))
        z1 = self.projection_head(self.backbone(batch + 1))
        return (z0 - z1).pow(2).mean()


@pytest.mark.parametrize("method", w2reg.METHODS)
def test_lightly_decorator_passes_the_method(method: str) -> None:
    from w2reg.adapters.lightly import w2_regularized

    model = w2_regularized(Toy, weight=0.5, method=method)()
    assert model.w2reg.loss.method == method
    x = torch.randn(32, 8)
    loss = model.training_step(x, 0)
    z = torch.cat([model.projection_head(model.backbone(v)) for v in (x, x + 1)])
    assert float(model.w2reg.loss.last_value) == pytest.approx(
        float(w2_uniformity(z.detach().double())), rel=1e-6
    )
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match=r"method must be one of .*'svd'"):
        w2_regularized(Toy, method="svd")


def test_ready_lightly_models_take_w2_method() -> None:
    from w2reg.adapters.lightly_methods import BYOL, create_model

    tiny = dict(feature_dim=8, proj_hidden_dim=16, proj_output_dim=8, pred_hidden_dim=16)
    model = create_model("byol", w2_method="iterative", backbone=nn.Linear(12, 8), **tiny)
    assert model.w2reg.loss.method == "iterative"
    assert "w2_method" not in model.hparams  # a checkpoint still loads into the plain class
    BYOL(backbone=nn.Linear(12, 8), **tiny).load_state_dict(model.state_dict(), strict=True)
    assert create_model("byol", backbone=nn.Linear(12, 8), **tiny).w2reg.loss.method == "auto"
    with pytest.raises(ValueError, match=r"w2_method must be one of .*'fast'"):
        create_model("byol", w2_method="fast", backbone=nn.Linear(12, 8), **tiny)


def test_monitor_measures_with_the_given_method() -> None:
    from w2reg import w2_uniformity
    from w2reg.adapters.callbacks import UniformityMonitor, measure
    from w2reg.functional import normalize_rows

    z = torch.randn(300, 16)
    zn = normalize_rows(z.double())
    iterative = measure([z], w2_method="iterative")["w2"]
    # the method reaches w2_uniformity: its own value, bit for bit (its float32 steps differ
    # from the exact float64 value in the last digits, by how much depends on the CPU's BLAS)
    assert iterative == float(w2_uniformity(zn, method="iterative"))
    assert iterative != float(w2_uniformity(zn, method="exact"))
    # and within the documented accuracy of "iterative" (docs/core.md: W2 within 1e-4)
    assert iterative == pytest.approx(measure([z], w2_method="exact")["w2"], rel=1e-4)
    assert UniformityMonitor([z], w2_method="iterative").w2_method == "iterative"
    with pytest.raises(ValueError, match="w2_method must be one of"):
        UniformityMonitor([z], w2_method="svd")
