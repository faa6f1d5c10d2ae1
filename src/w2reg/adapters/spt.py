"""The W2 uniformity term for stable-pretraining, in one line: a callback in the Trainer's list.

stable-pretraining (``spt``; PyPI ``stable-pretraining``, tested 0.1.7 and 0.1.8) trains an
``spt.Module``, built either from one of its forward functions
(``spt.Module(forward=spt.forward.simclr, backbone=..., projector=..., simclr_loss=...)``)
or as one of its method classes (``spt.methods.SimCLR``, ``BYOL``, ``MoCov2``, ...), with
Lightning. Its ``training_step`` runs ``state = self(batch, stage="fit")`` and then
``self.manual_backward(state["loss"])``. Adding the W2 uniformity regularizer of Fang et al.
(ICLR 2024, arXiv:2403.00642) is one line::

    trainer = pl.Trainer(callbacks=[W2Regularizer()])        # <- the one line
    trainer.fit(module, datamodule)                          # module, data: unchanged

What :class:`W2Regularizer` does, on the one capture mechanism
(:class:`~w2reg.adapters.head.HeadRegularizer`):

* it puts a forward pre-hook and a forward hook on the ``spt.Module`` itself; the capture
  runs exactly while the module's training call ``self(batch, stage="fit")`` runs (with
  gradients, in train mode). Every output of the online projector computed with gradients
  in that call is captured -- ``projector``, or ``projector.student`` when the projector
  is spt's ``TeacherStudentWrapper`` (BYOL, MoCo v2, DINO): the teacher (momentum) branch
  runs under ``torch.no_grad`` and is a different module, so it is never captured; neither
  are the validation, test and predict calls;
* when that call returns, ``weight_t * term(z)`` of the captured rows ``z`` is added to
  ``state["loss"]``, the loss spt then gives to ``manual_backward``. The hooks sit around
  the module's ``__call__``, outside any wrapper of ``forward``, so the callback's place in
  the callback list does not matter (spt's callbacks depend on their order, spt issue
  #241): ``OnlineProbe``, which wraps ``forward`` and adds its own loss, may come before or
  after it;
* nothing here reads a value on the host: no ``.item()``, no device synchronisation per
  step (``OnlineProbe`` calls ``.item()`` on its loss every step; this callback does not);
* logged with the module's ``self.log`` (so to every logger, next to spt's ``RankMe`` and its
  ``fit/loss``), per step and per epoch: ``train_w2_uniformity`` (W2, unweighted),
  ``train_w2_weight`` (``weight_t``), ``train_w2_loss`` (``weight_t * W2``); another term
  logs ``train_<name>``, ... (:func:`w2reg.adapters._lightning.log_keys`);
* ``weight_t`` follows ``trainer.current_epoch`` and the planned epochs; the settings and the
  schedule's position are the callback's ``state_dict`` in every checkpoint and come back on
  ``trainer.fit(..., ckpt_path=...)`` (the checkpoint's settings win over the callback's);
* ``gather_distributed=True`` (the default): under DDP the term is computed on the rows of
  all ranks, the global batch, as spt's own ``NTXEntLoss`` and ``BarlowTwinsLoss`` do.

Default weights: :func:`default_weight`, the one table of :mod:`w2reg.adapters.defaults`
times spt's loss scale relative to it (:data:`SPT_LOSS_SCALE`); the method is recognised from
the module (:func:`detect_method`) or named with ``ssl_method=``.

Method classes: in spt 0.1.7 and 0.1.8 a method class's ``forward(view1, view2)`` does not
take spt's ``(batch, stage)`` call, so a class is trained through a ``(batch, stage)``
forward attached to the instance (what spt's own benchmark scripts do; docs/spt.md has the
six lines). The callback regularizes it like any ``spt.Module``. A method class used in a
plain PyTorch loop takes :class:`~w2reg.adapters.head.HeadRegularizer` directly.

This module imports stable-pretraining and Lightning; importing it without them fails with
an error that says what to install.
"""

from __future__ import annotations

import copy
import importlib.metadata
from collections.abc import Mapping, MutableMapping
from typing import Any

import torch
from torch import Tensor, nn

from w2reg._methods import check_method
from w2reg._validation import check_bool
from w2reg.schedules import Schedule, WeightLike
from w2reg.terms import TermLike, as_term

from ._imports import lightning, missing
from ._lightning import (
    CHECKPOINT_KEY,
    LOG_TERM,
    LOG_W2,
    LOG_WEIGHT,
    check_weight_spec,
    log_keys,
    log_term,
    position,
)
from .head import HeadRegularizer, resolve_head
from .spt_weights import (
    METHODS,
    REFERENCE_TEMPERATURE,
    SPT_LOSS_SCALE,
    LossScale,
    _key,
    default_weight,
    detect_method,
    loss_scale,
)

pl = lightning("w2reg.adapters.spt", "spt")

try:
    import stable_pretraining as spt
    from stable_pretraining.backbone import TeacherStudentWrapper
except ImportError as err:  # pragma: no cover - the spt envs have it
    raise missing("w2reg.adapters.spt", "spt", err) from err

__all__ = [
    "CHECKPOINT_KEY",
    "LOG_TERM",
    "LOG_W2",
    "LOG_WEIGHT",
    "METHODS",
    "REFERENCE_TEMPERATURE",
    "SPT_LOSS_SCALE",
    "SPT_VERSION",
    "HeadRegularizer",
    "LossScale",
    "W2Regularizer",
    "default_weight",
    "detect_method",
    "log_keys",
    "loss_scale",
    "projector_name",
]

#: The installed stable-pretraining version.
SPT_VERSION = importlib.metadata.version("stable-pretraining")


def projector_name(module: nn.Module, head: str | None = None) -> str:
    """The dotted name of ``module``'s online projector: ``head`` (default ``"projector"``),
    followed by ``.student`` when that is spt's ``TeacherStudentWrapper``.

    Raises:
        ValueError: ``module`` has no such submodule (the message lists its modules).
    """
    name = "projector" if head is None else head
    sub = resolve_head(module, name)
    if isinstance(sub, TeacherStudentWrapper):
        return f"{name}.student"
    return name


def _stage(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if "stage" in kwargs:
        return kwargs["stage"]
    return args[1] if len(args) > 1 else None


class W2Regularizer(pl.Callback):
    """Adds ``weight_t * term`` of the online projections to an ``spt.Module``'s training loss.

    Args:
        weight: a number, a :class:`w2reg.Schedule`, or ``None`` (default): the method's
            default weight (:func:`default_weight`) for the method :func:`detect_method`
            finds or ``ssl_method`` names.
        head: dotted name of the online projector (default ``"projector"``; a
            ``TeacherStudentWrapper`` there means its ``student``).
        term: ``"w2"`` (default), ``"lu"`` or a callable ``term(z) -> scalar``
            (:mod:`w2reg.terms`).
        ssl_method: the method whose default weight to use (a key of :data:`METHODS` or an
            spt class name); ``None``: recognised from the module.
        normalize: L2-normalise the projections first (``"w2"``, ``"lu"``; the paper does).
        gather_distributed: compute the term on the global batch across ranks (default
            ``True``, as spt's losses do).
        method: how W2's nuclear norm is computed (:data:`w2reg.METHODS`).
        name: a callable term's name in the logs.

    Attributes:
        regularizer: the :class:`~w2reg.adapters.head.HeadRegularizer` (from the first
            ``fit``; ``None`` before): ``regularizer.loss.last_value`` is the last W2.

    Raises:
        ValueError: an invalid setting (the message names it), when constructed.
        TypeError: the Trainer's module is not an ``spt.Module`` (at ``fit``).

    Example (``trainer.fit`` of an spt module: docs/spt.md, whose code runs in the tests):

        >>> from w2reg.adapters.spt import W2Regularizer
        >>> w2, lu = W2Regularizer(), W2Regularizer(0.2, term="lu")   # one per term
        >>> w2.state_key, lu.state_key           # their keys in a Lightning checkpoint
        ('W2Regularizer[term=w2]', 'W2Regularizer[term=lu]')
        >>> # pl.Trainer(max_epochs=100, callbacks=[w2]).fit(module, data)
    """

    def __init__(
        self,
        weight: WeightLike | None = None,
        *,
        head: str | None = None,
        term: TermLike = "w2",
        ssl_method: str | None = None,
        normalize: bool = True,
        gather_distributed: bool = True,
        method: str = "auto",
        name: str | None = None,
    ) -> None:
        super().__init__()
        if weight is not None:
            check_weight_spec(weight)
            if callable(weight) and not isinstance(weight, Schedule):
                raise ValueError(
                    f"weight must be None, a number >= 0 or a w2reg Schedule, got {weight!r}"
                )
        if head is not None and (not isinstance(head, str) or not head):
            raise ValueError(f"head must be None or the dotted name of a submodule, got {head!r}")
        self.normalize = check_bool(normalize, "normalize")
        self.gather_distributed = check_bool(gather_distributed, "gather_distributed")
        self.method = check_method(method)
        self._term_name = as_term(term, normalize=normalize, method=method, name=name).name
        self.ssl_method = None if ssl_method is None else _key(ssl_method)
        self.weight = weight
        self.head = head
        self.term = term
        self.name = name
        self.regularizer: HeadRegularizer | None = None
        self._module: nn.Module | None = None
        self._handles: list[Any] = []
        self._opened: list[bool] = []  # per nested call of the module: did it begin a capture
        self._pending: Mapping[str, Any] | None = None

    # -- Lightning's callback state ---------------------------------------------------------
    @property
    def state_key(self) -> str:
        """One key per term, so a W2 and an L_U callback can train (and resume) together."""
        return f"W2Regularizer[term={self._term_name}]"

    def state_dict(self) -> dict[str, Any]:
        """The regularizer's settings and schedule (plain types; ``HeadRegularizer.state_dict``)."""
        if self.regularizer is not None:
            return self.regularizer.state_dict()
        return dict(self._pending) if self._pending is not None else {}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Resume: the checkpoint's settings and schedule position (applied at ``setup`` if
        the regularizer does not exist yet)."""
        if not state_dict:
            return
        if self.regularizer is not None:
            self.regularizer = self.regularizer.restored(state_dict)
        else:
            self._pending = dict(state_dict)

    # -- attaching to the module ------------------------------------------------------------
    def _weight(self, module: nn.Module) -> WeightLike:
        if self.weight is not None:
            # a schedule is stateful: the callback's own stays as given (a second fit starts
            # from it too), the run moves a copy
            return copy.deepcopy(self.weight) if isinstance(self.weight, Schedule) else self.weight
        key = self.ssl_method or detect_method(module)
        if key is None:
            raise ValueError(
                f"W2Regularizer: weight=None, and {type(module).__name__} is none of the spt "
                f"methods w2reg has default weights for ({list(SPT_LOSS_SCALE)}); name it "
                "(ssl_method='simclr', ...) or give the weight (weight=...)"
            )
        return default_weight(key, module, self.term)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":  # a str enum (TrainerFn) in Lightning 2.x
            return
        if not isinstance(pl_module, spt.Module):
            raise TypeError(
                f"W2Regularizer needs an spt.Module (stable_pretraining.Module), got "
                f"{type(pl_module).__name__}; for another LightningModule use "
                "w2reg.adapters.lightly.w2_regularized (any module with a projection head)"
            )
        reg = self.regularizer
        if reg is None or reg._owner is not pl_module:
            if reg is not None:
                reg.remove()
            reg = HeadRegularizer(
                pl_module,
                projector_name(pl_module, self.head),
                self._weight(pl_module),
                term=self.term,
                normalize=self.normalize,
                gather_distributed=self.gather_distributed,
                method=self.method,
                name=self.name,
            )
        if self._pending is not None:
            reg = reg.restored(self._pending)
            self._pending = None
        self.regularizer = reg
        self._attach(pl_module)

    def _attach(self, module: nn.Module) -> None:
        if self._module is module and self._handles:
            return
        self._detach()
        self._handles = [
            module.register_forward_pre_hook(self._before, with_kwargs=True),
            module.register_forward_hook(self._after, with_kwargs=True),
        ]
        self._module = module
        self._opened = []

    def _detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._module, self._opened = [], None, []
        if self.regularizer is not None:
            self.regularizer.abort()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit":
            self._detach()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._opened = []
        if self.regularizer is not None:
            self.regularizer.abort()

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        # a training call that raised inside a caught exception left its capture open
        if self._opened:
            self._opened = []
            if self.regularizer is not None:
                self.regularizer.abort()

    # -- the two hooks around the module's training call ------------------------------------
    def _before(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        reg = self.regularizer
        opens = (
            reg is not None
            and not reg.active
            and _stage(args, kwargs) == "fit"
            and module.training
            and torch.is_grad_enabled()
        )
        self._opened.append(bool(opens))
        if opens:
            assert reg is not None
            where = position(module)
            if where is not None:
                reg.set_epoch(*where)
            reg.begin()

    def _after(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> Any:
        if not self._opened or not self._opened.pop():
            return None
        reg = self.regularizer
        assert reg is not None
        loss = output.get("loss") if isinstance(output, Mapping) else None
        if not isinstance(loss, Tensor) or not isinstance(output, MutableMapping):
            reg.abort()  # no training loss to add to (spt's training_step will say so)
            return None
        term = reg.end()
        log_term(module, reg, term)
        output["loss"] = loss + term.to(loss.dtype)
        return output

    def __getstate__(self) -> dict[str, Any]:
        # pickled into ddp_spawn workers / deep-copied: hooks and the regularizer are made
        # again at setup there; a loaded-but-unapplied checkpoint state travels
        state = dict(self.__dict__)
        if state["regularizer"] is not None and state["_pending"] is None:
            state["_pending"] = state["regularizer"].state_dict()
        state.update(regularizer=None, _module=None, _handles=[], _opened=[])
        return state

    def __repr__(self) -> str:
        weight = "default" if self.weight is None else repr(self.weight)
        return f"W2Regularizer(weight={weight}, term={self._term_name!r}, head={self.head!r})"
