"""A Lightning callback that watches uniformity and dimensional collapse during training.

:class:`UniformityMonitor` works with any LightningModule (a lightly-style model, a
solo-learn method, your own) whether or not it uses the W2 regularizer: every
``every_n_epochs`` training epochs it embeds a held-out loader (``torch.no_grad``, eval mode,
the previous train/eval mode restored afterwards) and logs

=================================  ========================================================
key (``prefix`` = ``uniformity/``)  value, on the L2-normalised projections ``z`` (N, m)
=================================  ========================================================
``uniformity/w2``                   :func:`w2reg.w2_uniformity` (lower = more uniform)
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

A steadily rising ``w2`` with a falling ``effective_rank`` and a spectrum whose tail drops
by orders of magnitude is dimensional collapse coming (Fang et al., ICLR 2024, Sec. 5).

How the projections are found (first that applies):

1. ``embed_fn(model, images) -> (N, m)`` if given;
2. ``head`` (default ``"auto"``: ``projection_head`` for lightly-style models, ``projector``
   for solo-learn): ``model(images)`` runs with a forward hook on that submodule and its
   first output is used; if ``forward`` does not call the head (lightly-style models return
   backbone features), the head is applied to ``forward``'s output;
3. ``head=None`` (or no such submodule with ``"auto"``): ``model(images)`` itself (a tensor,
   or a dict's ``"z"``).

The loader may yield images, ``(images, targets, ...)`` or ``([view0, view1, ...], ...)``;
with several views, view 0 is measured and views 0/1 give the alignment.

The math is the core's (:mod:`w2reg`); nothing here does linear algebra. Imports
``lightning`` (2.x) when present, else ``pytorch_lightning`` (1.9+); for a Trainer from the
other package use :func:`monitor_class_for`.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import w2reg
from w2reg._methods import check_method

from ._imports import lightning

_Callback = lightning("w2reg.adapters.callbacks").Callback

__all__ = [
    "KEYS",
    "UniformityMonitor",
    "embed_labelled",
    "embed_loader",
    "epoch_due",
    "measure",
    "monitor_class_for",
    "spectrum_figure",
]

#: The scalar keys logged (after the prefix) and their meaning.
KEYS = {
    "w2": "W2 uniformity of the normalised projections (lower = more uniform)",
    "lu": "Wang-Isola uniformity L_U, t=2 (lower = more uniform)",
    "effective_rank": "RankMe effective rank of the normalised projections",
    "sv_top": "largest singular value of the centred normalised projections",
    "sv_tail": "smallest singular value of the centred normalised projections",
    "alignment": "mean squared distance of the normalised projections of views 0 and 1",
}

EmbedFn = Callable[[nn.Module, Tensor], Tensor]
_AUTO_HEADS = ("projection_head", "projector")


def _images(batch: Any) -> list[Tensor]:
    """The view(s) of the images in a batch: ``x``, ``(x, ...)`` or ``([x0, x1, ...], ...)``."""
    first = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if isinstance(first, Tensor):
        return [first]
    if isinstance(first, (tuple, list)) and first and all(isinstance(v, Tensor) for v in first):
        return list(first)
    raise ValueError(
        "the monitor's dataloader must yield images, (images, ...) or ([views], ...), "
        f"got a batch whose first element is {type(first).__name__}"
    )


def _resolve_head(model: nn.Module, head: str | None) -> nn.Module | None:
    if head is None:
        return None
    if head == "auto":
        for name in _AUTO_HEADS:
            module = getattr(model, name, None)
            if isinstance(module, nn.Module):
                return module
        return None
    try:
        return model.get_submodule(head)
    except AttributeError:
        children = [name for name, _ in model.named_children()]
        raise ValueError(
            f"head={head!r}: {type(model).__name__} has no submodule of that name; its "
            f"top-level modules are {children}"
        ) from None


def _project(model: nn.Module, x: Tensor, head: nn.Module | None) -> Tensor:
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if not captured:
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, Tensor):
                captured.append(out)

    handle = head.register_forward_hook(hook) if head is not None else None
    try:
        out = model(x)
    finally:
        if handle is not None:
            handle.remove()
    if captured:
        return captured[0]
    if isinstance(out, dict):
        out = out.get("z", out.get("feats"))
        if isinstance(out, (tuple, list)):
            out = out[0]
    if not isinstance(out, Tensor):
        raise ValueError(
            f"{type(model).__name__}(images) returned {type(out).__name__}; give the "
            "monitor embed_fn=callable(model, images) -> (N, m) tensor"
        )
    out = out.flatten(start_dim=1)
    return head(out) if head is not None else out


def _targets(batch: Any, n: int) -> Tensor | None:
    """The batch's targets ``batch[1]`` as a 1-d CPU tensor of ``n`` rows, if it has them."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        return None
    try:
        targets = torch.as_tensor(batch[1])
    except (TypeError, ValueError, RuntimeError):
        return None
    return targets.reshape(-1)[:n].cpu() if targets.numel() >= n else None


@torch.no_grad()
def _embed(
    model: nn.Module,
    dataloader: Iterable[Any],
    *,
    head: str | None,
    embed_fn: EmbedFn | None,
    max_samples: int | None,
    device: torch.device | str | None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] | None,
) -> tuple[list[Tensor], Tensor | None]:
    """The one embedding loop: per-view projections and, where every batch has them, targets."""
    if max_samples is not None and max_samples < 2:
        raise ValueError(f"max_samples must be None or >= 2, got {max_samples!r}")
    head_module = None if embed_fn is not None else _resolve_head(model, head)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    ctx = autocast or contextlib.nullcontext
    was_training = model.training
    model.eval()
    chunks: list[list[Tensor]] = []
    targets: list[Tensor] | None = []
    seen = 0
    try:
        for batch in dataloader:
            views = _images(batch)
            if max_samples is not None:
                views = [v[: max_samples - seen] for v in views]
            outs = []
            for v in views[:2]:
                v = v.to(device, non_blocking=True)
                with ctx():
                    z = (
                        embed_fn(model, v)
                        if embed_fn is not None
                        else _project(model, v, head_module)
                    )
                if not isinstance(z, Tensor) or z.dim() < 2:
                    raise ValueError(
                        "projections must be a (N, m) tensor, got "
                        f"{tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}"
                    )
                outs.append(z.flatten(start_dim=1).float().cpu())
            chunks.append(outs)
            if targets is not None:
                t = _targets(batch, outs[0].shape[0])
                targets = None if t is None else [*targets, t]
            seen += outs[0].shape[0]
            if max_samples is not None and seen >= max_samples:
                break
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("the monitor's dataloader yielded no batches")
    n_views = min(len(c) for c in chunks)
    views_out = [torch.cat([c[i] for c in chunks]) for i in range(n_views)]
    return views_out, None if targets is None else torch.cat(targets)


def embed_loader(
    model: nn.Module,
    dataloader: Iterable[Any],
    *,
    head: str | None = "auto",
    embed_fn: EmbedFn | None = None,
    max_samples: int | None = None,
    device: torch.device | str | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> list[Tensor]:
    """Projections of the loader's images, one ``(N, m)`` float32 CPU tensor per view.

    The model is put in eval mode and restored to its previous mode afterwards.
    ``head=None`` embeds with ``model(images)`` itself (backbone features for lightly-style
    models).
    """
    views, _ = _embed(
        model,
        dataloader,
        head=head,
        embed_fn=embed_fn,
        max_samples=max_samples,
        device=device,
        autocast=autocast,
    )
    return views


def embed_labelled(
    model: nn.Module,
    dataloader: Iterable[Any],
    *,
    head: str | None = "auto",
    embed_fn: EmbedFn | None = None,
    max_samples: int | None = None,
    device: torch.device | str | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> tuple[list[Tensor], Tensor]:
    """:func:`embed_loader` of a loader of ``(images, targets, ...)`` and the ``(N,)`` targets.

    For a kNN or a linear probe on frozen features: ``head=None`` gives ``model(images)``.

    Example:
        >>> (feats,), labels = embed_labelled(model, test_loader, head=None)
    """
    views, targets = _embed(
        model,
        dataloader,
        head=head,
        embed_fn=embed_fn,
        max_samples=max_samples,
        device=device,
        autocast=autocast,
    )
    if targets is None:
        raise ValueError(
            "embed_labelled needs batches of (images, targets, ...) with one target per image"
        )
    return views, targets


def epoch_due(trainer: Any, every_n_epochs: int) -> bool:
    """Whether the epoch that just ended is a measuring one: every n-th, and the last.

    ``trainer.current_epoch`` (0-based) ends a multiple of ``every_n_epochs`` epochs, or is
    the trainer's last (``max_epochs``; a trainer without ``max_epochs`` has no last).
    """
    epoch = int(trainer.current_epoch)
    max_epochs = getattr(trainer, "max_epochs", None)
    last = isinstance(max_epochs, int) and max_epochs > 0 and epoch + 1 >= max_epochs
    return (epoch + 1) % every_n_epochs == 0 or last


def measure(
    views: list[Tensor], *, lu_max_samples: int | None = 10_000, w2_method: str = "auto"
) -> dict[str, Any]:
    """Uniformity metrics of ``views[0]`` (and alignment of views 0/1 when there are two).

    Returns the scalars of :data:`KEYS` as floats and ``"spectrum"``, the singular values
    (descending) as a list. ``L_U`` needs ``O(N^2)`` memory: it uses the first
    ``lu_max_samples`` rows (``None``: all). ``w2_method`` is passed to
    :func:`w2reg.w2_uniformity` (the projections are measured in float64, for which
    ``"auto"`` is the exact method).
    """
    z = views[0]
    if z.shape[0] < 2:
        raise ValueError(f"need at least 2 embeddings to measure uniformity, got {tuple(z.shape)}")
    zn = F.normalize(z.double(), dim=1)
    lu_rows = zn if lu_max_samples is None else zn[:lu_max_samples]
    spectrum = w2reg.singular_values(zn)
    out: dict[str, Any] = {
        "w2": float(w2reg.w2_uniformity(zn, method=w2_method)),
        "lu": float(w2reg.wang_isola_uniformity(lu_rows)),
        "effective_rank": float(w2reg.effective_rank(zn)),
        "sv_top": float(spectrum[0]),
        "sv_tail": float(spectrum[-1]),
    }
    if len(views) > 1 and views[1].shape == z.shape:
        out["alignment"] = float(w2reg.alignment(z, views[1]))
    out["spectrum"] = spectrum.tolist()
    out["n_samples"] = int(z.shape[0])
    return out


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
        save_dir: str | Path | None = None,
        on_train_start: bool = False,
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
            prefix: prepended to every key (default ``"uniformity/"``).
            log_images: send the spectrum figure to TensorBoard loggers.
            save_dir: also write the spectrum PNG there after each measurement.
            on_train_start: also measure once before training (epoch ``-1`` in history).
        """
        super().__init__()
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive integer, got {every_n_epochs!r}")
        if embed_fn is not None and not callable(embed_fn):
            raise ValueError(f"embed_fn must be callable(model, images), got {embed_fn!r}")
        self.dataloader = dataloader
        self.every_n_epochs = every_n_epochs
        self.head = head
        self.embed_fn = embed_fn
        self.max_samples = max_samples
        self.lu_max_samples = lu_max_samples
        self.w2_method = check_method(w2_method, "w2_method")
        self.prefix = prefix
        self.log_images = log_images
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.measure_on_train_start = on_train_start
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
        self._figures(trainer, result)

    def _figures(self, trainer: Any, result: dict[str, Any]) -> None:
        image_loggers = _figure_loggers(trainer) if self.log_images else []
        want_tb = bool(image_loggers)
        if not want_tb and self.save_dir is None:
            return
        try:
            fig = spectrum_figure(
                result["spectrum"],
                title=f"epoch {result['epoch']}: W2={result['w2']:.3f}, "
                f"erank={result['effective_rank']:.1f}",
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
    """Logs W2, L_U, effective rank and the spectrum of held-out projections during training.

    See the module docstring for the keys and how projections are found.

    Example:
        >>> monitor = UniformityMonitor(val_loader, every_n_epochs=5)
        >>> Trainer(max_epochs=100, callbacks=[monitor]).fit(model, train_loader)
        >>> monitor.last["w2"], monitor.last["effective_rank"]
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
