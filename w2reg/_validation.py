"""Input checks shared by every public function: one place, one wording."""

from __future__ import annotations

import torch
from torch import Tensor


def check_embeddings(z: Tensor, name: str = "z", *, min_rows: int = 2) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``z`` is a finite ``(N, m)`` float tensor.

    ``N >= min_rows`` and ``m >= 1`` are required. The message always carries the shape and
    dtype that were received, so a user can tell which tensor of theirs was wrong.
    """
    if not isinstance(z, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, m), got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (N, m), got {z.dim()}-D tensor of shape "
            f"{tuple(z.shape)}"
        )
    n, m = z.shape
    if n < min_rows:
        raise ValueError(
            f"{name} needs at least {min_rows} rows (N >= {min_rows}), got shape {tuple(z.shape)}"
        )
    if m < 1:
        raise ValueError(f"{name} needs at least one column (m >= 1), got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise ValueError(
            f"{name} must have a floating dtype, got {z.dtype} with shape {tuple(z.shape)}"
        )
    if not bool(torch.isfinite(z).all()):
        raise ValueError(
            f"{name} contains NaN or Inf values (shape {tuple(z.shape)}, dtype {z.dtype})"
        )


def check_pair(z1: Tensor, z2: Tensor, names: tuple[str, str] = ("z1", "z2")) -> None:
    """Check two views of the same batch: each valid, and of one shape."""
    check_embeddings(z1, names[0], min_rows=1)
    check_embeddings(z2, names[1], min_rows=1)
    if z1.shape != z2.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape (N, m), got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}"
        )
