"""A Lightning callback that watches uniformity and dimensional collapse during training.

:class:`UniformityMonitor` works with any LightningModule (a lightly-style model, a
solo-learn method, your own) whether or not it uses the W2 regularizer: every
``every_n_epochs`` training epochs it embeds a held-out loader (``torch.no_grad``, eval mode,
the previous train/eval mode restored afterwards; :mod:`w2reg.adapters.embedding`) and logs
what :func:`w2reg.metrics.measure` gives:

=================================  ========================================================
key (``prefix`` = ``uniformity/``)  value, on the L2-normalised projections ``z`` (N, m)
=================================  ========================================================
``uniformity/w2``                   :func:`w2reg.w2_uniformity` (lower = more uniform)
``uniformity/w2_floor``             :func:`w2reg.w2_floor` ``(N, m)``: what a truly uniform
                                    sample of ``N`` rows scores, the best ``N`` rows can show
``uniformity/w2_above_floor``       ``w2 - w2_floor`` (about 0 for a uniform embedding)
``uniformity/lu``                   :func:`w2reg.wang_isola_uniformity`, ``t = 2``
``uniformity/effective_rank``       :func:`w2reg.effective_rank` (RankMe), in ``[1, m]``
``uniformity/sv_top``               largest singular value (:func:`w2reg.singular_values`)
``uniformity/sv_tail``              smallest singular value
``uniformity/alignment``            :func:`w2reg.alignment` of views 0 and 1, only when the
                                    loader yields several views per image
=================================  ========================================================

with ``pl_module.log(..., on_epoch=True)`` (so they reach every logger, the progress bar's
metrics and ``trainer.callback_metrics``; ``ModelCheckpoint`` can monitor them). The whole
spectrum goes to a figure: loggers whose ``experiment`` has ``add_figure`` (TensorBoard's
``SummaryWriter``) get it under ``uniformity/spectrum``; other loggers are skipped quietly;
``save_dir`` also writes it to ``spectrum_epoch{E:04d}.png`` (``spectrum_start.png`` for
the measurement before training). The numbers of every measurement stay in
:attr:`UniformityMonitor.history` (and the last one in :attr:`UniformityMonitor.last`).

Collapse alarm: with ``collapse_fraction=f`` the monitor warns once (a
:class:`CollapseWarning`, on the global-zero rank) at the first measurement whose effective
rank is below ``f * min(N, m)`` (the most it can be), and keeps that epoch in
:attr:`UniformityMonitor.collapse_epoch`. A steadily rising ``w2`` with a falling
``effective_rank`` and a spectrum whose tail drops by orders of magnitude is dimensional
collapse coming (Fang et al., ICLR 2024, Sec. 5).

The monitor has no per-step hooks: nothing of it runs, or synchronises the host with the
device, inside a training step. Nothing here does linear algebra (the core does). Imports
``lightning`` (2.x) when present, else ``pytorch_lightning`` (1.9+); for a Trainer from the
other package use :func:`monitor_class_for`. The embedding loop (:func:`embed_loader`,
:func:`embed_labelled`) and the metrics (:func:`measure`, :data:`KEYS`) live in
:mod:`w2reg.adapters.embedding` and :mod:`w2reg.metrics` and are importable from here too.
"""

from __future__ import annotations

import importlib
import numbers
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from w2reg._methods import check_method
from w2reg._validation import check_bool, check_int, check_positive_int
from w2reg.metrics import KEYS, measure

from ._imports import lightning
from .embedding import EmbedFn, check_head, embed_labelled, embed_loader

_Callback = lightning("w2reg.adapters.callbacks").Callback

__all__ = [
    "KEYS",
    "CollapseWarning",
    "UniformityMonitor",
    "embed_labelled",
    "embed_loader",
    "epoch_due",
    "measure",
    "monitor_class_for",
    "spectrum_figure",
]


class CollapseWarning(UserWarning):
    """The monitored effective rank fell below the given fraction of its maximum."""


def epoch_due(trainer: Any, every_n_epochs: int) -> bool:
    """Whether the epoch that just ended is a measuring one: every n-th, and the last.

    ``trainer.current_epoch`` (0-based) ends a multiple of ``every_n_epochs`` epochs, or is
    the trainer's last (``max_epochs``; a trainer without ``max_epochs`` has no last).
    """
    epoch = int(trainer.current_epoch)
    max_epochs = getattr(trainer, "max_epochs", None)
    last = isinstance(max_epochs, int) and max_epochs > 0 and epoch + 1 >= max_epochs
    return (epoch + 1) % every_n_epochs == 0 or last


def _check_loader(dataloader: Any) -> Iterable[Any]:
    if isinstance(dataloader, (str, bytes)) or not isinstance(dataloader, Iterable):
        raise ValueError(
            "dataloader must be an iterable of batches (a DataLoader, a list of batches), "
            f"got {dataloader!r} ({type(dataloader).__name__})"
        )
    return dataloader


def _check_fraction(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise ValueError(
            f"collapse_fraction must be None or a number in (0, 1], got {value!r} "
            f"({type(value).__name__})"
        )
    return float(value)


def spectrum_figure(spectrum: list[float], *, title: str = "") -> Any:
    """A matplotlib figure of one spectrum (log scale) with the uniform target ``1/sqrt(m)``.

    A bare :class:`matplotlib.figure.Figure` (not pyplot): it saves and renders without a
    display, and the user's matplotlib backend is left as it is.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), dpi=100)
    ax = fig.add_subplot()
    ax.semilogy(range(1, len(spectrum) + 1), [max(s, 1e-8) for s in spectrum], marker=".")
    ax.axhline(len(spectrum) ** -0.5, color="grey", ls="--", lw=1, label="uniform 1/sqrt(m)")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


class _UniformityMonitorMixin:
    """The monitor's behaviour; combined with a Lightning ``Callback`` base below."""

    def __init__(
        self,
        dataloader: Iterable[Any],
        *,
        every_n_epochs: int = 1,
        head: str | None = "auto",
        embed_fn: EmbedFn | None = None,
        max_samples: int | None = None,
        lu_max_samples: int | None = 10_000,
        w2_method: str = "auto",
        prefix: str = "uniformity/",
        log_images: bool = True,
        save_dir: str | os.PathLike[str] | None = None,
        on_train_start: bool = False,
        collapse_fraction: float | None = None,
    ) -> None:
        """
        Args:
            dataloader: held-out data (not shuffled, no random augmentation, unless you want
                views for the alignment).
            every_n_epochs: measure after every n-th training epoch (and after the last).
            head: the projection submodule (``"auto"``, a dotted name, or ``None`` for
                ``model(images)`` itself); ignored with ``embed_fn``.
            embed_fn: ``callable(model, images) -> (N, m)`` projections.
            max_samples: embed at most this many images (``None``: the whole loader).
            lu_max_samples: rows used for ``L_U`` (``O(N^2)`` memory).
            w2_method: how the logged W2 is computed (see :func:`w2reg.w2_uniformity`).
            prefix: prepended to every key (default ``"uniformity/"``; ``""``: bare keys).
            log_images: send the spectrum figure to TensorBoard loggers.
            save_dir: also write the spectrum PNG there after each measurement.
            on_train_start: also measure once before training (epoch ``-1`` in history).
            collapse_fraction: warn once (:class:`CollapseWarning`) when the effective rank
                falls below this fraction of ``min(N, m)``; ``None``: no alarm.

        Every argument is checked here (a ``ValueError`` naming it), not at the first
        measurement.
        """
        super().__init__()
        if not isinstance(prefix, str):
            raise ValueError(
                f'prefix must be a string ("" for bare keys), got {prefix!r} '
                f"({type(prefix).__name__})"
            )
        if embed_fn is not None and not callable(embed_fn):
            raise ValueError(f"embed_fn must be callable(model, images), got {embed_fn!r}")
        if save_dir is not None and not isinstance(save_dir, (str, os.PathLike)):
            raise ValueError(
                f"save_dir must be None or a path, got {save_dir!r} ({type(save_dir).__name__})"
            )
        self.dataloader = _check_loader(dataloader)
        self.every_n_epochs = check_positive_int(every_n_epochs, "every_n_epochs")
        self.head = check_head(head)
        self.embed_fn = embed_fn
        self.max_samples = check_int(max_samples, "max_samples", minimum=2, optional=True)
        self.lu_max_samples = check_int(lu_max_samples, "lu_max_samples", minimum=2, optional=True)
        self.w2_method = check_method(w2_method, "w2_method")
        self.prefix = prefix
        self.log_images = check_bool(log_images, "log_images")
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.measure_on_train_start = check_bool(on_train_start, "on_train_start")
        self.collapse_fraction = _check_fraction(collapse_fraction)
        #: the epoch of the first measurement below the collapse threshold (``None``: none yet)
        self.collapse_epoch: int | None = None
        self.history: list[dict[str, Any]] = []

    @property
    def last(self) -> dict[str, Any] | None:
        """The latest measurement (keys of :data:`KEYS`, ``"spectrum"``, ``"epoch"``)."""
        return self.history[-1] if self.history else None

    def compute(self, pl_module: nn.Module, trainer: Any = None) -> dict[str, Any]:
        """Embed the loader with ``pl_module`` and return the metrics (no logging)."""
        autocast = None
        plugin = getattr(trainer, "precision_plugin", None) if trainer is not None else None
        if plugin is not None and hasattr(plugin, "forward_context"):
            autocast = plugin.forward_context
        views = embed_loader(
            pl_module,
            self.dataloader,
            head=self.head,
            embed_fn=self.embed_fn,
            max_samples=self.max_samples,
            autocast=autocast,
        )
        return measure(views, lu_max_samples=self.lu_max_samples, w2_method=self.w2_method)

    # -- Lightning hooks -------------------------------------------------------------------
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.measure_on_train_start and not getattr(trainer, "sanity_checking", False):
            self._run(trainer, pl_module, epoch=-1)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if epoch_due(trainer, self.every_n_epochs):
            self._run(trainer, pl_module, epoch=int(trainer.current_epoch))

    def _run(self, trainer: Any, pl_module: Any, *, epoch: int) -> None:
        result = self.compute(pl_module, trainer)
        result["epoch"] = epoch
        result["global_step"] = int(getattr(trainer, "global_step", 0))
        self.history.append(result)
        for key in KEYS:
            if key in result:
                pl_module.log(
                    f"{self.prefix}{key}",
                    float(result[key]),
                    on_step=False,
                    on_epoch=True,
                    sync_dist=False,
                )
        self._alarm(trainer, result)
        self._figures(trainer, result)

    def _alarm(self, trainer: Any, result: dict[str, Any]) -> None:
        if self.collapse_fraction is None or self.collapse_epoch is not None:
            return
        most = min(result["n_samples"], result["dim"])
        threshold = self.collapse_fraction * most
        if result["effective_rank"] >= threshold:
            return
        self.collapse_epoch = result["epoch"]
        if getattr(trainer, "is_global_zero", True):
            warnings.warn(
                f"w2reg UniformityMonitor: dimensional collapse at epoch {result['epoch']}: "
                f"effective rank {result['effective_rank']:.1f} is below collapse_fraction="
                f"{self.collapse_fraction:g} of min(N, m) = {most} ({threshold:.1f}); W2 "
                f"{result['w2']:.3f} (floor {result['w2_floor']:.3f}). Warned once.",
                CollapseWarning,
                stacklevel=2,
            )

    def _figures(self, trainer: Any, result: dict[str, Any]) -> None:
        image_loggers = _figure_loggers(trainer) if self.log_images else []
        want_tb = bool(image_loggers)
        if not want_tb and self.save_dir is None:
            return
        try:
            fig = spectrum_figure(
                result["spectrum"],
                title=f"epoch {result['epoch']}: W2={result['w2']:.3f} "
                f"(floor {result['w2_floor']:.3f}), erank={result['effective_rank']:.1f}",
            )
        except ImportError:  # no matplotlib: skip the picture quietly
            return
        if self.save_dir is not None and getattr(trainer, "is_global_zero", True):
            self.save_dir.mkdir(parents=True, exist_ok=True)
            epoch = result["epoch"]
            name = "spectrum_start.png" if epoch < 0 else f"spectrum_epoch{epoch:04d}.png"
            fig.savefig(self.save_dir / name)
        if want_tb:
            for lg in image_loggers:
                lg.experiment.add_figure(
                    f"{self.prefix}spectrum", fig, global_step=result["global_step"], close=False
                )


def _figure_loggers(trainer: Any) -> list[Any]:
    loggers = getattr(trainer, "loggers", None)
    if loggers is None:
        single = getattr(trainer, "logger", None)
        loggers = [] if single is None else [single]
    out = []
    for lg in loggers:
        try:
            experiment = lg.experiment
        except ImportError:  # e.g. TensorBoardLogger without tensorboard: no figures there
            continue
        if experiment is not None and callable(getattr(experiment, "add_figure", None)):
            out.append(lg)
    return out


class UniformityMonitor(_UniformityMonitorMixin, _Callback):
    """Logs W2 and its floor, L_U, effective rank and the spectrum of held-out projections.

    See the module docstring for the keys, :mod:`w2reg.adapters.embedding` for how the
    projections are found, and docs/monitoring.md for a run.

    Example::

        monitor = UniformityMonitor(val_loader, every_n_epochs=5, collapse_fraction=0.1)
        Trainer(max_epochs=100, callbacks=[monitor]).fit(model, train_loader)
        monitor.last["w2"], monitor.last["w2_floor"], monitor.last["effective_rank"]
    """


def monitor_class_for(package: str) -> type:
    """``UniformityMonitor`` built on the ``Callback`` of ``"lightning"`` or
    ``"pytorch_lightning"`` (for a Trainer from the package the default did not pick)."""
    if package not in ("lightning", "pytorch_lightning"):
        raise ValueError(f"package must be 'lightning' or 'pytorch_lightning', got {package!r}")
    base = importlib.import_module("lightning.pytorch" if package == "lightning" else package)
    callback = base.Callback
    if issubclass(UniformityMonitor, callback):
        return UniformityMonitor
    return type(
        "UniformityMonitor",
        (_UniformityMonitorMixin, callback),
        {"__doc__": UniformityMonitor.__doc__, "__module__": __name__},
    )
