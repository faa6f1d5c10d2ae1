"""The W2 floor (w2reg.floor) against scipy's quadrature of the Marchenko-Pastur law and
against sampled uniform data; the hard lower bound against the configurations that attain it."""

from __future__ import annotations

import math

import pytest
import torch

import w2reg
from w2reg.floor import _gaussian_mean_correction, _harmonic_pair_mean, mp_mean_sqrt, mp_sum_sqrt
from w2reg.metrics import measure

integrate = pytest.importorskip("scipy.integrate")


@pytest.fixture(autouse=True)
def _one_thread():
    # small eigendecompositions: a second thread fighting the machine's other work costs
    # 100x more than it gives (0.6 s instead of 4 ms at 256 x 256 on the shared CI box)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _mp_density_mean_sqrt(y: float) -> float:
    """E[sqrt(lambda)] by quadrature of the Marchenko-Pastur density itself (the oracle)."""
    a, b = (1 - math.sqrt(y)) ** 2, (1 + math.sqrt(y)) ** 2

    def integrand(lam: float) -> float:
        return math.sqrt(lam) * math.sqrt(max((b - lam) * (lam - a), 0.0)) / (2 * math.pi * y * lam)

    value, _ = integrate.quad(integrand, a, b, epsabs=1e-13, epsrel=1e-13, limit=500)
    return value


@pytest.mark.parametrize("y", [1e-3, 0.01, 0.1, 0.2, 0.25, 0.3, 0.5, 0.75, 0.9, 0.99, 1.0])
def test_mp_mean_sqrt_matches_the_density(y):
    assert mp_mean_sqrt(y) == pytest.approx(_mp_density_mean_sqrt(y), abs=1e-9)


def test_mp_mean_sqrt_limits():
    assert mp_mean_sqrt(0.0) == 1.0
    assert mp_mean_sqrt(1.0) == pytest.approx(8 / (3 * math.pi), abs=1e-15)  # quarter circle
    for y in (1e-6, 1e-5, 1e-4):
        assert mp_mean_sqrt(y) == pytest.approx(1 - y / 8 - y * y / 64, abs=1e-13)
    # continuous where the two ways of computing it meet (y = 0.25)
    assert mp_mean_sqrt(0.25) == pytest.approx(mp_mean_sqrt(0.25 + 1e-12), abs=1e-11)


def test_mp_mean_sqrt_is_the_mean_singular_value_of_a_gaussian_matrix():
    """The law itself, at one size: a 400 x 1600 normal matrix's singular values / sqrt(1600)."""
    g = torch.Generator().manual_seed(3)
    s = torch.linalg.svdvals(torch.randn(400, 1600, generator=g, dtype=torch.float64))
    assert float(s.mean()) / 40 == pytest.approx(mp_mean_sqrt(0.25), abs=2e-3)


def _mp_density(y: float):
    a, b = (1 - math.sqrt(y)) ** 2, (1 + math.sqrt(y)) ** 2

    def density(lam: float) -> float:
        return math.sqrt(max((b - lam) * (lam - a), 0.0)) / (2 * math.pi * y * lam)

    return a, b, density


@pytest.mark.parametrize("y", [0.01, 0.2, 0.5, 0.9, 1.0])
def test_gaussian_mean_term_is_bai_silverstein(y):
    """mu(y) = (f(a) + f(b))/4 - (1/2pi) int_a^b f(x) / sqrt(4y - (x - 1 - y)^2) dx, f = sqrt."""
    a, b = (1 - math.sqrt(y)) ** 2, (1 + math.sqrt(y)) ** 2
    inner, _ = integrate.quad(
        lambda x: math.sqrt(x) / math.sqrt(max(4 * y - (x - 1 - y) ** 2, 1e-300)), a, b, limit=400
    )
    want = (math.sqrt(a) + math.sqrt(b)) / 4 - inner / (2 * math.pi)
    assert _gaussian_mean_correction(y) == pytest.approx(want, abs=1e-8)


@pytest.mark.parametrize("y", [0.01, 0.5, 0.9])
def test_harmonic_pair_mean_by_another_route(y):
    """D(y) = E[st/(s+t)] = int_0^inf h(r)^2 dr with h(r) = E[s e^(-rs)] (1/(s+t) as an
    integral), by scipy on the MP density in lambda (not the theta grid of the code)."""
    import warnings

    a, b, density = _mp_density(y)

    def h(r: float) -> float:
        return integrate.quad(
            lambda lam: math.sqrt(lam) * math.exp(-r * math.sqrt(lam)) * density(lam), a, b
        )[0]

    with warnings.catch_warnings():  # the tail of h(r)^2 near y = 1 decays slowly
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        want, _ = integrate.quad(lambda r: h(r) ** 2, 0, math.inf, limit=200)
    assert _harmonic_pair_mean(y) == pytest.approx(want, rel=1e-6)


def test_gaussian_matrices_follow_the_leading_order_plus_mu():
    """p c(y) + mu(y) is E sum s_k(H / sqrt(q)) for Gaussian H (the Bai-Silverstein part)."""
    g = torch.Generator().manual_seed(11)
    p, q, draws = 64, 128, 200
    sums = torch.stack(
        [
            torch.linalg.svdvals(torch.randn(p, q, generator=g, dtype=torch.float64)).sum()
            for _ in range(draws)
        ]
    ) / math.sqrt(q)
    se = float(sums.std()) / math.sqrt(draws)
    y = p / q
    want = p * mp_mean_sqrt(y) + _gaussian_mean_correction(y)
    assert abs(float(sums.mean()) - want) < 3 * se
    assert abs(float(sums.mean()) - mp_sum_sqrt(p, q)) > 3 * se  # the sphere's term differs


def _uniform_w2(n: int, m: int, draws: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.tensor(
        [
            float(w2reg.w2_uniformity(torch.randn(n, m, generator=g, dtype=torch.float64)))
            for _ in range(draws)
        ],
        dtype=torch.float64,
    )


#: (N, m, draws): the sizes of issue 18 (N = 256, 1,024, 4,096 at m = 256) and more
SAMPLED = [
    (256, 256, 48),
    (1024, 256, 32),
    (4096, 256, 16),
    (512, 256, 32),
    (64, 256, 48),
    (256, 64, 64),
    (1024, 64, 64),
    (4096, 64, 32),
    (128, 32, 64),
]


@pytest.mark.parametrize(("n", "m", "draws"), SAMPLED)
def test_floor_matches_sampled_uniform_data(n, m, draws):
    """The floor is the mean W2 of truly uniform samples within 3 standard errors of that
    mean (so far inside one measurement's own spread, 0.3-3% of the floor here)."""
    w2 = _uniform_w2(n, m, draws, seed=n + m)
    mean, sd = float(w2.mean()), float(w2.std())
    se = sd / math.sqrt(draws)
    floor = w2reg.w2_floor(n, m)
    assert abs(mean - floor) < 3 * se, (mean, floor, se)
    assert sd < 0.05 * floor


def test_the_one_over_m_terms_are_needed():
    """The Marchenko-Pastur order alone misses the sampled mean by many standard errors at
    (1024, 64): the two O(1) terms of the floor are real (module docstring of w2reg.floor)."""
    n, m, draws = 1024, 64, 256
    w2 = _uniform_w2(n, m, draws, seed=7)
    mean, se = float(w2.mean()), float(w2.std()) / math.sqrt(draws)
    dof = n - 1
    leading = math.sqrt(2 * (1 - math.sqrt(dof / n) * mp_mean_sqrt(m / dof)))
    assert leading - mean > 4 * se, (leading, mean, se)
    assert abs(w2reg.w2_floor(n, m) - mean) < 3 * se


def test_floor_squared_and_asymptote():
    assert w2reg.w2_floor(512, 256, squared=True) == pytest.approx(w2reg.w2_floor(512, 256) ** 2)
    for n, m in ((10**6, 64), (10**7, 256)):
        # 1/n (the mean) + (m - 1)/(4n) (the spread): (m + 3) / (4 n) + O(1/n^2)
        assert w2reg.w2_floor(n, m) == pytest.approx(math.sqrt((m + 3) / (4 * n)), rel=1e-4)
    # more rows: lower floor; more dimensions: higher floor
    ns = [64, 128, 256, 512, 1024, 4096, 10_000]
    floors = [w2reg.w2_floor(n, 128) for n in ns]
    assert floors == sorted(floors, reverse=True)
    assert w2reg.w2_floor(512, 64) < w2reg.w2_floor(512, 128) < w2reg.w2_floor(512, 256)


def test_floor_of_the_issue():
    """Issue 18: about 0.37 at N = 512, m = 256."""
    assert w2reg.w2_floor(512, 256) == pytest.approx(0.369, abs=1e-3)


def _simplex(n: int, m: int) -> torch.Tensor:
    """``n <= m + 1`` unit vectors of a regular simplex in ``m`` dimensions (mean 0)."""
    e = torch.eye(n, dtype=torch.float64) - 1.0 / n  # centred basis: a simplex in R^n
    q, _ = torch.linalg.qr(e)  # an orthonormal basis of its (n - 1)-dim span, then R^m
    coords = e @ q[:, : n - 1]
    out = torch.zeros(n, m, dtype=torch.float64)
    out[:, : n - 1] = coords
    return out / out.norm(dim=1, keepdim=True)


@pytest.mark.parametrize(("n", "m"), [(2, 4), (16, 64), (64, 64), (65, 64), (100, 256)])
def test_lower_bound_is_attained_by_the_simplex(n, m):
    w2 = float(w2reg.w2_uniformity(_simplex(n, m)))
    assert w2 == pytest.approx(w2reg.w2_lower_bound(n, m), abs=1e-6)


def test_lower_bound_holds_and_is_zero_for_tight_frames():
    g = torch.Generator().manual_seed(1)
    for n, m in ((8, 32), (31, 32), (32, 32), (40, 32), (300, 32)):
        for z in (torch.randn(n, m, generator=g, dtype=torch.float64), _simplex(min(n, m + 1), m)):
            rows = z.shape[0]
            assert float(w2reg.w2_uniformity(z)) >= w2reg.w2_lower_bound(rows, m) - 1e-9
        assert w2reg.w2_floor(n, m) > w2reg.w2_lower_bound(n, m)
    frame = torch.cat([torch.eye(16), -torch.eye(16)]).double()  # +-e_k: S = I/m, mean 0
    assert float(w2reg.w2_uniformity(frame)) == pytest.approx(0.0, abs=1e-6)
    assert w2reg.w2_lower_bound(32, 16) == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: w2reg.w2_floor(1, 8), "n must be >= 2"),
        (lambda: w2reg.w2_floor(8.0, 8), "n must be an integer"),
        (lambda: w2reg.w2_floor(8, 0), "m must be >= 1"),
        (lambda: w2reg.w2_floor(8, 8, squared="yes"), "squared must be True or False"),
        (lambda: w2reg.w2_lower_bound(True, 8), "n must be an integer"),
        (lambda: mp_mean_sqrt(1.5), r"y must be a number in \[0, 1\]"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_measure_reports_the_floor_and_checks_its_arguments():
    z = torch.randn(300, 32, dtype=torch.float64)
    out = measure([z, z + 0.01])
    assert out["w2_floor"] == w2reg.w2_floor(300, 32)
    assert out["w2_above_floor"] == pytest.approx(out["w2"] - out["w2_floor"], abs=1e-15)
    assert (out["n_samples"], out["dim"], len(out["spectrum"])) == (300, 32, 32)
    assert "alignment" in out
    with pytest.raises(ValueError, match="views must be a non-empty list"):
        measure([])
    with pytest.raises(ValueError, match="lu_max_samples"):
        measure([z], lu_max_samples=1)
    with pytest.raises(ValueError, match="views\\[0\\] needs at least 2 rows"):
        measure([z[:1]])


def _bench_floor():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_floor.py"
    spec = importlib.util.spec_from_file_location("_bench_floor", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_floor_uniform_part_at_a_tiny_size(tmp_path):
    """benchmarks/bench_floor.py writes its JSON and figure; its numbers are the core's."""
    result = _bench_floor().main(
        ["--sizes", "32", "128", "--dims", "16", "--draws", "4", "--out-dir", str(tmp_path)]
    )
    rows = result["uniform"]
    assert [(r["n"], r["m"], r["draws"]) for r in rows] == [(32, 16, 4), (128, 16, 4)]
    for r in rows:
        assert r["floor"] == w2reg.w2_floor(r["n"], r["m"])
        assert abs(r["w2_mean"] - r["floor"]) < 4 * r["w2_sd"]
    assert "no test embeddings" in result["embeddings_note"]
    assert (tmp_path / "bench_floor.json").is_file()
    pytest.importorskip("matplotlib")
    assert (tmp_path / "bench_floor.png").stat().st_size > 10_000


def test_bench_floor_reads_finished_studies(tmp_path):
    """Part 3 on the committed CPU study: W2 recomputed from each saved spectrum is the saved
    test W2 (for unit rows W2^2 = 2 (1 - sum(s) / sqrt(m))), and sits above the floor."""
    from pathlib import Path

    study = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "study_cpu"
    argv = ["--sizes", "8", "--dims", "4", "--draws", "2", "--out-dir", str(tmp_path)]
    rows = _bench_floor().main([*argv, "--study-results", str(study)])["study_runs"]
    assert len(rows) == len(list((study / "runs").glob("*.json"))) > 0
    for r in rows:
        assert r["test_w2_from_spectrum"] == pytest.approx(r["test_w2"], abs=1e-5)
        assert r["test_w2"] > r["test_floor"] == w2reg.w2_floor(r["n_test"], r["m"])
        assert r["train_floor"] == w2reg.w2_floor(r["train_rows"], r["m"])
