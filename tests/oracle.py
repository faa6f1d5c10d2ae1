"""Independent float64 references (numpy / scipy), written from the formulas, not from w2reg."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import eigvalsh, sqrtm


def _rows(z: np.ndarray, normalize: bool) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if normalize:
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
    return z


def bures_w2(z: np.ndarray, normalize: bool = True, squared: bool = False) -> float:
    """W2 between N(mu, S) of the rows (S divided by N) and N(0, I/m), by scipy's sqrtm.

    General Bures-Wasserstein closed form with T = I/m:
    W2^2 = |mu|^2 + tr S + tr T - 2 tr (T^{1/2} S T^{1/2})^{1/2}.
    The cross term is taken on the smaller side: tr (X^T X)^{1/2} = tr (X X^T)^{1/2}.
    """
    z = _rows(z, normalize)
    n, m = z.shape
    mu = z.mean(axis=0)
    x = (z - mu) / np.sqrt(n) / np.sqrt(m)  # T^{1/2} applied: (S/m) = X^T X
    gram = x @ x.T if n < m else x.T @ x
    with warnings.catch_warnings():
        # a centred Gram with N <= m is singular (rank N - 1); its square root still exists
        warnings.simplefilter("ignore")
        cross = float(np.trace(sqrtm(gram)).real)
    w2_sq = mu @ mu + float(np.sum((z - mu) ** 2)) / n + 1.0 - 2.0 * cross
    w2_sq = max(w2_sq, 0.0)
    return w2_sq if squared else float(np.sqrt(w2_sq))


def eig_w2(z: np.ndarray, normalize: bool = True, squared: bool = False) -> float:
    """The same W2 via scipy's symmetric eigenvalues (for sizes where sqrtm is too slow)."""
    z = _rows(z, normalize)
    n, m = z.shape
    mu = z.mean(axis=0)
    x = (z - mu) / np.sqrt(n)
    gram = x @ x.T if n < m else x.T @ x
    tr_sqrt = float(np.sqrt(np.clip(eigvalsh(gram), 0.0, None)).sum())
    w2_sq = max(mu @ mu + float(np.sum(x**2)) + 1.0 - 2.0 / np.sqrt(m) * tr_sqrt, 0.0)
    return w2_sq if squared else float(np.sqrt(w2_sq))


def wang_isola(z: np.ndarray, t: float = 2.0) -> float:
    """log mean_{i<j} exp(-t |z_i - z_j|^2) on normalised rows."""
    z = _rows(z, True)
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    iu = np.triu_indices(z.shape[0], k=1)
    v = -t * d2[iu]
    top = v.max()
    return float(top + np.log(np.mean(np.exp(v - top))))


def polar_and_spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Float64 SVD of ``x``: the polar factor ``U V^T`` and ``U``, ``s``, ``V^T`` (numpy)."""
    u, s, vt = np.linalg.svd(np.asarray(x, dtype=np.float64), full_matrices=False)
    return u @ vt, u, s, vt


def embeddings_with_spectrum(
    n: int, m: int, spectrum: np.ndarray, seed: int = 0, mean: float = 0.1
) -> np.ndarray:
    """``(n, m)`` rows whose centred, ``1/sqrt(n)``-scaled matrix has exactly ``spectrum``.

    ``Z = sqrt(n) U diag(s) V^T + mean``, with ``U`` orthonormal and orthogonal to the ones
    vector (so the rows are already centred around ``mean``), ``V`` orthonormal; for use with
    ``normalize=False``. ``len(spectrum) <= min(n - 1, m)``.
    """
    rng = np.random.default_rng(seed)
    k = len(spectrum)
    a = rng.standard_normal((n, k))
    a -= a.mean(axis=0)  # orthogonal to ones
    u, _ = np.linalg.qr(a)
    v, _ = np.linalg.qr(rng.standard_normal((m, k)))
    return np.sqrt(n) * (u * np.asarray(spectrum)) @ v.T + mean
