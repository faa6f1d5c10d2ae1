"""Held-out defects of the core (issue 20) that need no framework: epochs that are not
integers, flags that are not booleans, weights that are not numbers.

On 354286e ``LinearDecay.value_at(2.5)`` truncated to epoch 2 and ``normalize="no"`` counted
as true; each case below failed there (the report says how it was shown).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import w2reg
from w2reg import Constant, LinearDecay, W2Uniformity


@pytest.mark.parametrize("epoch", [2.5, 2.0, "2", True, None, -1], ids=repr)
@pytest.mark.parametrize("schedule", [LinearDecay(3.0, 1.0, epochs=4), Constant(0.5)], ids=repr)
def test_value_at_refuses_what_calling_refuses(schedule, epoch):
    with pytest.raises(ValueError, match="epoch"):
        schedule.value_at(epoch)
    with pytest.raises(ValueError, match="epoch"):
        schedule(epoch) if epoch is not None else schedule.set_epoch(epoch)


def test_value_at_takes_integers_numpy_too():
    s = LinearDecay(3.0, 1.0, epochs=4)
    assert s.value_at(2) == s(2) == s.value_at(np.int64(2)) == 2.0
    with pytest.raises(ValueError, match="total_epochs"):
        LinearDecay(3.0, 1.0).value_at(1, 4.0)


FLAG_VALUES = ["no", "False", "", 0, 1, None, 1.0]


@pytest.mark.parametrize("value", FLAG_VALUES, ids=repr)
def test_flags_must_be_booleans(value):
    with pytest.raises(ValueError, match="normalize must be True or False"):
        W2Uniformity(normalize=value)
    with pytest.raises(ValueError, match="gather_distributed must be True or False"):
        W2Uniformity(gather_distributed=value)
    from w2reg import Regularizer  # new in the second draft

    with pytest.raises(ValueError, match="normalize must be True or False"):
        Regularizer("lu", 1.0, normalize=value)
    reg = W2Uniformity()
    with pytest.raises(ValueError, match="normalize must be True or False"):
        reg.normalize = value
    assert reg.normalize is True


def test_flags_take_numpy_booleans():
    reg = W2Uniformity(normalize=np.bool_(False), gather_distributed=np.bool_(False))
    assert reg.normalize is False and reg.gather_distributed is False


def test_head_regularizer_flags_must_be_booleans():
    from w2reg.adapters.head import HeadRegularizer  # new in the second draft

    model = torch.nn.Sequential(torch.nn.Linear(3, 3))
    for flag in ("normalize", "gather_distributed"):
        with pytest.raises(ValueError, match=f"{flag} must be True or False"):
            HeadRegularizer(model, "0", 1.0, **{flag: "no"})


@pytest.mark.parametrize("weight", ["0.2", None, torch.tensor(0.2), -0.1, float("inf"), True])
def test_core_weights_must_be_numbers_or_schedules(weight):
    with pytest.raises(ValueError, match="weight"):
        W2Uniformity(weight)


@pytest.mark.parametrize("weight", [np.float32(0.25), np.float64(0.25), np.int32(2)], ids=repr)
def test_core_takes_numpy_numbers_as_plain_floats(weight):
    reg = W2Uniformity(weight)
    assert reg.weight == float(weight) and type(reg.schedule.state_dict()["start"]) is float


@pytest.mark.parametrize("flag", ["no", 1, None])
def test_functional_flags_refuse_non_booleans(flag):
    z = torch.randn(16, 4)
    for call, name in (
        (lambda: w2reg.w2_uniformity(z, normalize=flag), "normalize"),
        (lambda: w2reg.w2_uniformity(z, squared=flag), "squared"),
        (lambda: w2reg.wang_isola_uniformity(z, normalize=flag), "normalize"),
        (lambda: w2reg.alignment(z, z, normalize=flag), "normalize"),
        (lambda: w2reg.singular_values(z, center=flag), "center"),
    ):
        with pytest.raises(ValueError, match=f"{name} must be True or False"):
            call()
