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


# -- numbers are checked where they enter (issue 11) ----------------------------------------
@pytest.mark.parametrize("bad", [2.5, "500", True, -1, None])
def test_linear_decay_epochs_must_be_a_positive_integer(bad) -> None:
    if bad is None:
        assert LinearDecay(1, 0, epochs=None).epochs is None  # None: the trainer's horizon
        return
    with pytest.raises(ValueError, match=r"epochs must be .*" + repr(bad).replace(".", r"\.")):
        LinearDecay(1, 0, epochs=bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((2.9,), r"epoch must be an integer >= 0, got 2\.9"),
        (("3",), "epoch must be an integer >= 0, got '3'"),
        ((-1,), "epoch must be >= 0"),
        ((1, 0), "total_epochs must be >= 1, got 0"),
        ((1, -5), "total_epochs must be >= 1"),
        ((1, 10.0), r"total_epochs must be a positive integer or None, got 10\.0"),
    ],
)
def test_set_epoch_rejects_what_it_would_truncate_or_ignore(args, message) -> None:
    s = LinearDecay(1.0, 0.0)
    with pytest.raises(ValueError, match=message):
        s.set_epoch(*args)


def test_weights_must_be_numbers_not_strings() -> None:
    with pytest.raises(ValueError, match=r"start must be .* got '30'"):
        LinearDecay("30", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value must be"):
        Constant(float("inf"))


def test_w2uniformity_weight_errors_name_weight() -> None:
    from w2reg import W2Uniformity

    for bad in (-1, float("nan"), "0.2"):
        with pytest.raises(ValueError, match=r"^weight must be"):
            W2Uniformity(bad)  # type: ignore[arg-type]


# -- the state: the same keys for every schedule, checked on load -----------------------------
def test_every_schedule_saves_the_same_keys() -> None:
    keys = {"type", "epoch", "total_epochs", "start", "end", "epochs"}
    c, d = Constant(0.2), LinearDecay(30.0, 0.0)
    d.set_epoch(3, total_epochs=10)
    assert set(c.state_dict()) == set(d.state_dict()) == keys
    assert c.state_dict() == {
        "type": "Constant",
        "epoch": 0,
        "total_epochs": None,
        "start": 0.2,
        "end": 0.2,
        "epochs": None,
    }


def test_constant_resumes_its_value_from_the_checkpoint() -> None:
    saved = Constant(0.5)
    saved.set_epoch(4)
    fresh = Constant(0.2)
    fresh.load_state_dict(saved.state_dict())
    assert (fresh.value, fresh.epoch) == (0.5, 4)


def test_states_of_w2reg_0_1_still_load() -> None:
    old_decay = {"epoch": 7, "total_epochs": 20, "start": 30.0, "end": 0.0, "epochs": None}
    d = LinearDecay(1.0, 0.0)
    d.load_state_dict(old_decay)
    assert d.value == pytest.approx(30.0 - 7 * 30.0 / 20)
    c = Constant(0.2)
    c.load_state_dict({"epoch": 3, "total_epochs": None})
    assert (c.value, c.epoch) == (0.2, 3)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ([("epoch", 1)], "state must be a mapping"),
        ({"total_epochs": 3}, "state has no 'epoch'"),
        ({"epoch": 1, "lr": 0.1}, r"unknown keys \['lr'\]"),
        ({"epoch": 1.5}, r"state\['epoch'\] must be an integer >= 0, got 1\.5"),
        ({"epoch": -2}, r"state\['epoch'\] must be >= 0"),
        ({"epoch": 1, "total_epochs": 0}, r"state\['total_epochs'\] must be >= 1"),
        ({"epoch": 1, "start": -3.0}, r"state\['start'\] must be a finite, non-negative"),
        ({"epoch": 1, "epochs": "10"}, r"state\['epochs'\] must be a positive integer or None"),
        ({"type": "Constant", "epoch": 1}, "the state of another schedule"),
    ],
)
def test_load_state_dict_checks_what_it_loads(state, message) -> None:
    s = LinearDecay(30.0, 0.0)
    before = s.state_dict()
    with pytest.raises(ValueError, match=message):
        s.load_state_dict(state)  # type: ignore[arg-type]
    assert s.state_dict() == before  # nothing half-loaded


def test_a_decay_cannot_be_loaded_into_a_constant() -> None:
    d = LinearDecay(30.0, 0.0)
    state = {**d.state_dict(), "type": "Constant"}
    with pytest.raises(ValueError, match="differ"):
        Constant(1.0).load_state_dict(state)


def test_a_users_own_schedule_round_trips() -> None:
    from w2reg import Schedule

    class Halving(Schedule):
        def value_at(self, epoch, total_epochs=None):
            return 8.0 / 2**epoch

    s = Halving()
    s.set_epoch(2)
    fresh = Halving()
    fresh.load_state_dict(s.state_dict())
    assert fresh.value == 2.0 and set(s.state_dict()) == {"type", "epoch", "total_epochs"}
