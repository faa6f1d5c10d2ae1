"""Weight schedules for the W2 term: a constant, and the paper's per-epoch linear decay.

Schedules are plain objects (not ``nn.Module``), so attaching one to a model adds nothing to
its ``state_dict``. They remember the epoch they were last set to and round-trip through
``state_dict()`` / ``load_state_dict()``, so a resumed run continues on the same value. Every
schedule saves the same keys (``type``, ``epoch``, ``total_epochs``, ``start``, ``end``,
``epochs``; a :class:`Constant` has ``start == end``), and loading checks them.

Numbers are checked where they enter: weights are finite real numbers ``>= 0``; epochs are
integers (``2.5``, ``"500"`` or ``True`` are errors, not truncated), ``>= 0`` for an epoch
and ``> 0`` for a length. Every error names the argument and the value it got.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from ._validation import check_int as _check_int
from ._validation import check_weight as _check_weight


class Schedule(ABC):
    """A weight that may change with the training epoch.

    Call :meth:`set_epoch` at the start of each epoch (the Lightning adapters do this from
    ``trainer.current_epoch`` and the run's planned epochs), then read :attr:`value`.
    """

    def __init__(self) -> None:
        self.epoch: int = 0
        self.total_epochs: int | None = None

    def set_epoch(self, epoch: int, total_epochs: int | None = None) -> None:
        """Move to ``epoch`` (0-based); ``total_epochs`` is used where the schedule has none.

        Raises:
            ValueError: ``epoch`` is not an integer ``>= 0``, or ``total_epochs`` is neither
                ``None`` nor a positive integer.
        """
        self.epoch = _check_int(epoch, "epoch", minimum=0)
        total = _check_int(total_epochs, "total_epochs", minimum=1, optional=True)
        if total is not None:
            self.total_epochs = total

    @abstractmethod
    def value_at(self, epoch: int, total_epochs: int | None = None) -> float:
        """The weight at ``epoch`` (0-based)."""

    def _params(self) -> dict[str, Any]:
        """This schedule's parameters in its state: ``start``, ``end`` (weights) and
        ``epochs`` (a length or ``None``) for w2reg's schedules; none for a user's own."""
        return {}

    def _load_params(self, params: Mapping[str, Any]) -> None:
        """Take the parameters of :meth:`_params` (the same keys) from a checked state."""
        for key, value in params.items():
            setattr(self, key, value)

    @property
    def value(self) -> float:
        """The weight at the current epoch."""
        return self.value_at(self.epoch, self.total_epochs)

    def __call__(self, epoch: int | None = None) -> float:
        if epoch is None:
            return self.value
        return self.value_at(_check_int(epoch, "epoch", minimum=0), self.total_epochs)

    def state_dict(self) -> dict[str, Any]:
        """The schedule's position and parameters; the same keys for every schedule."""
        return {
            "type": type(self).__name__,
            "epoch": self.epoch,
            "total_epochs": self.total_epochs,
            **self._params(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`'s output (checked: keys, types, ranges).

        States saved by w2reg 0.1 (no ``type``; a ``Constant`` without parameters) load too.

        Raises:
            ValueError: not a mapping, a missing or unknown key, a value out of range, or the
                state of another kind of schedule (the message names the key).
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"state must be a mapping, got {type(state).__name__}")
        params = self._params()
        known = {"type", "epoch", "total_epochs", *params}
        unknown = sorted(set(state) - known)
        if unknown:
            raise ValueError(f"state has unknown keys {unknown}; expected {sorted(known)}")
        if "epoch" not in state:
            raise ValueError(f"state has no 'epoch'; expected keys {sorted(known)}")
        kind = state.get("type", type(self).__name__)
        if kind != type(self).__name__:
            raise ValueError(
                f"state['type'] is {kind!r}: the state of another schedule cannot be loaded "
                f"into a {type(self).__name__}"
            )
        epoch = _check_int(state["epoch"], "state['epoch']", minimum=0)
        total = _check_int(
            state.get("total_epochs"), "state['total_epochs']", minimum=1, optional=True
        )
        values: dict[str, Any] = {}
        for key, default in params.items():
            value, name = state.get(key, default), f"state[{key!r}]"
            if key == "epochs":
                values[key] = _check_int(value, name, minimum=1, optional=True)
            else:
                values[key] = _check_weight(value, name)
        self._load_params(values)
        self.epoch, self.total_epochs = epoch, total


class Constant(Schedule):
    """The same weight at every epoch (paper: MoCo v2 1.0, BYOL 0.2, Zero-CL 30).

    Args:
        value: the weight, a finite number ``>= 0``.
    """

    def __init__(self, value: float) -> None:
        super().__init__()
        self.constant = _check_weight(value, "value")

    def value_at(self, epoch: int, total_epochs: int | None = None) -> float:
        _check_int(epoch, "epoch", minimum=0)
        _check_int(total_epochs, "total_epochs", minimum=1, optional=True)
        return self.constant

    def _params(self) -> dict[str, Any]:
        return {"start": self.constant, "end": self.constant, "epochs": None}

    def _load_params(self, params: Mapping[str, Any]) -> None:
        start, end = params["start"], params["end"]
        if start != end:
            raise ValueError(
                f"state['start'] ({start}) and state['end'] ({end}) differ: a decaying "
                "schedule's state cannot be loaded into a Constant"
            )
        self.constant = start

    def __repr__(self) -> str:
        return f"Constant({self.constant})"


class LinearDecay(Schedule):
    """The paper's per-epoch linear decay of the W2 weight (Fang et al., ICLR 2024, Sec. 5).

        a_t = a_max - t * (a_max - a_min) / T,   t = 0, 1, ..., clamped to a_min for t >= T

    Args:
        start: ``a_max``, the weight at epoch 0.
        end: ``a_min``, the weight reached at epoch ``T``.
        epochs: ``T``, a positive integer. When ``None``, the total passed to
            :meth:`set_epoch` is used (the Lightning adapters pass the run's planned epochs).

    Example:
        >>> s = LinearDecay(30.0, 0.0, epochs=500)   # BarlowTwins + W2 in the paper
        >>> s(0), s(250), s(500), s(600)
        (30.0, 15.0, 0.0, 0.0)
    """

    def __init__(self, start: float, end: float, epochs: int | None = None) -> None:
        super().__init__()
        self.start = _check_weight(start, "start")
        self.end = _check_weight(end, "end")
        self.epochs = _check_int(epochs, "epochs", minimum=1, optional=True)

    def value_at(self, epoch: int, total_epochs: int | None = None) -> float:
        epoch = _check_int(epoch, "epoch", minimum=0)
        total = _check_int(total_epochs, "total_epochs", minimum=1, optional=True)
        horizon = self.epochs if self.epochs is not None else total
        if horizon is None:
            if self.start == self.end:
                return self.start
            raise ValueError(
                "LinearDecay has no horizon: pass epochs=... or call "
                "set_epoch(epoch, total_epochs=...) first"
            )
        t = min(epoch, horizon)
        return self.start - t * (self.start - self.end) / horizon

    def _params(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "epochs": self.epochs}

    def _load_params(self, params: Mapping[str, Any]) -> None:
        self.start, self.end, self.epochs = params["start"], params["end"], params["epochs"]

    def __repr__(self) -> str:
        return f"LinearDecay(start={self.start}, end={self.end}, epochs={self.epochs})"


WeightLike = float | int | Schedule


def as_schedule(weight: WeightLike) -> Schedule:
    """A :class:`Schedule` from a number (-> :class:`Constant`) or a schedule (returned as is).

    Raises:
        ValueError: ``weight`` is neither a schedule nor a finite number ``>= 0`` (the
            message names ``weight``).
    """
    if isinstance(weight, Schedule):
        return weight
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        raise ValueError(
            f"weight must be a non-negative number or a w2reg Schedule, got {weight!r} "
            f"({type(weight).__name__})"
        )
    return Constant(_check_weight(weight, "weight"))


def schedule_from_state(state: Mapping[str, Any]) -> Schedule | None:
    """A new :class:`Constant` or :class:`LinearDecay` at the position of ``state``
    (:meth:`Schedule.state_dict`'s output); ``None`` for another schedule's state.

    Raises:
        ValueError: a malformed state (the message names the key).
    """
    kind = state.get("type") if isinstance(state, Mapping) else None
    if kind == "Constant":
        schedule: Schedule = Constant(_check_weight(state.get("start"), "state['start']"))
    elif kind == "LinearDecay":
        schedule = LinearDecay(
            _check_weight(state.get("start"), "state['start']"),
            _check_weight(state.get("end"), "state['end']"),
            _check_int(state.get("epochs"), "state['epochs']", minimum=1, optional=True),
        )
    else:
        return None
    schedule.load_state_dict(state)
    return schedule
