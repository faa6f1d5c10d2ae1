r"""The finite-sample floor of W2: what a truly uniform sample of N rows in m dimensions scores.

W2 (:func:`w2reg.w2_uniformity`) compares the Gaussian fit of ``N`` normalised rows with
``N(0, I/m)``. The uniform distribution on the sphere ``S^{m-1}`` has exactly that mean and
covariance, so its *population* W2 is 0; a *sample* of it is not: its sample covariance is
spread around ``I/m`` (Marchenko-Pastur), and for ``N <= m`` it has rank ``N - 1`` at most.
So no embedding of ``N`` rows scores 0, and a perfectly uniform one scores
:func:`w2_floor` ``(N, m)`` on average: 0.369 at ``N = 512, m = 256``. A monitor that
reads 0.40 there is 0.03 from the best any embedding can show, not 0.40.

Derivation. For unit rows ``tr S + ||mu||^2 = 1`` exactly, so

.. math:: W_2^2 = 2\Big(1 - \frac{\lVert X\rVert_*}{\sqrt m}\Big), \qquad
          X = (z - \mu)/\sqrt N, \quad \lVert X\rVert_* = \operatorname{tr} S^{1/2}.

*Any embedding* (:func:`w2_lower_bound`): ``X`` has rank ``r <= min(N - 1, m)`` (it is
centred) and ``||X||_F^2 = tr S <= 1``, so ``||X||_* <= sqrt(r) ||X||_F <= sqrt(r)``:

.. math:: W_2^2 \ge 2\Big(1 - \sqrt{\min(N-1, m)/m}\Big),

attained by the regular simplex (``N <= m + 1``); 0 from ``N > m`` on (a tight frame, e.g.
the ``2m`` vectors ``+-e_k``, reaches it).

*A uniform sample* (:func:`w2_floor`). ``N (z - mu)^T (z - mu)`` is close to a Wishart
matrix with ``n = N - 1`` degrees of freedom (one goes to the mean) and covariance ``I/m``.
With ``p = min(m, n)``, ``q = max(m, n)``, ``y = p/q``, the nonzero singular values of
``X`` are ``sqrt(q / (N m))`` times those of ``H / sqrt(q)``, ``H`` a ``p x q`` matrix, so

.. math:: \operatorname{floor}(N, m)^2 = 2\Big(1 - \frac{\sqrt q\, \Sigma(p, q)}{m\sqrt N}\Big),
          \qquad \Sigma(p, q) = E \sum_k s_k(H/\sqrt q) = p\, c(y) + \mu(y) + \tfrac{y}{2} D(y).

The leading term is the Marchenko-Pastur law: the squared singular values of
``H / sqrt(q)`` have the MP law of ratio ``y``, whose mean square root is

.. math:: c(y) = \frac{2}{\pi}\int_0^\pi \frac{\sin^2\theta\, d\theta}
                       {\sqrt{1 + y + 2\sqrt y \cos\theta}}
               = \frac{16\,[(2 - k^2)E(k) - 2(1 - k^2)K(k)]}{3\pi (1 + \sqrt y)\, k^4},
          \qquad k^2 = \frac{4\sqrt y}{(1 + \sqrt y)^2}

(``lambda = 1 + y + 2 sqrt(y) cos(theta)`` maps the MP density onto
``(2/pi) sin^2(theta) / lambda``; ``K``, ``E``: complete elliptic integrals; ``c(1) = 8/(3 pi)``,
the quarter-circle law; ``c(y) = 1 - y/8 - y^2/64 + O(y^3)``). The two ``O(1)`` terms
(``1/m`` of the leading one) are

* ``mu(y) = 1/2 - (1 + sqrt(y)) E(k) / pi``: the mean term of Bai and Silverstein's CLT for
  linear spectral statistics of real Gaussian data (Ann. Probab. 2004), for ``f = sqrt``:
  ``(f(a) + f(b))/4 - (1/2pi) int_a^b f(x) / sqrt(4y - (x - 1 - y)^2) dx``;
* ``(y/2) D(y)``, ``D(y) = E[s t / (s + t)]`` for two independent MP singular values: the
  sphere's rows are Gaussian rows with their radial weights ``w_i = |g_i|^2 / m`` (mean 1,
  variance ``2/m``, independent of the directions) taken out. A second-order expansion of
  ``sum_k sqrt(lambda_k)`` in the ``w_i`` gives
  ``(v/2) sum_i sum_jk f'[lambda_j, lambda_k] (a_i . phi_j)^2 (a_i . phi_k)^2``; with each
  row's projections on different eigenvectors taken as uncorrelated (an approximation; the
  mean of each is exact) it is ``-(y/2) D(y)``, which the sphere does not pay.

For small ``y`` the two terms add up to ``+y/8``; for ``N >> m`` the floor is
``sqrt((m + 3) / (4N))``. Against sampled uniform data (``tests/test_floor.py``;
``benchmarks/bench_floor.py`` at ``m = 32 ... 512``, ``N = 64 ... 10,000``, 40 points;
``docs/batch-size.md``): the Marchenko-Pastur order alone is up to 1.9% (4.6 standard errors
of the sampled mean) above the mean; with the two terms the floor is within 2.3 standard
errors and 0.75% of it at every point, far inside one measurement's own spread.
"""

from __future__ import annotations

import math

import torch

from ._validation import check_bool, check_int, check_positive_int

__all__ = ["mp_mean_sqrt", "mp_sum_sqrt", "w2_floor", "w2_lower_bound"]


def _agm_elliptic(k2: float) -> tuple[float, float]:
    """Complete elliptic integrals ``K(k)``, ``E(k)`` (parameter ``k^2 < 1``), by the AGM."""
    a, b = 1.0, math.sqrt(1.0 - k2)
    c_sum = 0.5 * k2  # sum of 2^(n-1) c_n^2, c_0^2 = k^2
    power = 0.5
    for _ in range(64):
        if abs(a - b) <= 1e-16 * a:
            break
        c = 0.5 * (a - b)
        a, b = 0.5 * (a + b), math.sqrt(a * b)
        power *= 2.0
        c_sum += power * c * c
    big_k = math.pi / (2.0 * a)
    return big_k, big_k * (1.0 - c_sum)


def _theta_mean(y: float, fn: str) -> float:
    """``(1/pi) int_0^pi g(lambda(theta)) d theta`` for ``y <= 0.25``, ``lambda = 1 + y +
    2 sqrt(y) cos(theta)``: ``g = sin^2 / sqrt`` (``fn="c"``) or ``sqrt`` (``fn="bs"``).

    The integrand is smooth and periodic, where the midpoint rule over a full period converges
    like ``y ** (points / 2)``: 64 points give machine precision.
    """
    s, points, total = math.sqrt(y), 64, 0.0
    for i in range(points):
        t = 2.0 * math.pi * (i + 0.5) / points
        root = math.sqrt(1.0 + y + 2.0 * s * math.cos(t))
        total += math.sin(t) ** 2 / root if fn == "c" else root
    return total / points


def _check_ratio(y: float) -> float:
    if isinstance(y, bool) or not isinstance(y, (int, float)) or not 0.0 <= y <= 1.0:
        raise ValueError(f"y must be a number in [0, 1], got {y!r}")
    return float(y)


def mp_mean_sqrt(y: float) -> float:
    r"""``E[sqrt(lambda)]`` under the Marchenko-Pastur law of ratio ``0 <= y <= 1`` (variance 1).

    The mean singular value of a ``p x q`` standard normal matrix, divided by ``sqrt(q)``,
    in the limit ``p/q -> y``; see the module docstring for the closed form.

    Example:
        >>> round(mp_mean_sqrt(0.0), 12), round(mp_mean_sqrt(1.0), 12)
        (1.0, 0.848826363157)
        >>> round(mp_mean_sqrt(0.5), 9)
        0.932799468
    """
    y = _check_ratio(y)
    if y <= 0.25:  # the closed form cancels for small k
        return 2.0 * _theta_mean(y, "c")
    s = math.sqrt(y)
    k2 = 4.0 * s / (1.0 + s) ** 2
    if k2 >= 1.0:  # y = 1: (1 - k^2) K(k) -> 0, E(1) = 1
        return 8.0 / (3.0 * math.pi)
    big_k, big_e = _agm_elliptic(k2)
    inner = (2.0 - k2) * big_e - 2.0 * (1.0 - k2) * big_k
    return 16.0 * inner / (3.0 * math.pi * (1.0 + s) * k2 * k2)


def _gaussian_mean_correction(y: float) -> float:
    """Bai-Silverstein's O(1) mean term of ``sum_k sqrt(lambda_k)`` (real Gaussian data).

    ``(sqrt(a) + sqrt(b))/4 - (1/2 pi) int_a^b sqrt(x) / sqrt(4y - (x - 1 - y)^2) dx``
    ``= 1/2 - (1 + sqrt(y)) E(k) / pi``; about ``-y/8`` for small ``y``.
    """
    if y <= 0.25:
        return 0.5 - 0.5 * _theta_mean(y, "bs")
    s = math.sqrt(y)
    k2 = 4.0 * s / (1.0 + s) ** 2
    big_e = 1.0 if k2 >= 1.0 else _agm_elliptic(k2)[1]
    return 0.5 - (1.0 + s) * big_e / math.pi


def _harmonic_pair_mean(y: float, points: int = 256) -> float:
    """``D(y) = E[s t / (s + t)]`` for two independent MP(y) singular values ``s``, ``t``.

    The midpoint rule in ``theta`` (``dF = (2/pi) sin^2(theta) / lambda d theta``) on a
    ``points x points`` grid; 1e-5 accurate at ``y = 1`` (an integrable corner), far better
    below. About ``1/2 - y/8`` for small ``y``.
    """
    theta = (torch.arange(points, dtype=torch.float64) + 0.5) * (math.pi / points)
    lam = 1.0 + y + 2.0 * math.sqrt(y) * torch.cos(theta)
    weight = (2.0 / points) * torch.sin(theta) ** 2 / lam
    root = lam.sqrt()
    pair = root[:, None] * root[None, :] / (root[:, None] + root[None, :])
    return float(weight @ pair @ weight)


def mp_sum_sqrt(p: int, q: int) -> float:
    r"""``Sigma(p, q)``: the expected sum of the ``p`` singular values of ``H / sqrt(q)``, for
    ``p <= q``, where ``H``'s rows or columns (its ``N``-side) are uniform on a sphere.

    ``p c(y) + mu(y) + (y/2) D(y)``, ``y = p/q`` (module docstring): the Marchenko-Pastur
    order, Bai-Silverstein's mean term of Gaussian data, and what the sphere's fixed row
    norms add.

    Example:
        >>> round(mp_sum_sqrt(256, 1023) / 256, 6), round(mp_mean_sqrt(256 / 1023), 6)
        (0.967759, 0.967655)
    """
    p, q = check_positive_int(p, "p"), check_positive_int(q, "q")
    if p > q:
        raise ValueError(f"p must be <= q, got p={p}, q={q}")
    y = p / q
    return p * mp_mean_sqrt(y) + _gaussian_mean_correction(y) + 0.5 * y * _harmonic_pair_mean(y)


def _sizes(n: int, m: int) -> tuple[int, int]:
    return check_int(n, "n", minimum=2), check_positive_int(m, "m")


def w2_floor(n: int, m: int, *, squared: bool = False) -> float:
    r"""W2 of ``n`` truly uniform rows on the sphere ``S^{m-1}``: the floor at that sample size.

    The expected value (module docstring for the derivation):

    .. math:: \operatorname{floor}^2 = 2\Big(1 - \frac{\sqrt q\, \Sigma(p, q)}{m\sqrt n}\Big),
              \quad p = \min(m, n-1),\ q = \max(m, n-1)

    with ``Sigma`` = :func:`mp_sum_sqrt`. A measured W2 of ``n`` embeddings
    (:func:`w2reg.w2_uniformity`, normalised rows) near this value is as uniform as ``n``
    samples can show; ``W2 - floor`` is the part an embedding could still lose (one
    measurement of a uniform sample scatters around 0 by about 0.5% of the floor). It
    falls like ``sqrt((m + 3) / (4 n))`` for ``n >> m``.

    Args:
        n: rows of the sample (``>= 2``): the batch, or the held-out set the monitor embeds.
        m: their dimension (the projection dimension).
        squared: return ``floor^2`` (the floor of ``w2_uniformity(..., squared=True)``).

    Example:
        >>> round(w2_floor(512, 256), 4), round(w2_floor(4096, 256), 4)
        (0.369, 0.1262)
        >>> round(w2_floor(256, 256), 4), round(w2_lower_bound(256, 256), 4)
        (0.5541, 0.0625)
    """
    n, m = _sizes(n, m)
    squared = check_bool(squared, "squared")
    dof = n - 1
    p, q = min(m, dof), max(m, dof)
    x = mp_sum_sqrt(p, q) * math.sqrt(q) / (m * math.sqrt(n))
    sq = max(2.0 * (1.0 - x), 0.0)
    return sq if squared else math.sqrt(sq)


def w2_lower_bound(n: int, m: int, *, squared: bool = False) -> float:
    r"""The least W2 *any* ``n`` unit rows in ``m`` dimensions can have (a hard bound).

    .. math:: W_2^2 \ge 2\Big(1 - \sqrt{\min(n - 1, m)/m}\Big)

    exact (the regular simplex attains it for ``n <= m + 1``); 0 for ``n > m``. A uniform
    sample scores well above it (:func:`w2_floor`).

    Example:
        >>> round(w2_lower_bound(64, 256), 4), w2_lower_bound(512, 256)
        (1.0039, 0.0)
    """
    n, m = _sizes(n, m)
    squared = check_bool(squared, "squared")
    sq = max(2.0 * (1.0 - math.sqrt(min(n - 1, m) / m)), 0.0)
    return sq if squared else math.sqrt(sq)
