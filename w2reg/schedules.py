"""Weight schedules for the W2 term: a constant, and the paper's per-epoch linear decay.

Schedules are plain objects (not ``nn.Module``), so attaching one to a model adds nothing to
its ``state_dict``. They remember the epoch they were last set to and round-trip through
``state_dict()`` / ``load_state_dict()``, so a resumed run continues on the same value.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any


def _check_weight(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite, non-negative number, got {value!r}")
    return value


class Schedule(ABC):
    """A weight that may change with the training epoch.

    Call :meth:`set_epoch` at the start of each epoch (the Lightning adapters do this from
    ``trainer.current_epoch`` and ``trainer.max_epochs``), then read :attr:`value`.
    """

    def __init__(self) -> None:
        self.epoch: int = 0
        self.total_epochs: int | None = None

    def set_epoch(self, epoch: int, total_epochs: int | None = None) -> None:
        """Move to ``epoch`` (0-based); ``total_epochs`` is used where the schedule has none."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch!r}")
        self.epoch = int(epoch)
        if total_epochs is not None and int(total_epochs) > 0:
            self.total_epochs = int(total_epochs)

    @abstractmethod
    def value_at(self, epoch: int, total_epochs: int | None = None) -> float:
        """The weight at ``epoch`` (0-based)."""

    @property
    def value(self) -> float:
        """The weight at the current epoch."""
        return self.value_at(self.epoch, self.total_epochs)

    def __call__(self, epoch: int | None = None) -> float:
        return self.value if epoch is None else self.value_at(epoch, self.total_epochs)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "total_epochs": self.total_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        total = state.get("total_epochs")
        self.total_epochs = None if total is None else int(total)


class Constant(Schedule):
    """The same weight at every epoch (paper: MoCo v2 1.0, BYOL 0.2, Zero-CL 30)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.constant = _check_weight(value, "value")

    def value_at(self, epoch: int, total_epochs: int | None = None) -> float:
        return self.constant

    def __repr__(self) -> str:
        return f"Constant({self.constant})"


class LinearDecay(Schedule):
    """The paper's per-epoch linear decay of the W2 weight (Fang et al., ICLR 2024, Sec. 5).

        a_t = a_max - t * (a_max - a_min) / T,   t = 0, 1, ..., clamped to a_min for t >= T

    Args:
        start: ``a_max``, the weight at epoch 0.
        end: ``a_min``, the weight reached at epoch ``T``.
        epochs: ``T``. When ``None``, the total passed to :meth:`set_epoch` is used (the
            Lightning adapters pass ``trainer.max_epochs``).

    Example:
        >>> s = LinearDecay(30.0, 0.0, epochs=500)   # BarlowTwins + W2 in the paper
        >>> s(0), s(250), s(500), s(600)
        (30.0, 15.0, 0.0, 0.0)
    """

    def __init__(self, start: float, end: float, epochs: int | None = None) -> None:
        super().__init__()
        self.start = _check_weight(start, "start")
        self.end = _check_weight(end, "end")
        if epochs is not None and int(epochs) <= 0:
            raise ValueError(f"epochs must be a positive integer or None, got {epochs!r}")
        self.epochs = None if epochs is None else int(epochs)

    def value_at(self, epoch: int, total_epochs: int | None = None) -> float:
        horizon = self.epochs if self.epochs is not None else total_epochs
        if horizon is None:
            if self.start == self.end:
                return self.start
            raise ValueError(
                "LinearDecay has no horizon: pass epochs=... or call "
                "set_epoch(epoch, total_epochs=...) first"
            )
        t = min(max(int(epoch), 0), horizon)
        return self.start - t * (self.start - self.end) / horizon

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "start": self.start, "end": self.end, "epochs": self.epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.start = float(state.get("start", self.start))
        self.end = float(state.get("end", self.end))
        self.epochs = state.get("epochs", self.epochs)

    def __repr__(self) -> str:
        return f"LinearDecay(start={self.start}, end={self.end}, epochs={self.epochs})"


WeightLike = float | int | Schedule


def as_schedule(weight: WeightLike) -> Schedule:
    """A :class:`Schedule` from a number (-> :class:`Constant`) or a schedule (returned as is)."""
    if isinstance(weight, Schedule):
        return weight
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ValueError(
            f"weight must be a non-negative number or a w2reg Schedule, got {weight!r}"
        )
    return Constant(float(weight))
