"""The Lightning glue both Lightning bindings share: a LightningModule subclass with the term.

:func:`regularize_class` turns any LightningModule class (Lightning 1.9 ``pytorch_lightning``
or 2.x ``lightning``: only the hook names are used) into a subclass whose ``training_step``
runs between :meth:`~w2reg.adapters.head.HeadRegularizer.begin` and ``end`` of a
:class:`~w2reg.adapters.head.HeadRegularizer` (the one capture mechanism,
:mod:`w2reg.adapters.head`), adds ``weight_t * term`` to the returned loss (or to the loss
given to ``manual_backward``) and logs it. The criterion is not touched, so memory banks
advance exactly as before. It adds no parameters or buffers; the schedule's state rides in
the checkpoint under ``"w2reg"``.

Every setting -- head, weight, term, normalize, gather_distributed, method -- travels one
way: the class's *spec* (what :func:`regularize_class` was given), optionally overridden per
instance by ``options(model) -> {setting: value}`` (the ready lightly models read their
constructor arguments, solo-learn its cfg). The spec rebuilds a factory-made class when an
instance is unpickled, so a copy, a checkpoint or a ``ddp_spawn`` process computes exactly
what the original did.

This module contains no linear algebra: the math is :class:`w2reg.Regularizer`.
"""

from __future__ import annotations

import copy
import math
import pickle
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import Tensor, nn

from w2reg._methods import check_method
from w2reg._validation import check_bool
from w2reg.schedules import Schedule, WeightLike, as_schedule
from w2reg.terms import TermLike, as_term

from .head import HeadRegularizer

#: Keys logged by the adapters (``self.log``), per training step and per epoch, for W2.
LOG_W2 = "train_w2_uniformity"  #: the unweighted W2 of the step's online projections
LOG_WEIGHT = "train_w2_weight"  #: the weight ``a_t`` used in that step
LOG_TERM = "train_w2_loss"  #: ``a_t * W2``, the amount added to the loss
CHECKPOINT_KEY = "w2reg"

M = TypeVar("M", bound=nn.Module)
WeightSpec = WeightLike | Callable[[nn.Module], WeightLike]
#: ``options(model) -> {setting: value}``: per-instance settings (see :data:`SETTINGS`).
Options = Callable[[nn.Module], Mapping[str, Any]]

#: What :func:`regularize_class` takes per class and ``options(model)`` may override.
SETTINGS = ("head", "weight", "term", "term_name", "normalize", "gather_distributed", "method")


def log_keys(term_name: str) -> tuple[str, str, str]:
    """The keys a term is logged under: ``(value, weight, weight * value)``.

    W2 keeps its 0.1 keys (:data:`LOG_W2`, :data:`LOG_WEIGHT`, :data:`LOG_TERM`); any other
    term ``<name>`` logs ``train_<name>``, ``train_<name>_weight``, ``train_<name>_loss``.
    """
    if term_name == "w2":
        return LOG_W2, LOG_WEIGHT, LOG_TERM
    return f"train_{term_name}", f"train_{term_name}_weight", f"train_{term_name}_loss"


@dataclass(frozen=True)
class Settings:
    """The settings of one instance's regularizer, after ``options(model)`` and resolving."""

    head: str
    weight: WeightLike
    term: TermLike
    term_name: str | None
    normalize: bool
    gather_distributed: bool
    method: str

    def regularizer(self, model: nn.Module) -> HeadRegularizer:
        return HeadRegularizer(
            model,
            self.head,
            self.weight,
            term=self.term,
            normalize=self.normalize,
            gather_distributed=self.gather_distributed,
            method=self.method,
            name=self.term_name,
        )


def check_weight_spec(weight: Any, name: str = "weight") -> None:
    """Refuse, when a class is made, a weight that no instance could use.

    A number (``numbers.Real``, NumPy's too) or a :class:`w2reg.Schedule` is checked here; a
    callable (``weight(model) -> number or Schedule``) when an instance is built.
    """
    if isinstance(weight, Schedule) or (callable(weight) and not isinstance(weight, type)):
        return
    try:
        as_schedule(weight)
    except ValueError as err:
        raise ValueError(
            f"{name} must be a non-negative number, a w2reg Schedule or a callable "
            f"(model) -> one, got {weight!r} ({type(weight).__name__})"
        ) from err


def check_spec(spec: Mapping[str, Any]) -> None:
    """Check the class-level settings of a :func:`regularize_class` spec (ValueError)."""
    head = spec["head"]
    if not isinstance(head, str) or not head:
        raise ValueError(f"head must be the dotted name of a submodule, got {head!r}")
    check_weight_spec(spec["weight"])
    check_bool(spec["normalize"], "normalize")
    check_bool(spec["gather_distributed"], "gather_distributed")
    check_method(spec["method"])
    as_term(spec["term"], method=spec["method"], name=spec["term_name"])
    options = spec["options"]
    if options is not None and not callable(options):
        raise ValueError(f"options must be None or callable(model) -> mapping, got {options!r}")


def resolve_settings(model: nn.Module, spec: Mapping[str, Any]) -> Settings:
    """The instance's settings: the spec, ``options(model)`` over it, a callable weight
    called, a schedule copied (schedules are stateful: every instance gets its own)."""
    values = {key: spec[key] for key in SETTINGS}
    options = spec["options"]
    if options is not None:
        extra = dict(options(model))
        unknown = sorted(set(extra) - set(SETTINGS))
        if unknown:
            raise ValueError(f"options({type(model).__name__}) returned unknown keys {unknown}")
        values.update(extra)
    weight = values["weight"]
    if callable(weight) and not isinstance(weight, Schedule):
        weight = weight(model)
    try:
        schedule = as_schedule(weight)
    except ValueError as err:
        raise ValueError(f"the W2 weight of {type(model).__name__}: {err}") from err
    values["weight"] = copy.deepcopy(schedule) if schedule is weight else schedule
    values["normalize"] = check_bool(values["normalize"], "normalize")
    values["gather_distributed"] = check_bool(values["gather_distributed"], "gather_distributed")
    values["method"] = check_method(values["method"])
    return Settings(**values)


def planned_epochs(trainer: Any) -> int | None:
    """The run's length in epochs: ``trainer.max_epochs``, else derived from ``max_steps``.

    A Trainer given only ``max_steps`` has ``max_epochs == -1``; then the horizon is
    ``ceil(max_steps / optimizer steps per epoch)`` (:func:`steps_per_epoch`). ``None`` when
    neither is known (an unbounded run, or a loader without a length): an epoch-based decay
    then has no horizon and says so.
    """
    max_epochs = getattr(trainer, "max_epochs", None)
    if isinstance(max_epochs, int) and max_epochs > 0:
        return max_epochs
    max_steps = getattr(trainer, "max_steps", None)
    per_epoch = steps_per_epoch(trainer)
    if not isinstance(max_steps, int) or max_steps <= 0 or per_epoch is None:
        return None
    return max(math.ceil(max_steps / per_epoch), 1)


def steps_per_epoch(trainer: Any, batches: float | None = None) -> int | None:
    """Optimizer steps per epoch: ``ceil(batches / accumulate_grad_batches)``.

    ``batches`` defaults to ``trainer.num_training_batches``; ``None`` when it is not a
    finite positive number (no loader yet, or one without a length). One home for this
    count (the W2 horizon and the ready models' learning-rate schedule).
    """
    if batches is None:
        batches = getattr(trainer, "num_training_batches", None)
    if not isinstance(batches, (int, float)) or not math.isfinite(batches) or batches <= 0:
        return None
    accumulate = max(int(getattr(trainer, "accumulate_grad_batches", 1) or 1), 1)
    return max(math.ceil(batches / accumulate), 1)


def position(model: nn.Module) -> tuple[int, int | None] | None:
    """``(epoch, planned epochs)`` of the run ``model`` is in, for epoch-based weights.

    Under a Trainer: its ``current_epoch`` and :func:`planned_epochs`. Outside one: the
    model's own ``training_progress()`` if it has one (the ready lightly models count their
    steps in a plain loop), else ``None`` (the schedule stays where it was set).
    """
    trainer = getattr(model, "_trainer", None)
    if trainer is not None:
        return int(trainer.current_epoch), planned_epochs(trainer)
    progress = getattr(model, "training_progress", None)
    return progress() if callable(progress) else None


def add_to_loss(output: Any, term: Tensor) -> Any:
    """Add ``term`` to what a ``training_step`` returned: a tensor or a dict with ``"loss"``."""
    if isinstance(output, Tensor):
        return output + term.to(output.dtype)
    if isinstance(output, Mapping) and isinstance(output.get("loss"), Tensor):
        out = dict(output)
        out["loss"] = out["loss"] + term.to(out["loss"].dtype)
        return out
    raise TypeError(
        "w2reg: training_step must return a loss tensor, a dict with a 'loss' tensor or None "
        f"(skip the batch), got {type(output).__name__}"
    )


def log_term(model: Any, reg: HeadRegularizer, term: Tensor) -> None:
    """Log the term's value, weight and ``weight * value`` with ``model.log``.

    Per step and per epoch; ``batch_size`` is the number of rows the term was computed on
    (all ranks' with gathering), so Lightning never has to guess it from the batch (lightly's
    batches are ambiguous lists of views).
    """
    if getattr(model, "_trainer", None) is None:
        return
    loss = reg.loss
    assert loss.last_value is not None and loss.last_weight is not None
    value_key, weight_key, term_key = log_keys(loss.term.name)
    kwargs = {"on_step": True, "on_epoch": True, "sync_dist": True, "batch_size": reg.last_rows}
    model.log(value_key, loss.last_value.float(), prog_bar=True, **kwargs)
    model.log(weight_key, float(loss.last_weight), **kwargs)
    model.log(term_key, term.detach().float(), **kwargs)


def regularize_class(
    cls: type[M],
    *,
    head: str,
    weight: WeightSpec = 1.0,
    term: TermLike = "w2",
    term_name: str | None = None,
    normalize: bool = True,
    gather_distributed: bool = False,
    method: str = "auto",
    options: Options | None = None,
    name: str | None = None,
) -> type[M]:
    """A subclass of LightningModule ``cls`` whose training loss carries ``weight_t * term``.

    Args:
        cls: the LightningModule class to extend (it is not modified).
        head: dotted name of the submodule whose output is the online projection (looked up
            again at every step: a head replaced after construction is followed).
        weight: a number, a :class:`w2reg.Schedule`, or a callable taking the constructed
            model and returning one (for weights read from the model's own config).
        term: ``"w2"`` (default), ``"lu"`` or ``fn(z) -> scalar`` (:mod:`w2reg.terms`).
        term_name: a callable term's name in the logs.
        normalize: L2-normalise the projections first (``"w2"``, ``"lu"``; the paper does).
        gather_distributed: compute the term on the global batch across ranks.
        method: how W2's nuclear norm is computed (:data:`w2reg.METHODS`).
        options: ``options(model) -> {setting: value}`` overriding any of the above per
            instance (keys: :data:`SETTINGS`); a module-level function, so classes pickle.
        name: the new class's name (default ``cls.__name__ + "W2"``).

    The instance's regularizer is ``model.w2reg`` (a
    :class:`~w2reg.adapters.head.HeadRegularizer`). Decorating a class that is already
    regularized (or one of its subclasses) gives one term, with the outer class's settings.

    Raises:
        TypeError: ``cls`` is not an ``nn.Module`` class.
        ValueError: a setting is invalid (the message names it), when the class is made.
    """
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise TypeError(f"cls must be an nn.Module subclass, got {cls!r}")
    spec: dict[str, Any] = {
        "cls": cls,
        "head": head,
        "weight": weight,
        "term": term,
        "term_name": term_name,
        "normalize": normalize,
        "gather_distributed": gather_distributed,
        "method": method,
        "options": options,
        "name": name,
    }
    check_spec(spec)

    class Regularized(cls):  # type: ignore[valid-type,misc]
        _w2reg_spec = spec

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            reg = resolve_settings(self, spec).regularizer(self)
            inner = self.__dict__.get("w2reg")
            if isinstance(inner, HeadRegularizer):  # cls was regularized already: ours wins
                inner.remove()
            # object.__setattr__: keep the regularizer out of the module tree
            object.__setattr__(self, "w2reg", reg)

        def training_step(self, *args: Any, **kwargs: Any) -> Any:
            reg: HeadRegularizer = self.w2reg
            if reg.active:  # a regularized class inside a regularized class: one capture
                return super().training_step(*args, **kwargs)
            where = position(self)
            if where is not None:
                reg.set_epoch(*where)
            reg.begin()
            try:
                output = super().training_step(*args, **kwargs)
            except BaseException:
                reg.abort()
                raise
            if getattr(self, "automatic_optimization", True):
                if output is None:  # Lightning's "skip this batch"
                    reg.abort()
                    return None
                term = reg.end()
                log_term(self, reg, term)
                return add_to_loss(output, term)
            # manual optimisation: the term went into manual_backward (below)
            left, applied = reg.pending, reg.taken > 0
            reg.abort()
            if left or not applied:
                raise RuntimeError(
                    f"w2reg: {type(self).__name__} uses manual optimisation "
                    "(automatic_optimization=False) and "
                    + (
                        f"computed {reg.head_name!r} outputs after its last "
                        "self.manual_backward(loss)"
                        if left
                        else f"called self.manual_backward(loss) after no {reg.head_name!r} output"
                    )
                    + ": the term is added to the loss given to manual_backward, so compute "
                    "the projections first, then call self.manual_backward(loss)"
                )
            return output

        def manual_backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
            """Lightning's ``manual_backward`` of ``loss + weight_t * term``.

            With manual optimisation the step's return value is not differentiated, so the
            term of the projections captured since the previous call joins ``loss`` here.
            """
            reg: HeadRegularizer = self.w2reg
            if reg.active and reg.pending:
                term = reg.take()
                log_term(self, reg, term)
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
            return (_new_instance, (_ClassRef(klass, own_spec),), *reduced[2:])

        def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
            super().on_save_checkpoint(checkpoint)
            checkpoint[CHECKPOINT_KEY] = self.w2reg.state_dict()

        def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
            super().on_load_checkpoint(checkpoint)
            if CHECKPOINT_KEY in checkpoint:  # the saved settings and schedule position
                object.__setattr__(self, "w2reg", self.w2reg.restored(checkpoint[CHECKPOINT_KEY]))

    Regularized.__name__ = name or f"{cls.__name__}W2"
    Regularized.__qualname__ = Regularized.__name__
    Regularized.__module__ = cls.__module__
    Regularized.__doc__ = (
        f"{cls.__name__} with a regularizer term on {head!r} (w2reg).\n\n{cls.__doc__ or ''}"
    )
    return Regularized


def _importable(klass: type) -> bool:
    """Whether pickle finds ``klass`` itself under its ``__module__`` and ``__qualname__``."""
    obj: Any = sys.modules.get(klass.__module__)
    for part in klass.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return obj is klass


class _ClassRef:
    """A factory-made class, as a copy or a pickle needs it.

    ``copy.deepcopy`` (``AveragedModel``, EMA copies) keeps the class itself, whatever its
    settings hold; pickling (``torch.save``, ``ddp_spawn``) stores the spec, from which the
    unpickling process rebuilds the class, and says what to change when a setting cannot be
    pickled (a lambda weight, a class defined inside a function).
    """

    def __init__(self, klass: type | None, spec: dict[str, Any]) -> None:
        self.klass = klass
        self.spec = spec

    def __deepcopy__(self, memo: dict[int, Any]) -> _ClassRef:
        return self

    def __copy__(self) -> _ClassRef:
        return self

    def __reduce__(self) -> Any:
        spec = _portable(self.spec)
        try:
            pickle.dumps(spec)
        except (pickle.PicklingError, AttributeError, TypeError) as err:
            name = getattr(self.klass, "__name__", "the class")
            raise pickle.PicklingError(
                f"w2reg: an instance of {name} cannot be pickled: the settings its class was "
                f"made with cannot ({err}). Define the weight function / term / class at the "
                "module level (a named def, not a lambda or a class inside a function), or "
                "make the regularized class with the decorator on a module-level class"
            ) from err
        return (_class_ref_from_spec, (spec,))

    def get(self) -> type:
        if self.klass is None:
            self.klass = _rebuilt(self.spec)
        return self.klass


def _portable(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` as it pickles: a ``cls`` that is itself factory-made (``w2_regularized`` of a
    ``w2_regularized`` class, not importable by name) travels as its own :class:`_ClassRef`."""
    cls = spec["cls"]
    inner = cls.__dict__.get("_w2reg_spec") if isinstance(cls, type) else None
    if inner is None or _importable(cls):
        return spec
    return {**spec, "cls": _ClassRef(cls, inner)}


_REBUILT: dict[bytes, type] = {}


def _rebuilt(spec: dict[str, Any]) -> type:
    """``regularize_class(**spec)``, once per distinct spec in a process (instances unpickled
    in one process share their class); a ``cls`` given as a :class:`_ClassRef` is rebuilt
    first."""
    key = pickle.dumps(spec)
    klass = _REBUILT.get(key)
    if klass is None:
        cls = spec["cls"]
        if isinstance(cls, _ClassRef):
            spec = {**spec, "cls": cls.get()}
        klass = _REBUILT[key] = regularize_class(**spec)
    return klass


def _class_ref_from_spec(spec: dict[str, Any]) -> _ClassRef:
    return _ClassRef(None, spec)


def _new_instance(ref: _ClassRef | dict[str, Any]) -> nn.Module:
    """An empty instance of the referenced class, for unpickling and copies (state next)."""
    klass = _rebuilt(ref) if isinstance(ref, dict) else ref.get()
    return klass.__new__(klass)
