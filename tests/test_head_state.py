"""``HeadRegularizer``'s state: ``state_dict`` / ``load_state_dict`` / ``restored`` round trips.

Framework-free (``w2reg.adapters.head`` imports no framework): plain ``nn.Module`` models, real
``torch.save`` / ``torch.load(weights_only=True)`` and ``copy.deepcopy`` / ``pickle``.
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

from w2reg import Constant, LinearDecay, Schedule
from w2reg.adapters.head import HeadRegularizer


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(8, 16)
        self.projection_head = nn.Sequential(nn.ReLU(), nn.Linear(16, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x))


def _term(reg: HeadRegularizer, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    reg.begin()
    model(x[:16])
    model(x[16:])
    return reg.end()


def _variance(z: torch.Tensor) -> torch.Tensor:
    return z.var(dim=0).mean()


def _roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # plain types only


def test_state_dict_is_plain_and_names_every_setting() -> None:
    reg = HeadRegularizer(
        Net(), "projection_head", LinearDecay(3.0, 0.5, epochs=10), method="iterative"
    )
    reg.set_epoch(4)
    state = _roundtrip(reg.state_dict())
    assert state == {
        "settings": {
            "head": "projection_head",
            "term": "w2",
            "term_name": "w2",
            "normalize": True,
            "method": "iterative",
            "gather_distributed": False,
        },
        "schedule": {
            "type": "LinearDecay",
            "epoch": 4,
            "total_epochs": None,
            "start": 3.0,
            "end": 0.5,
            "epochs": 10,
        },
    }


def test_load_state_dict_resumes_the_schedule_position() -> None:
    saved = HeadRegularizer(Net(), "projection_head", LinearDecay(3.0, 0.0))
    saved.set_epoch(6, 20)
    fresh = HeadRegularizer(Net(), "projection_head", LinearDecay(3.0, 0.0))
    fresh.load_state_dict(_roundtrip(saved.state_dict()))
    assert fresh.loss.weight == pytest.approx(3.0 - 6 * 3.0 / 20)
    with pytest.raises(ValueError, match="mapping with 'schedule'"):
        fresh.load_state_dict({"settings": {}})
    with pytest.raises(ValueError, match="another schedule"):
        HeadRegularizer(Net(), "projection_head", Constant(1.0)).load_state_dict(saved.state_dict())


def test_restored_with_the_same_settings_is_the_same_regularizer() -> None:
    model = Net()
    reg = HeadRegularizer(model, "projection_head", Constant(0.7))
    state = reg.state_dict()
    state["schedule"]["epoch"] = 3
    assert reg.restored(state) is reg
    assert reg.loss.schedule.epoch == 3


@pytest.mark.parametrize(
    "settings",
    [
        {"weight": 0.7},  # another constant
        {"weight": LinearDecay(30.0, 0.0, epochs=8)},  # another schedule type
        {"weight": 0.2, "method": "exact"},
        {"weight": 0.2, "normalize": False},
        {"weight": 0.5, "term": "lu"},
    ],
)
def test_restored_takes_the_saved_settings_and_computes_the_same_term(settings: dict) -> None:
    """A model rebuilt with the defaults (weight 1, W2, "auto", normalised) gets the saved
    settings back: the term of the same step is the same number."""
    model = Net()
    kwargs = dict(settings)
    weight = kwargs.pop("weight")
    saved = HeadRegularizer(model, "projection_head", weight, **kwargs)
    saved.set_epoch(2, 8)
    state = _roundtrip(saved.state_dict())
    x = torch.randn(32, 8)
    want = _term(saved, model, x)

    rebuilt = HeadRegularizer(model, "projection_head")
    new = rebuilt.restored(state)
    assert new.state_dict() == state
    if new is not rebuilt:  # other settings: a new regularizer replaces the old one
        with pytest.raises(RuntimeError, match="removed"):
            rebuilt.begin()  # which captures nothing any more
    got = _term(new, model, x)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    assert new.loss.last_weight == saved.loss.last_weight


def test_restored_keeps_a_callable_term_of_the_same_name_only() -> None:
    model = Net()
    saved = HeadRegularizer(model, "projection_head", 2.0, term=_variance)
    state = _roundtrip(saved.state_dict())
    assert state["settings"]["term"] == "callable" and state["settings"]["term_name"] == "variance"
    same = HeadRegularizer(model, "projection_head", term=_variance)
    new = same.restored(state)
    assert new.loss.term.fn is _variance and new.loss.weight == 2.0
    other = HeadRegularizer(model, "projection_head", term=lambda z: z.mean(), name="mean")
    with pytest.raises(ValueError, match="callable named 'variance'"):
        other.restored(state)


class Halving(Schedule):
    """A user's own schedule: w2reg cannot rebuild it from a state, only load into it."""

    def value_at(self, epoch: int, total_epochs: int | None = None) -> float:
        return 4.0 * 0.5**epoch


def test_restored_keeps_a_schedule_of_the_users_own_at_the_saved_position() -> None:
    model = Net()
    saved = HeadRegularizer(model, "projection_head", Halving(), method="exact")
    saved.set_epoch(3)
    new = HeadRegularizer(model, "projection_head", Halving()).restored(saved.state_dict())
    assert isinstance(new.loss.schedule, Halving) and new.loss.weight == 0.5
    assert new.loss.method == "exact"


def test_a_state_without_settings_loads_as_it_is() -> None:
    """w2reg 0.1 saved the schedule only."""
    reg = HeadRegularizer(Net(), "projection_head", LinearDecay(1.0, 0.0, epochs=4))
    assert reg.restored({"schedule": {"epoch": 2}}) is reg
    assert reg.loss.weight == 0.5


def test_a_copy_is_never_mid_step_and_keeps_the_settings() -> None:
    model = Net()
    reg = HeadRegularizer(model, "projection_head", 0.3, method="iterative")
    reg.begin()
    model(torch.randn(4, 8))
    assert reg.active and reg.pending
    for copied in (copy.deepcopy(reg), pickle.loads(pickle.dumps(reg))):
        assert not copied.active and not copied.pending
        assert copied.state_dict() == reg.state_dict()
    reg.abort()
