r"""Zero-CL: instance- and feature-wise whitening, negative-free symmetric contrastive loss.

Zhang, Zhu, Yan, Zhao, Yang, "Zero-CL: Instance and Feature decorrelation for negative-free
symmetric contrastive learning", ICLR 2022, https://openreview.net/forum?id=RAW9tCdVxLj ;
authors' code: https://github.com/Sherrylone/Zero-CL (``ImageNet-100/main.py``:
``ins_loss``, ``fea_loss``, ``WhitenTran.zca_forward``; ``cifar/main.py``). This is our own
implementation of the definition below; nothing is copied from that code.

Notation. ``z1, z2``: the ``(N, m)`` projections of two augmented views of the same ``N``
images (row ``i`` of ``z1`` and of ``z2`` come from the same image). For a ``(n, k)`` matrix
``X`` whose rows are samples, the ZCA whitening matrix (ridge ``eps`` on the eigenvalues) is

.. math::

    \Sigma = X^\top X / n \in \mathbb{R}^{k \times k}, \qquad
    W(X) = U \operatorname{diag}\big((\lambda + \epsilon)^{-1/2}\big) U^\top
    \quad (\Sigma = U \operatorname{diag}(\lambda) U^\top),

and, as in the authors' code, ``W`` is a constant for back-propagation (stop-gradient on the
whitening matrix; gradients flow through ``X``).

**Zero-FCL** (feature-wise): standardise every feature (column) over the batch,
``\bar z_{\cdot j} = (z_{\cdot j} - \operatorname{mean}) / \sqrt{\operatorname{var} + \delta}``
(``(N, m)``), whiten the features, ``\hat Z = \bar Z\, W(\bar Z)`` (``W`` is ``m x m``), and
align the two views feature by feature:

.. math::

    C^F = \hat Z_1^\top \hat Z_2 / N \in \mathbb{R}^{m \times m}, \qquad
    \mathcal{L}_{FCL} = \sum_{j=1}^{m} \big(1 - C^F_{jj}\big)^2 .

**Zero-ICL** (instance-wise): standardise every instance (row) over its ``m`` features,
whiten the instances, ``\hat Z = W(\bar Z^\top)\, \bar Z`` (``W`` is ``N x N``, computed from
the instance Gram ``\bar Z \bar Z^\top / m``), and align instance by instance:

.. math::

    C^I = \hat Z_1 \hat Z_2^\top / m \in \mathbb{R}^{N \times N}, \qquad
    \mathcal{L}_{ICL} = \sum_{i=1}^{N} \big(1 - C^I_{ii}\big)^2 .

**Zero-CL** combines the two (the paper's "combined synthetically"):

.. math:: \mathcal{L}_{Zero\text{-}CL} = \alpha\, \mathcal{L}_{ICL} + \beta\, \mathcal{L}_{FCL},
          \qquad \alpha = \beta = 1 \text{ by default.}

Only the *diagonal* of ``C`` is penalised: whitening already decorrelates the other
dimension, which is what makes the method negative-free (no off-diagonal/negative terms).
What the definition guarantees: with ``eps -> 0`` and full-rank standardised data
(``N - 1 >= m`` for FCL, ``m - 1 >= N`` for ICL), identical views give ``C = I`` exactly and
the term is 0; the ridge ``eps`` leaves ``1 - C_jj = O(eps / lambda)``.

Choices, all documented deviations that only matter at degenerate inputs:
``eps = 0.01`` is the authors' ``WhitenTran`` default; the standardisation uses the biased
variance with ``delta`` *inside* the square root (the authors add ``1e-4`` to ``std``), so a
constant feature or instance gets a finite gradient instead of NaN; the covariance, the
decomposition and the loss run in float32 (float64 for float64 inputs) with autocast
disabled; the result is returned in the dtype of ``z1``. The authors' public scripts train
with one of ``ins_loss`` / ``fea_loss`` (``--mode ins|fea``); the equal-weight sum is our
reading of the paper's combination, exposed through ``instance_weight`` / ``feature_weight``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._validation import check_pair, check_positive, check_weight
from ._w2core import autocast_off, work_dtype

__all__ = ["ZeroCLLoss", "zero_cl_loss", "zero_fcl_loss", "zero_icl_loss"]

#: The authors' whitening ridge (``WhitenTran(eps=0.01)``).
DEFAULT_EPS = 1e-2
#: Variance floor of the standardisation, inside the square root.
DEFAULT_STD_EPS = 1e-5


def _standardize(x: Tensor, dim: int, std_eps: float) -> Tensor:
    """Zero mean, unit (biased) variance along ``dim``; finite gradient for constant slices."""
    mean = x.mean(dim=dim, keepdim=True)
    centred = x - mean
    var = centred.pow(2).mean(dim=dim, keepdim=True)
    return centred * torch.rsqrt(var + std_eps)


def _zca(x: Tensor, eps: float) -> Tensor:
    """``(Sigma + eps I)^{-1/2}`` of ``Sigma = x^T x / n`` for ``(n, k)`` ``x``; no gradient.

    The eigenvalues are clamped at 0 before the ridge, so the inverse square root is at most
    ``eps^{-1/2}`` whatever the input (collapsed, duplicated, rank-deficient).
    """
    with torch.no_grad():
        cov = x.transpose(0, 1) @ x / x.shape[0]
        cov = (cov + cov.transpose(0, 1)) / 2
        evals, evecs = torch.linalg.eigh(cov)
        inv_sqrt = torch.rsqrt(evals.clamp_min(0.0) + eps)
        whitening: Tensor = (evecs * inv_sqrt) @ evecs.transpose(0, 1)
        return whitening


def _check_settings(
    eps: object, std_eps: object, instance_weight: object, feature_weight: object
) -> tuple[float, float, float, float]:
    """The four settings as floats, each checked (the message names it)."""
    return (
        check_positive(eps, "eps", "the whitening ridge"),
        check_positive(std_eps, "std_eps", "the variance floor"),
        check_weight(instance_weight, "instance_weight"),
        check_weight(feature_weight, "feature_weight"),
    )


def _check_views(z1: Tensor, z2: Tensor) -> None:
    check_pair(z1, z2)
    n, m = z1.shape
    if n < 2 or m < 2:
        raise ValueError(
            "Zero-CL needs at least 2 rows and 2 columns in z1 and z2 (standardisation over "
            f"the batch and over the features), got shape {tuple(z1.shape)}"
        )


def _fcl(x1: Tensor, x2: Tensor, eps: float, std_eps: float) -> Tensor:
    s1, s2 = _standardize(x1, 0, std_eps), _standardize(x2, 0, std_eps)
    w1, w2 = s1 @ _zca(s1, eps), s2 @ _zca(s2, eps)  # (N, m)
    diag = (w1 * w2).sum(dim=0) / x1.shape[0]  # diagonal of C^F, (m,)
    return (1.0 - diag).pow(2).sum()


def _icl(x1: Tensor, x2: Tensor, eps: float, std_eps: float) -> Tensor:
    s1, s2 = _standardize(x1, 1, std_eps), _standardize(x2, 1, std_eps)
    w1 = _zca(s1.transpose(0, 1), eps) @ s1  # (N, m)
    w2 = _zca(s2.transpose(0, 1), eps) @ s2
    diag = (w1 * w2).sum(dim=1) / x1.shape[1]  # diagonal of C^I, (N,)
    return (1.0 - diag).pow(2).sum()


def _run(
    z1: Tensor,
    z2: Tensor,
    eps: float,
    std_eps: float,
    instance_weight: float,
    feature_weight: float,
) -> Tensor:
    eps, std_eps, instance_weight, feature_weight = _check_settings(
        eps, std_eps, instance_weight, feature_weight
    )
    _check_views(z1, z2)
    dtype = work_dtype(z1.dtype)
    with autocast_off(z1.device):
        x1, x2 = z1.to(dtype), z2.to(dtype)
        total = x1.new_zeros(())
        if instance_weight != 0:
            total = total + instance_weight * _icl(x1, x2, eps, std_eps)
        if feature_weight != 0:
            total = total + feature_weight * _fcl(x1, x2, eps, std_eps)
    return total.to(z1.dtype)


def zero_fcl_loss(
    z1: Tensor, z2: Tensor, *, eps: float = DEFAULT_EPS, std_eps: float = DEFAULT_STD_EPS
) -> Tensor:
    r"""Zero-FCL alone, ``sum_j (1 - C^F_jj)^2``: :func:`zero_cl_loss` with ``instance_weight=0``.

    ``eps`` is the ridge of the ``m x m`` feature correlation. About 0 for identical views
    when ``N - 1 >= m`` and ``eps`` is small.
    """
    return _run(z1, z2, eps, std_eps, 0.0, 1.0)


def zero_icl_loss(
    z1: Tensor, z2: Tensor, *, eps: float = DEFAULT_EPS, std_eps: float = DEFAULT_STD_EPS
) -> Tensor:
    r"""Zero-ICL alone, ``sum_i (1 - C^I_ii)^2``: :func:`zero_cl_loss` with ``feature_weight=0``
    (the instance-wise twin of :func:`zero_fcl_loss`: ``eps`` ridges the ``N x N`` instance
    correlation; about 0 for identical views when ``m - 1 >= N``)."""
    return _run(z1, z2, eps, std_eps, 1.0, 0.0)


def zero_cl_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    instance_weight: float = 1.0,
    feature_weight: float = 1.0,
    eps: float = DEFAULT_EPS,
    std_eps: float = DEFAULT_STD_EPS,
) -> Tensor:
    r"""Zero-CL loss of Zhang et al. (ICLR 2022): ``alpha * L_ICL + beta * L_FCL``.

    .. math::

        \mathcal{L} = \alpha \sum_{i=1}^{N} \Big(1 - \tfrac{1}{m}
            \langle \hat z^{I}_{1,i}, \hat z^{I}_{2,i} \rangle\Big)^2
          + \beta \sum_{j=1}^{m} \Big(1 - \tfrac{1}{N}
            \langle \hat z^{F}_{1,\cdot j}, \hat z^{F}_{2,\cdot j} \rangle\Big)^2

    where ``\hat Z^I = W_I \bar Z`` are the instance-standardised, instance-whitened views
    (``W_I``: ``N x N``) and ``\hat Z^F = \bar Z W_F`` the feature-standardised,
    feature-whitened views (``W_F``: ``m x m``), each whitening matrix
    ``(Sigma + eps I)^{-1/2}`` of its own view and held constant in backward. Details,
    sources and the guarantees of the definition are in :mod:`w2reg.zero_cl`.

    Args:
        z1: ``(N, m)`` projections of the first view, ``N, m >= 2``.
        z2: ``(N, m)`` projections of the second view; row ``i`` pairs with ``z1[i]``.
        instance_weight: ``alpha``, weight of Zero-ICL (0 switches it off).
        feature_weight: ``beta``, weight of Zero-FCL (0 switches it off).
        eps: whitening ridge (the authors' 0.01).
        std_eps: variance floor of the standardisations.

    Returns:
        A scalar tensor in the dtype of ``z1``, computed in float32 (float64 for float64
        inputs) with autocast disabled.

    Raises:
        ValueError: naming ``z1``/``z2`` and the shape received, for non-2-D, non-float,
            non-finite or mismatched inputs, or fewer than 2 rows or columns.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> z1 = torch.randn(256, 128)
        >>> aligned, unrelated = z1 + 0.1 * torch.randn(256, 128), torch.randn(256, 128)
        >>> round(float(zero_cl_loss(z1, aligned))), round(float(zero_cl_loss(z1, unrelated)))
        (67, 388)
    """
    return _run(z1, z2, eps, std_eps, instance_weight, feature_weight)


class ZeroCLLoss(nn.Module):
    """``nn.Module`` form of :func:`zero_cl_loss` (no parameters, no buffers).

    Args:
        instance_weight: weight of the instance-wise term Zero-ICL.
        feature_weight: weight of the feature-wise term Zero-FCL.
        eps: whitening ridge (the authors' 0.01).
        std_eps: variance floor of the standardisations.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> head = nn.Linear(32, 16)  # stands for projection_head(backbone(.))
        >>> x0, x1 = torch.randn(64, 32), torch.randn(64, 32)
        >>> criterion = ZeroCLLoss()
        >>> loss = criterion(head(x0), head(x1))
        >>> loss.backward()
        >>> loss.shape, head.weight.grad.shape
        (torch.Size([]), torch.Size([16, 32]))
    """

    def __init__(
        self,
        instance_weight: float = 1.0,
        feature_weight: float = 1.0,
        *,
        eps: float = DEFAULT_EPS,
        std_eps: float = DEFAULT_STD_EPS,
    ) -> None:
        super().__init__()
        self.eps, self.std_eps, self.instance_weight, self.feature_weight = _check_settings(
            eps, std_eps, instance_weight, feature_weight
        )

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Zero-CL loss of two ``(N, m)`` views, see :func:`zero_cl_loss`."""
        return zero_cl_loss(
            z1,
            z2,
            instance_weight=self.instance_weight,
            feature_weight=self.feature_weight,
            eps=self.eps,
            std_eps=self.std_eps,
        )

    def extra_repr(self) -> str:
        return (
            f"instance_weight={self.instance_weight}, feature_weight={self.feature_weight}, "
            f"eps={self.eps}, std_eps={self.std_eps}"
        )
