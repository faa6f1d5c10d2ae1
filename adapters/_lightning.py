"""The one mechanism both adapters share: capture at the head, add ``weight_t * W2``, log.

A :class:`HeadRegularizer` puts a forward hook on the module that produces the online
projections (lightly: ``projection_head``; solo-learn: ``projector``). While the model's
``training_step`` runs, every output of *that* module computed with gradients enabled is
kept; afterwards the W2 term of all of them together (every view, every crop) is added to the
step's loss and logged. Calls under ``no_grad`` (kNN, validation, momentum targets computed in
``no_grad``) and other modules (deep-copied momentum heads, the predictor) are never captured.
The criterion is not touched, so memory banks advance exactly as before.

:func:`regularize_class` turns that into a subclass of any LightningModule class (Lightning
1.9 ``pytorch_lightning`` or 2.x ``lightning``: only the hook names are used). It adds no
parameters or buffers; the schedule's state rides in the checkpoint under ``"w2reg"``.

This module contains no linear algebra: the math is :class:`w2reg.W2Uniformity`.
"""

from __future__ import annotations

import copy
import math
import pickle
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from w2reg import W2Uniformity
from w2reg._methods import check_method
from w2reg.schedules import Schedule, WeightLike

#: Keys logged by the adapters (``self.log``), per training step and per epoch.
LOG_W2 = "train_w2_uniformity"  #: the unweighted W2 of the step's online projections
LOG_WEIGHT = "train_w2_weight"  #: the weight ``a_t`` used in that step
LOG_TERM = "train_w2_loss"  #: ``a_t * W2``, the amount added to the loss
CHECKPOINT_KEY = "w2reg"

M = TypeVar("M", bound=nn.Module)
WeightSpec = WeightLike | Callable[[nn.Module], WeightLike]


def _resolve(model: nn.Module, head: str) -> nn.Module:
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
    """Captures a head's outputs during a training step and turns them into the W2 term.

    A plain object (not an ``nn.Module``), so attaching it changes no ``state_dict``.
    """

    def __init__(
        self,
        model: nn.Module,
        head: str,
        weight: WeightLike,
        *,
        normalize: bool = True,
        gather_distributed: bool = False,
        method: str = "auto",
    ) -> None:
        self.head_name = head
        self.head = _resolve(model, head)
        self.loss = W2Uniformity(
            weight, normalize=normalize, gather_distributed=gather_distributed, method=method
        )
        self._captured: list[Tensor] = []
        self._active = False
        self._applied = False
        #: rows of the last W2 (all captured views together), logged as the batch size
        self.last_rows = 0
        self.head.register_forward_hook(self._on_forward)

    def _on_forward(self, module: nn.Module, inputs: Any, output: Any) -> None:
        # Deep copies of the head (momentum/target copies) carry a copy of this hook
        # bound to a copy of this object, whose _active is never set; the identity test
        # guards against anything else.
        if not self._active or module is not self.head or not torch.is_grad_enabled():
            return
        if isinstance(output, (tuple, list)):
            output = output[0]
        if isinstance(output, Tensor) and output.requires_grad:
            self._captured.append(output)

    def begin(self, model: nn.Module) -> None:
        """Start capturing; move the schedule to the trainer's epoch (:func:`planned_epochs`)."""
        trainer = getattr(model, "_trainer", None)
        if trainer is not None:
            self.loss.set_epoch(int(trainer.current_epoch), planned_epochs(trainer))
        self._captured = []
        self._applied = False
        self._active = True

    def abort(self) -> None:
        """Stop capturing without computing anything (the step raised)."""
        self._active = False
        self._captured = []

    def end(self, model: nn.Module) -> Tensor:
        """Stop capturing and return ``weight_t * W2`` of everything captured."""
        self._active = False
        return self.take(model)

    def take(self, model: nn.Module) -> Tensor:
        """``weight_t * W2`` of what was captured so far (then forgotten); capturing goes on."""
        views, self._captured = self._captured, []
        if not views:
            raise RuntimeError(
                f"w2reg: head {self.head_name!r} of {type(model).__name__} produced no output "
                "with gradients during training_step; name the module whose output is the "
                "online projection (head=...), and call it outside torch.no_grad()"
            )
        widths = {v.reshape(v.shape[0], -1).shape[1] for v in views}
        if len(widths) != 1:
            raise RuntimeError(
                f"w2reg: head {self.head_name!r} produced outputs of different widths "
                f"{sorted(widths)} in one step; W2 needs one embedding dimension"
            )
        self.last_rows = sum(int(v.shape[0]) for v in views)
        return self.loss(*[v.reshape(v.shape[0], -1) for v in views])

    def log(self, model: nn.Module, term: Tensor) -> None:
        """Log W2, its weight and the term with ``model.log`` (per step and per epoch).

        ``batch_size`` is the number of rows W2 was computed on, so Lightning never has to
        guess it from the batch (lightly's batches are ambiguous lists of views).
        """
        if getattr(model, "_trainer", None) is None:
            return
        assert self.loss.last_value is not None and self.loss.last_weight is not None
        kwargs = {
            "on_step": True,
            "on_epoch": True,
            "sync_dist": True,
            "batch_size": self.last_rows,
        }
        model.log(LOG_W2, self.loss.last_value.float(), prog_bar=True, **kwargs)
        model.log(LOG_WEIGHT, float(self.loss.last_weight), **kwargs)
        model.log(LOG_TERM, term.detach().float(), **kwargs)

    def state_dict(self) -> dict[str, Any]:
        return {"head": self.head_name, "schedule": self.loss.schedule.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.loss.schedule.load_state_dict(dict(state["schedule"]))


def planned_epochs(trainer: Any) -> int | None:
    """The run's length in epochs: ``trainer.max_epochs``, else derived from ``max_steps``.

    A Trainer given only ``max_steps`` has ``max_epochs == -1``; then the horizon is
    ``ceil(max_steps / optimizer steps per epoch)`` with the steps per epoch from
    ``num_training_batches`` and ``accumulate_grad_batches``. ``None`` when neither is known
    (an unbounded run, or a loader without a length): an epoch-based decay then has no horizon
    and says so.
    """
    max_epochs = getattr(trainer, "max_epochs", None)
    if isinstance(max_epochs, int) and max_epochs > 0:
        return max_epochs
    max_steps = getattr(trainer, "max_steps", None)
    batches = getattr(trainer, "num_training_batches", None)
    if not isinstance(max_steps, int) or max_steps <= 0 or not isinstance(batches, (int, float)):
        return None
    if not math.isfinite(batches) or batches <= 0:
        return None
    accumulate = max(int(getattr(trainer, "accumulate_grad_batches", 1) or 1), 1)
    steps_per_epoch = max(math.ceil(batches / accumulate), 1)
    return max(math.ceil(max_steps / steps_per_epoch), 1)


def add_to_loss(output: Any, term: Tensor) -> Any:
    """Add ``term`` to what a ``training_step`` returned: a tensor or a dict with ``"loss"``."""
    if isinstance(output, Tensor):
        return output + term.to(output.dtype)
    if isinstance(output, Mapping) and isinstance(output.get("loss"), Tensor):
        out = dict(output)
        out["loss"] = out["loss"] + term.to(out["loss"].dtype)
        return out
    raise TypeError(
        "w2reg: training_step must return a loss tensor or a dict with a 'loss' tensor, "
        f"got {type(output).__name__}"
    )


def regularize_class(
    cls: type[M],
    *,
    head: str,
    weight: WeightSpec = 1.0,
    normalize: bool = True,
    gather_distributed: bool = False,
    name: str | None = None,
    method: str | Callable[[nn.Module], str] = "auto",
) -> type[M]:
    """A subclass of LightningModule ``cls`` whose training loss carries ``weight_t * W2``.

    Args:
        cls: the LightningModule class to extend (it is not modified).
        head: dotted name of the submodule whose output is the online projection.
        weight: a number, a :class:`w2reg.Schedule`, or a callable taking the constructed
            model and returning one (for weights read from the model's own config).
        normalize: L2-normalise the projections before W2 (the paper does).
        gather_distributed: compute W2 on the global batch across ranks.
        name: the new class's name (default ``cls.__name__ + "W2"``).
        method: how W2's nuclear norm is computed (:data:`w2reg.METHODS`, default
            ``"auto"``, see :func:`w2reg.w2_uniformity`), or a callable taking the
            constructed model and returning one.

    The instance's regularizer is ``model.w2reg`` (a :class:`HeadRegularizer`).
    """
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise TypeError(f"cls must be an nn.Module subclass, got {cls!r}")
    if not callable(method):
        check_method(method)

    spec = {
        "cls": cls,
        "head": head,
        "weight": weight,
        "normalize": normalize,
        "gather_distributed": gather_distributed,
        "name": name,
    }

    class Regularized(cls):  # type: ignore[valid-type,misc]
        _w2reg_spec = spec

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # each instance gets its own copy of a schedule: schedules are stateful
            w = weight if isinstance(weight, (Schedule, int, float)) else weight(self)
            w = copy.deepcopy(w) if isinstance(w, Schedule) else w
            how = method(self) if callable(method) else method
            # object.__setattr__: keep the regularizer out of the module tree.
            object.__setattr__(
                self,
                "w2reg",
                HeadRegularizer(
                    self,
                    head,
                    w,
                    normalize=normalize,
                    gather_distributed=gather_distributed,
                    method=how,
                ),
            )

        def training_step(self, *args: Any, **kwargs: Any) -> Any:
            reg: HeadRegularizer = self.w2reg
            reg.begin(self)
            try:
                output = super().training_step(*args, **kwargs)
            except BaseException:
                reg.abort()
                raise
            if getattr(self, "automatic_optimization", True):
                term = reg.end(self)
                reg.log(self, term)
                return add_to_loss(output, term)
            # manual optimisation: the term went into manual_backward (below)
            left, applied = bool(reg._captured), reg._applied
            reg.abort()
            if left or not applied:
                raise RuntimeError(
                    f"w2reg: {type(self).__name__} uses manual optimisation "
                    "(automatic_optimization=False) and "
                    + (
                        f"computed {head!r} outputs after its last self.manual_backward(loss)"
                        if left
                        else f"called self.manual_backward(loss) after no {head!r} output"
                    )
                    + ": the W2 term is added to the loss given to manual_backward, so compute "
                    "the projections first, then call self.manual_backward(loss)"
                )
            return output

        def manual_backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
            """Lightning's ``manual_backward`` of ``loss + weight_t * W2``.

            With manual optimisation the step's return value is not differentiated, so the
            term of the projections captured since the previous call joins ``loss`` here.
            """
            reg: HeadRegularizer = self.w2reg
            if reg._active and reg._captured:
                term = reg.take(self)
                reg.log(self, term)
                reg._applied = True
                loss = loss + term.to(loss.dtype)
            return super().manual_backward(loss, *args, **kwargs)

        def __reduce_ex__(self, protocol: Any) -> Any:
            # A class made by the factory form (W2X = w2_regularized(X)) carries X's name and
            # module, where pickle would find the plain X: rebuild it from its spec instead.
            reduced = super().__reduce_ex__(protocol)
            klass = type(self)
            own_spec = klass.__dict__.get("_w2reg_spec")  # not a user's subclass of this class
            if own_spec is None or _importable(klass) or not isinstance(reduced, tuple):
                return reduced
            return (_new_instance, (own_spec,), *reduced[2:])

        def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
            super().on_save_checkpoint(checkpoint)
            checkpoint[CHECKPOINT_KEY] = self.w2reg.state_dict()

        def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
            super().on_load_checkpoint(checkpoint)
            if CHECKPOINT_KEY in checkpoint:
                self.w2reg.load_state_dict(checkpoint[CHECKPOINT_KEY])

    Regularized.__name__ = name or f"{cls.__name__}W2"
    Regularized.__qualname__ = Regularized.__name__
    Regularized.__module__ = cls.__module__
    Regularized.__doc__ = (
        f"{cls.__name__} with the W2 uniformity term on {head!r} (w2reg).\n\n{cls.__doc__ or ''}"
    )
    return Regularized


def _importable(klass: type) -> bool:
    """Whether pickle finds ``klass`` itself under its ``__module__`` and ``__qualname__``."""
    obj: Any = sys.modules.get(klass.__module__)
    for part in klass.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return obj is klass


_REBUILT: dict[bytes, type] = {}


def _new_instance(spec: dict[str, Any]) -> nn.Module:
    """An empty instance of ``regularize_class(**spec)`` for unpickling (state comes next).

    Classes are rebuilt once per distinct spec, so instances unpickled in one process share
    their class.
    """
    key = pickle.dumps(spec)
    klass = _REBUILT.get(key)
    if klass is None:
        klass = _REBUILT[key] = regularize_class(**spec)
    return klass.__new__(klass)
