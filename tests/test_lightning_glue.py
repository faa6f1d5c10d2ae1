"""The shared glue on a library-free LightningModule: capture rules and errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

L = pytest.importorskip("lightning")

from w2reg import w2_uniformity  # noqa: E402
from w2reg.adapters._lightning import regularize_class  # noqa: E402


class Toy(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(8, 16)
        self.projection_head = nn.Linear(16, 4)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        x = batch
        z0 = self.projection_head(self.backbone(x))
        z1 = self.projection_head(self.backbone(x + 1))
        with torch.no_grad():
            self.projection_head(self.backbone(x * 3))  # e.g. a kNN pass: not captured
        self.projection_head_momentum(self.backbone(x))  # momentum copy: not captured
        self.seen = [z0, z1]
        return (z0 - z1).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_term_uses_online_outputs_only() -> None:
    model = regularize_class(Toy, head="projection_head", weight=0.5)()
    x = torch.randn(16, 8)
    loss = model.training_step(x, 0)
    plain = (model.seen[0] - model.seen[1]).pow(2).mean()
    want = plain + 0.5 * w2_uniformity(torch.cat(model.seen))
    assert torch.allclose(loss, want)
    assert type(model).__name__ == "ToyW2"
    assert set(model.state_dict()) == set(Toy().state_dict())


def test_missing_head_is_named() -> None:
    with pytest.raises(ValueError, match=r"head='projector'.*Toy.*projection_head"):
        regularize_class(Toy, head="projector")()


def test_head_without_grad_output_raises() -> None:
    class NoGrad(Toy):
        def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
            with torch.no_grad():
                self.projection_head(self.backbone(batch))
            return self.backbone(batch).sum()

    model = regularize_class(NoGrad, head="projection_head")()
    with pytest.raises(RuntimeError, match="'projection_head' of NoGradW2 produced no output"):
        model.training_step(torch.randn(4, 8), 0)
