from __future__ import annotations

import pytest

from w2reg import Constant, LinearDecay, as_schedule


def test_linear_decay_follows_paper_formula() -> None:
    s = LinearDecay(30.0, 0.0, epochs=500)
    got = [s(t) for t in (0, 1, 250, 499, 500, 900)]
    want = [30.0, 30.0 - 30.0 / 500, 15.0, 30.0 / 500, 0.0, 0.0]
    assert got == pytest.approx(want, abs=1e-12)


def test_linear_decay_takes_total_from_set_epoch() -> None:
    s = LinearDecay(1.0, 0.5)
    with pytest.raises(ValueError, match="epochs"):
        _ = s.value
    s.set_epoch(5, total_epochs=10)
    assert s.value == 0.75


def test_state_round_trip_resumes_on_same_value() -> None:
    s = LinearDecay(30.0, 0.0)
    s.set_epoch(7, total_epochs=20)
    fresh = LinearDecay(30.0, 0.0)
    fresh.load_state_dict(s.state_dict())
    assert fresh.value == s.value == 30.0 - 7 * 30.0 / 20


def test_constant_and_as_schedule() -> None:
    c = as_schedule(0.2)
    assert isinstance(c, Constant) and c(0) == c(1000) == 0.2
    s = LinearDecay(1, 0, epochs=2)
    assert as_schedule(s) is s
    for bad in (-1.0, float("nan"), "1", True):
        with pytest.raises(ValueError, match="weight|value"):
            as_schedule(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epochs"):
        LinearDecay(1, 0, epochs=0)
    with pytest.raises(ValueError, match="start"):
        LinearDecay(-1, 0)
