"""Functional form of the W2 uniformity loss and of the metrics that monitor uniformity.

Every function takes embeddings as an ``(N, m)`` floating tensor (``N`` samples, ``m``
features) and raises ``ValueError`` naming the argument, with the shape and dtype received,
when that is not what it got.

Reference: Fang, Li, Sun, Wang, "Rethinking the Uniformity Metric in Self-Supervised
Learning", ICLR 2024, arXiv:2403.00642.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._distributed import gather
from ._methods import check_method, resolve_method
from ._validation import check_bool, check_embeddings, check_pair
from ._w2core import autocast_off, unit_rows, w2_squared, work_dtype

__all__ = [
    "w2_uniformity",
    "normalize_rows",
    "wang_isola_uniformity",
    "alignment",
    "align_uniform_loss",
    "effective_rank",
    "singular_values",
]


def _safe_sqrt(x: Tensor) -> Tensor:
    """sqrt with gradient 0 (a subgradient) instead of Inf where ``x == 0``; NaN stays NaN
    (``x * 0``: an unchecked NaN input must not come out as W2 = 0)."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), x * 0)


def normalize_rows(x: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm, for any row scale; an all-zero row stays zero.

    The norms are accumulated in float64 (a float64 row is first divided by its largest
    absolute entry), which keeps the sum of squares away from under- and overflow: rows with
    norms from 1e-30 to 1e30 (float32) or 1e-300 to 1e300 (float64) all come out of unit
    norm; narrower dtypes are normalised in float32 and rounded once at the end. Unlike
    ``F.normalize(x, eps=1e-12)`` nothing is left unnormalised below a fixed norm (where that
    gradient reaches 1e12). A row that is exactly zero has no direction: it stays at the
    origin, and the normalisation passes its gradient through unchanged (as if its norm were
    1), so it stays finite. The dtype is kept. The same function as W2's own normalisation.
    """
    return unit_rows(x).to(x.dtype)


def _w2_float64(
    z: Tensor, *, normalize: bool, squared: bool, gather_distributed: bool, method: str
) -> Tensor:
    """W2 (or W2^2) of ``z`` as a float64 scalar, autograd-connected to ``z``."""
    check_embeddings(z, "z")
    check_bool(normalize, "normalize")
    check_bool(squared, "squared")
    check_bool(gather_distributed, "gather_distributed")
    method = resolve_method(check_method(method), z)
    with autocast_off(z.device):
        x = unit_rows(z) if normalize else z.to(work_dtype(z.dtype))
        if gather_distributed:
            x = gather(x)
        w2_sq = w2_squared(x.contiguous(), method).clamp_min(0.0)
        return w2_sq if squared else _safe_sqrt(w2_sq)


def w2_uniformity(
    z: Tensor,
    *,
    normalize: bool = True,
    squared: bool = False,
    gather_distributed: bool = False,
    method: str = "auto",
) -> Tensor:
    r"""Quadratic Wasserstein distance between the embeddings' Gaussian fit and N(0, I/m).

    With ``mu`` the mean of the rows of ``z`` and ``S = (z - mu)^T (z - mu) / N`` their
    covariance (divided by ``N``, not ``N - 1``), the closed form of W2 between Gaussians
    gives (Fang et al., ICLR 2024, Sec. 4)

    .. math::

        W_2 = \sqrt{\lVert\mu\rVert^2 + 1 + \operatorname{tr}(S)
              - \tfrac{2}{\sqrt{m}} \operatorname{tr}(S^{1/2})}

    ``N(0, I/m)`` approximates the uniform distribution on the unit sphere ``S^{m-1}``, so a
    lower value means more uniform embeddings; any collapse (constant or dimensional) raises
    it. Only ``tr(S^{1/2})`` is costly: the nuclear norm of ``X = (z - mu) / sqrt(N)``, whose
    gradient is the polar factor ``U V^T`` of ``X``. Everything else (row norms, ``mu``,
    ``tr S``, the square root) is accumulated in float64, with autocast disabled; the rows
    are held in float32 (float64 for float64 input).

    Args:
        z: ``(N, m)`` embeddings, ``N >= 2``. In training: the projector outputs of all views
            of the step, concatenated along the batch dimension.
        normalize: L2-normalise the rows first, as the paper trains and evaluates (any row
            scale is handled; an all-zero row stays at the origin, see
            :func:`normalize_rows`).
        squared: return ``W_2^2`` instead of ``W_2``.
        gather_distributed: with an initialised process group, compute on the rows of all
            ranks (gathered with gradients; every rank must hold the same ``N``, compared on
            the first call). A no-op without a process group.
        method: how ``||X||_*`` is computed, one of :data:`w2reg.METHODS`:

            * ``"exact"``: float64 eigendecomposition of the smaller Gram matrix with a
              closed-form backward; float64-accurate and collapse-safe (directions below
              1e-6 of the top singular value get a damped gradient).
            * ``"iterative"``: the polar factor from nine float32 matrix-product steps
              (minimax odd quintics, Amsel et al. 2025), TF32 off on CUDA; no eigensolver,
              no host synchronisation. W2 within 1e-4 relative of float64; gradient within
              1e-3 in every direction above 1e-3 of the top singular value, damped below
              about 1e-4 of it.
            * ``"eigh32"``: float32 eigendecomposition with float64 Rayleigh-quotient
              values, used only when float32 resolves the spectrum, else the exact result.
              Reads the spectrum on the host, so meant for CPUs.
            * ``"auto"`` (default): ``"exact"`` for float64 input, ``"eigh32"`` on CPU
              (``"exact"`` under ``torch.compile``), ``"iterative"`` on CUDA and other
              accelerators (the rule: :func:`w2reg._methods.resolve_method`; the
              measurements behind it: docs/speed.md).

    Returns:
        A scalar tensor of the dtype of ``z``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> z = torch.randn(512, 128)
        >>> round(float(w2_uniformity(z)), 2)  # the finite-sample floor of 512 rows in 128-D
        0.26
        >>> round(float(w2_uniformity(z[:, :1].repeat(1, 128))), 2)  # dimensional collapse
        1.35
        >>> round(float(w2_uniformity(z, method="iterative")), 2)  # matrix products only
        0.26
    """
    value = _w2_float64(
        z,
        normalize=normalize,
        squared=squared,
        gather_distributed=gather_distributed,
        method=method,
    )
    return value.to(z.dtype)


def wang_isola_uniformity(z: Tensor, *, t: float = 2.0, normalize: bool = True) -> Tensor:
    r"""Wang & Isola's uniformity loss ``L_U`` (ICML 2020), the metric W2 is compared with.

    .. math:: L_U = \log \frac{2}{N(N-1)} \sum_{i<j} e^{-t \lVert z_i - z_j \rVert^2}

    on L2-normalised rows. Lower is more uniform; it is bounded below by ``-4t`` (antipodal
    pairs) and, as the paper shows, does not see feature cloning or feature babies.

    Args:
        z: ``(N, m)`` embeddings, ``N >= 2``.
        t: the temperature (2 in the paper and in Wang & Isola).
        normalize: L2-normalise the rows first.

    Returns:
        A scalar tensor of the dtype of ``z``. Memory is ``O(N^2)``.
    """
    check_embeddings(z, "z")
    check_bool(normalize, "normalize")
    x = z.to(torch.float64)
    if normalize:
        x = normalize_rows(x)
    sq_dists = torch.pdist(x).pow(2)
    out = torch.logsumexp(-t * sq_dists, dim=0) - math.log(sq_dists.numel())
    return out.to(z.dtype)


def alignment(z1: Tensor, z2: Tensor, *, alpha: float = 2.0, normalize: bool = True) -> Tensor:
    r"""Wang & Isola's alignment ``L_A = mean_i ||z1_i - z2_i||^alpha`` over positive pairs.

    Args:
        z1: ``(N, m)`` embeddings of one view.
        z2: ``(N, m)`` embeddings of the other view; row ``i`` is the positive of ``z1[i]``.
        alpha: the exponent (2 in the paper).
        normalize: L2-normalise the rows first.
    """
    check_pair(z1, z2)
    check_bool(normalize, "normalize")
    if normalize:
        z1, z2 = normalize_rows(z1), normalize_rows(z2)
    distances: Tensor = torch.linalg.vector_norm(z1 - z2, dim=1)
    return distances.pow(alpha).mean()


def align_uniform_loss(
    z1: Tensor, z2: Tensor, *, lam: float = 1.0, t: float = 2.0, alpha: float = 2.0
) -> Tensor:
    r"""The AlignUniform objective (Wang & Isola, ICML 2020) on L2-normalised embeddings.

    .. math:: L = L_A(z_1, z_2) + \lambda \, \frac{L_U(z_1) + L_U(z_2)}{2}

    Args:
        z1, z2: ``(N, m)`` projections of the two views of the same ``N`` images, ``N >= 2``.
        lam: weight of the uniformity term (1 in Wang & Isola's CIFAR runs).
        t: temperature of :func:`wang_isola_uniformity`.
        alpha: exponent of :func:`alignment`.
    """
    check_pair(z1, z2)
    uniform = (wang_isola_uniformity(z1, t=t) + wang_isola_uniformity(z2, t=t)) / 2
    return alignment(z1, z2, alpha=alpha) + lam * uniform


def singular_values(z: Tensor, *, normalize: bool = True, center: bool = True) -> Tensor:
    r"""The spectrum of the embeddings: singular values of ``(z - mu) / sqrt(N)``, descending.

    These are the square roots of the eigenvalues of the covariance ``S``; a dimensionally
    collapsed embedding shows a tail of (near-)zero values. Computed in float64.

    Args:
        z: ``(N, m)`` embeddings.
        normalize: L2-normalise the rows first (as for :func:`w2_uniformity`).
        center: subtract the mean row first.

    Returns:
        ``(min(N, m),)`` tensor in the dtype of ``z``.
    """
    check_embeddings(z, "z", min_rows=1)
    check_bool(normalize, "normalize")
    check_bool(center, "center")
    x = z.detach().to(torch.float64)
    if normalize:
        x = normalize_rows(x)
    if center:
        x = x - x.mean(dim=0)
    spectrum: Tensor = torch.linalg.svdvals(x / math.sqrt(x.shape[0]))
    return spectrum.to(z.dtype)


def effective_rank(z: Tensor, *, eps: float = 1e-7) -> Tensor:
    r"""RankMe effective rank (Garrido et al., ICML 2023) of the embedding matrix.

    .. math:: p_k = \frac{\sigma_k}{\lVert\sigma\rVert_1} + \epsilon, \qquad
              \operatorname{erank} = \exp\Big(-\sum_k p_k \log p_k\Big)

    with ``sigma`` the singular values of ``z`` itself (not centred, not normalised, as in
    RankMe). Between 1 (rank one) and ``min(N, m)`` (flat spectrum).

    Args:
        z: ``(N, m)`` embeddings.
        eps: the smoothing constant of RankMe.
    """
    check_embeddings(z, "z", min_rows=1)
    s = torch.linalg.svdvals(z.detach().to(torch.float64))
    if float(s.sum()) == 0.0:
        return torch.ones((), dtype=z.dtype, device=z.device)
    p = s / s.sum() + eps
    return torch.exp(-(p * p.log()).sum()).to(z.dtype)
