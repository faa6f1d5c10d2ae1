"""Embed a held-out loader with a model: the one loop of the monitors and the example scripts.

No Lightning: any ``nn.Module`` and any iterable of batches. The loader may yield images,
``(images, targets, ...)`` or ``([view0, view1, ...], ...)``; with several views, views 0
and 1 are embedded (view 0 is measured, 0/1 give the alignment).

How the projections are found (first that applies):

1. ``embed_fn(model, images) -> (N, m)`` if given;
2. ``head`` (default ``"auto"``: ``projection_head`` for lightly-style models, ``projector``
   for solo-learn), looked up with ``w2reg.adapters.head.resolve_head`` (the one head lookup):
   ``model(images)`` runs with a forward hook on that submodule and its first output is
   used; if ``forward`` does not call the head (lightly-style models return backbone
   features), the head is applied to ``forward``'s output;
3. ``head=None`` (or no such submodule with ``"auto"``): ``model(images)`` itself (a tensor,
   or a dict's ``"z"``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from w2reg._validation import check_int

from .head import resolve_head

__all__ = ["AUTO_HEADS", "EmbedFn", "check_head", "embed_labelled", "embed_loader", "find_head"]

EmbedFn = Callable[[nn.Module, Tensor], Tensor]
Autocast = Callable[[], contextlib.AbstractContextManager[Any]]
#: The heads ``head="auto"`` looks for, in order (lightly's, solo-learn's).
AUTO_HEADS = ("projection_head", "projector")


def check_head(head: Any) -> str | None:
    """``head`` if it is ``None``, ``"auto"`` or a submodule's dotted name, else ``ValueError``."""
    if head is None or (isinstance(head, str) and head):
        return head
    raise ValueError(
        f"head must be 'auto', None or the dotted name of a submodule, got {head!r} "
        f"({type(head).__name__})"
    )


def find_head(model: nn.Module, head: str | None) -> nn.Module | None:
    """The projection submodule that ``head`` names (``"auto"``: the first of :data:`AUTO_HEADS`
    that ``model`` has, else ``None``; ``None``: no head)."""
    if check_head(head) is None:
        return None
    if head == "auto":
        for name in AUTO_HEADS:
            if isinstance(getattr(model, name, None), nn.Module):
                return resolve_head(model, name)
        return None
    return resolve_head(model, str(head))


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
    autocast: Autocast | None,
) -> tuple[list[Tensor], Tensor | None]:
    """The one embedding loop: per-view projections and, where every batch has them, targets."""
    max_samples = check_int(max_samples, "max_samples", minimum=2, optional=True)
    if embed_fn is not None and not callable(embed_fn):
        raise ValueError(f"embed_fn must be callable(model, images), got {embed_fn!r}")
    head_module = None if embed_fn is not None else find_head(model, head)
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
    autocast: Autocast | None = None,
) -> list[Tensor]:
    """Projections of the loader's images, one ``(N, m)`` float32 CPU tensor per view.

    The model is put in eval mode and restored to its previous mode afterwards; everything
    runs under ``torch.no_grad``. ``head=None`` embeds with ``model(images)`` itself
    (backbone features for lightly-style models). The rows come to the CPU batch by batch
    (one host synchronisation per batch of the held-out loader, none in training).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(8, 4))
        >>> loader = [(torch.randn(5, 8), torch.zeros(5)) for _ in range(3)]
        >>> views = embed_loader(model, loader, head=None)
        >>> len(views), tuple(views[0].shape)
        (1, (15, 4))
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
    autocast: Autocast | None = None,
) -> tuple[list[Tensor], Tensor]:
    """:func:`embed_loader` of a loader of ``(images, targets, ...)`` and the ``(N,)`` targets.

    For a kNN or a linear probe on frozen features: ``head=None`` gives ``model(images)``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> loader = [(torch.randn(5, 8), torch.arange(5)) for _ in range(2)]
        >>> (feats,), labels = embed_labelled(nn.Linear(8, 3), loader, head=None)
        >>> tuple(feats.shape), labels.tolist()
        ((10, 3), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
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
