"""The head hook: capture a model's online projections during a step, return ``weight_t * term``.

This is the one mechanism every binding of w2reg uses (lightly's decorator, solo-learn's
``<method>_w2``, stable-pretraining's callback), and what a plain PyTorch loop, a timm
training script or any other trainer uses directly. It imports no framework.

A :class:`HeadRegularizer` puts a forward hook on the module whose output is the online
projection (lightly: ``projection_head``; solo-learn: ``projector``). Between :meth:`begin`
and :meth:`end` every output of *that* module computed with gradients enabled is kept; at
the end, ``weight_t * term(concat(outputs))`` of all of them together (every view, every
crop, every call of the head in the step) is returned and the capture is cleared. Calls
under ``torch.no_grad`` (evaluation, kNN, momentum targets) and other modules (deep-copied
momentum heads, the predictor) are never captured, nor anything outside ``begin``/``end``.

A plain loop (the 15 lines of docs/core.md run in the tests)::

    reg = HeadRegularizer(model, "projection_head", weight=0.2)   # BYOL's paper weight
    for epoch in range(epochs):
        reg.set_epoch(epoch, epochs)
        for x0, x1 in loader:
            reg.begin()
            loss = my_ssl_loss(model, x0, x1)     # calls model.projection_head, any times
            loss = loss + reg.end()               # + 0.2 * W2 of the captured projections
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

With gradient accumulation every micro-batch is one ``begin``/``end`` (each micro-batch's
loss carries the term of its own projections). With ``gather_distributed=True`` the term is
computed on the rows of all ranks (every rank must capture the same number of rows; checked
at every step where that costs no device synchronisation: CPU tensors).

The head is looked up by name at every :meth:`begin` (given ``model`` and a dotted name): a
head replaced after construction (a subclass that assigns its own ``projection_head``) is
hooked where it is now. The object is not an ``nn.Module``: attaching it to a model changes
no ``state_dict``. Its resumable state (the schedule's) is :meth:`state_dict`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from w2reg import Regularizer, W2Uniformity
from w2reg._distributed import _check_row_counts as check_row_counts
from w2reg._distributed import is_distributed, world_size
from w2reg._validation import data_is_free
from w2reg.schedules import WeightLike, schedule_from_state
from w2reg.terms import CallableTerm, TermLike

__all__ = ["HeadRegularizer", "NoProjections", "resolve_head"]

#: The regularizers capturing right now, by head module (between begin and end). The forward
#: hook itself is one stateless function: a deep copy of a head (a momentum copy) or a
#: pickled model carries only that function, which finds nothing here for the copy.
_ACTIVE: weakref.WeakKeyDictionary[nn.Module, list[HeadRegularizer]] = weakref.WeakKeyDictionary()


def _capture(module: nn.Module, inputs: Any, output: Any) -> None:
    """The forward hook on every hooked head: hand outputs with gradients to its capturers."""
    regs = _ACTIVE.get(module)
    if not regs or not torch.is_grad_enabled():
        return
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, Tensor) or not output.requires_grad:
        return
    if output.dim() == 0:
        raise ValueError(
            f"w2reg: the head ({type(module).__name__}) returned a 0-d tensor; the "
            "projections must be (B, m) (or (B, ...), flattened per row)"
        )
    for reg in regs:
        if reg.loss.gather_distributed and not reg._rows_checked:
            reg._check_rows(output)
        reg._captured.append(output)


def _install(module: nn.Module) -> None:
    """Put :func:`_capture` on ``module`` once (a copy of a hooked module has it already)."""
    if not any(hook is _capture for hook in module._forward_hooks.values()):
        module.register_forward_hook(_capture)


def _start(reg: HeadRegularizer) -> None:
    _ACTIVE.setdefault(reg.head, []).append(reg)


def _stop(reg: HeadRegularizer) -> None:
    regs = _ACTIVE.get(reg.head, [])
    if reg in regs:
        regs.remove(reg)
    if not regs:
        _ACTIVE.pop(reg.head, None)


class NoProjections(RuntimeError):
    """The head produced no output with gradients between ``begin`` and ``end``."""


def resolve_head(model: nn.Module, head: str) -> nn.Module:
    """The submodule ``head`` (a dotted name) of ``model``; ``ValueError`` listing its children.

    One home for the head lookup of the regularizer and of the monitors.
    """
    if not isinstance(head, str) or not head:
        raise ValueError(f"head must be the dotted name of a submodule, got {head!r}")
    try:
        module = model.get_submodule(head)
    except AttributeError:
        module = None
    if not isinstance(module, nn.Module) or module is model:
        children = [name for name, _ in model.named_children()]
        raise ValueError(
            f"head={head!r}: {type(model).__name__} has no submodule of that name; "
            f"its top-level modules are {children}"
        )
    return module


class HeadRegularizer:
    """Captures a head's outputs during a step and turns them into ``weight_t * term``.

    Args:
        model: the model that owns the head, or the head module itself (then ``head`` is
            ``None``).
        head: dotted name of the submodule whose output is the online projection
            (looked up again at every :meth:`begin`).
        weight: a number or a :class:`w2reg.Schedule`.
        term: ``"w2"`` (default), ``"lu"`` or a callable ``term(z) -> scalar``
            (:mod:`w2reg.terms`).
        normalize: L2-normalise the projections first (``"w2"``, ``"lu"``; the paper does).
        gather_distributed: compute the term on the global batch across ranks.
        method: how W2's nuclear norm is computed (``term="w2"``).
        name: a callable term's name in the logs.

    Attributes:
        loss: the :class:`w2reg.Regularizer` (``loss.last_value``, ``loss.last_weight``).
        last_rows: rows the last term was computed on (all ranks' with gathering).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from w2reg.adapters.head import HeadRegularizer
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        >>> reg = HeadRegularizer(model, "2", weight=0.5)   # the last Linear is the head
        >>> reg.begin()
        >>> z0, z1 = model(torch.randn(32, 8)), model(torch.randn(32, 8))
        >>> with torch.no_grad():
        ...     _ = model(torch.randn(32, 8))                # not captured
        >>> term = reg.end()                                  # 0.5 * W2 of the 64 rows
        >>> reg.last_rows, bool(term > 0), term.requires_grad
        (64, True, True)
    """

    def __init__(
        self,
        model: nn.Module,
        head: str | None = None,
        weight: WeightLike = 1.0,
        *,
        term: TermLike = "w2",
        normalize: bool = True,
        gather_distributed: bool = False,
        method: str = "auto",
        name: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
        self.loss: Regularizer
        if isinstance(term, str) and term == "w2":
            self.loss = W2Uniformity(
                weight, normalize=normalize, gather_distributed=gather_distributed, method=method
            )
        else:
            self.loss = Regularizer(
                term,
                weight,
                normalize=normalize,
                gather_distributed=gather_distributed,
                method=method,
                name=name,
            )
        self.head_name = head
        self._owner = model if head is not None else None
        self._captured: list[Tensor] = []
        self._active = False
        self._removed = False
        self._rows_checked = False  # the row counts of the ranks, compared once per step
        #: terms taken (take/end) since the last begin
        self.taken = 0
        self.last_rows = 0
        self.head: nn.Module = resolve_head(model, head) if head is not None else model
        _install(self.head)

    # -- the hook ---------------------------------------------------------------------------
    def _hook(self, module: nn.Module) -> None:
        if self._active:
            _stop(self)
        self.head = module
        _install(module)
        if self._active:
            _start(self)

    def refresh(self) -> None:
        """Hook the head where it is now (``model.<head>`` may have been replaced)."""
        if self._owner is not None and self.head_name is not None:
            current = resolve_head(self._owner, self.head_name)
            if current is not self.head:
                self._hook(current)

    def remove(self) -> None:
        """Stop for good: nothing is captured any more (a replaced regularizer)."""
        self.abort()
        self._removed = True

    # -- a step -----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Whether a step is being captured (between :meth:`begin` and :meth:`end`)."""
        return self._active

    @property
    def pending(self) -> bool:
        """Whether outputs were captured that no :meth:`take` has used yet."""
        return bool(self._captured)

    def set_epoch(self, epoch: int, total_epochs: int | None = None) -> None:
        """Move the weight schedule to ``epoch`` (0-based) of ``total_epochs``."""
        self.loss.set_epoch(epoch, total_epochs)

    def begin(self) -> None:
        """Start capturing the head's outputs with gradients."""
        if self._removed:
            raise RuntimeError("w2reg: this HeadRegularizer was removed (replaced by another)")
        self.refresh()
        self._captured = []
        self._rows_checked = False
        self.taken = 0
        if not self._active:
            _start(self)
        self._active = True

    def _check_rows(self, output: Tensor) -> None:
        """With gathering, compare the ranks' row counts at the step's first capture, where
        that is free (CPU tensors: gloo): before the model's own criterion gathers (lightly's
        does, before the term), so an uneven last batch names ``drop_last`` instead of
        crashing inside the collective. Elsewhere the term's gather checks its first call."""
        self._rows_checked = True
        if is_distributed() and data_is_free(output):
            check_row_counts(output.reshape(output.shape[0], -1), world_size())

    def abort(self) -> None:
        """Stop capturing and forget what was captured (the step raised, or was skipped)."""
        if self._active:
            _stop(self)
        self._active = False
        self._captured = []

    def end(self) -> Tensor:
        """Stop capturing; ``weight_t * term`` of everything captured (then forgotten).

        Raises:
            NoProjections: nothing was captured (the head is not the module whose output is
                the online projection, or it ran only under ``torch.no_grad``).
        """
        if self._active:
            _stop(self)
        self._active = False
        return self.take()

    def take(self) -> Tensor:
        """``weight_t * term`` of what was captured so far (then forgotten); capturing goes on."""
        views, self._captured = self._captured, []
        where = self.head_name if self.head_name is not None else type(self.head).__name__
        if not views:
            owner = f" of {type(self._owner).__name__}" if self._owner is not None else ""
            raise NoProjections(
                f"w2reg: head {where!r}{owner} produced no output with gradients during the "
                "step; "
                "name the module whose output is the online projection (head=...), and call "
                "it outside torch.no_grad()"
            )
        rows = [v.reshape(v.shape[0], -1) for v in views]
        widths = {r.shape[1] for r in rows}
        if len(widths) != 1:
            raise RuntimeError(
                f"w2reg: head {where!r} produced outputs of different widths "
                f"{sorted(widths)} in one step; the term needs one embedding dimension"
            )
        z = rows[0] if len(rows) == 1 else torch.cat(rows, dim=0)
        ranks = world_size() if self.loss.gather_distributed else 1
        self.last_rows = int(z.shape[0]) * ranks
        self.taken += 1
        return self.loss(z)

    @contextmanager
    def capturing(self) -> Iterator[HeadRegularizer]:
        """``with reg.capturing(): ...`` is :meth:`begin` ... (:meth:`abort` if it raises);
        call :meth:`end` or :meth:`take` inside or after it."""
        self.begin()
        try:
            yield self
        except BaseException:
            self.abort()
            raise

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_captured"], state["_active"] = [], False  # a copy is never mid-step
        return state

    # -- checkpoints ------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The settings, in plain types (safe for ``torch.load(weights_only=True)``).

        ``term`` is ``"w2"``, ``"lu"`` or ``"callable"`` (a callable is code: it is not
        saved, only its ``term_name``); the weight is the schedule's state.
        """
        term = self.loss.term
        return {
            "head": self.head_name,
            "term": "callable" if isinstance(term, CallableTerm) else term.name,
            "term_name": term.name,
            "normalize": getattr(term, "normalize", None),
            "method": getattr(term, "method", None),
            "gather_distributed": self.loss.gather_distributed,
        }

    def state_dict(self) -> dict[str, Any]:
        """The settings (:meth:`settings`) and the schedule's state (position, parameters)."""
        return {"settings": self.settings(), "schedule": self.loss.schedule.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume the schedule from :meth:`state_dict` (the settings must match: see
        :meth:`restored`, which makes a regularizer with the saved settings)."""
        if not isinstance(state, Mapping) or "schedule" not in state:
            raise ValueError(f"state must be a mapping with 'schedule', got {state!r}")
        self.loss.schedule.load_state_dict(dict(state["schedule"]))

    def restored(self, state: Mapping[str, Any]) -> HeadRegularizer:
        """A regularizer with the settings and schedule of ``state`` (this one if they match).

        What a checkpoint of a model made with other settings than this one's needs: e.g.
        ``BarlowTwinsW2(w2_weight=0.7)`` saved, rebuilt with the defaults by
        ``load_from_checkpoint``, then given back its constant 0.7 here. A schedule of a type
        of your own is kept (the state is loaded into it); a callable term must be the one
        this regularizer has (same name): it is code, not saved.

        Raises:
            ValueError: the saved term is a callable other than this one's.
        """
        if not isinstance(state, Mapping) or "schedule" not in state:
            raise ValueError(f"state must be a mapping with 'schedule', got {state!r}")
        saved = state.get("settings")
        schedule_state = dict(state["schedule"])
        same_type = (
            schedule_state.get("type", type(self.loss.schedule).__name__)
            == type(self.loss.schedule).__name__
        )
        if saved is None:  # a 0.1 checkpoint: the schedule (type, parameters), no settings
            schedule = None if same_type else schedule_from_state(schedule_state)
            if schedule is None:
                self.load_state_dict(state)
            else:
                self.loss.schedule = schedule
            return self
        if saved == self.settings() and same_type:
            self.load_state_dict(state)
            return self
        term: TermLike = saved["term"]
        if term == "callable":
            if saved["term_name"] != self.loss.term.name:
                raise ValueError(
                    f"the checkpoint's term is a callable named {saved['term_name']!r}, this "
                    f"model's is {self.loss.term.name!r}: build the model with that term "
                    "before loading"
                )
            term = self.loss.term
        schedule = schedule_from_state(schedule_state)
        if schedule is None:  # a schedule class of the user's: theirs, at the saved position
            schedule = self.loss.schedule
            schedule.load_state_dict(schedule_state)
        owner = self._owner if self._owner is not None else self.head
        new = HeadRegularizer(
            owner,
            saved["head"] if self._owner is not None else None,
            schedule,
            term=term,
            normalize=saved["normalize"] if saved["normalize"] is not None else True,
            gather_distributed=saved["gather_distributed"],
            method=saved["method"] or "auto",
            name=saved["term_name"] if term == "callable" else None,
        )
        self.remove()
        return new

    def __repr__(self) -> str:
        where = self.head_name if self.head_name is not None else type(self.head).__name__
        return f"HeadRegularizer(head={where!r}, {self.loss.extra_repr()})"
