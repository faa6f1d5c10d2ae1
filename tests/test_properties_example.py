"""examples/properties.py: the full property study runs and agrees with the paper."""

from __future__ import annotations

from pathlib import Path

import pytest
from example_scripts import load_example


@pytest.fixture(scope="module")
def properties():
    return load_example("properties")


@pytest.fixture(scope="module")
def full_run(properties, tmp_path_factory):
    out = tmp_path_factory.mktemp("props")
    return properties.main(["--out-dir", str(out)]), out


def test_table_matches_paper(properties, full_run, capsys):
    result, _ = full_run
    verdicts = result["verdicts"]
    # W2 has every property; L_U fails instance cloning, feature cloning, feature baby and
    # loses sight of collapse as the dimension grows (paper, Table 1 and Sec. 3).
    assert all(verdicts["W2"].values()), verdicts["W2"]
    assert verdicts["L_U"] == {
        "instance permutation": True,
        "instance cloning": False,
        "feature cloning": False,
        "feature baby": False,
        "collapse degree": True,
        "dimension sweep": False,
    }
    for prop, paper in properties.PAPER.items():
        assert {name: verdicts[name][prop] for name in paper} == paper, prop


def test_measured_values_are_the_expected_ones(full_run):
    study = full_run[0]["study"]
    w2, lu = study["W2"], study["L_U"]
    # L_U sees no difference at all under feature cloning / feature baby.
    _, lu_baby = lu["curves"]["feature baby"]
    assert max(lu_baby) - min(lu_baby) < 1e-9
    _, w2_baby = w2["curves"]["feature baby"]
    assert w2_baby[-1] > w2_baby[0] + 0.5
    # Instance cloning makes L_U *worse* (more zero-distance pairs); W2 is exactly invariant.
    _, lu_cloned = lu["curves"]["instance cloning"]
    assert lu_cloned[-1] > lu_cloned[0] + 0.01
    # W2's collapse gap matches its population value sqrt(2 - 2 sqrt(1 - eta)) at eta = 0.5
    # in low dimension, where the finite-sample floor is negligible.
    gap = w2["collapse_gap"]["gap"][0]
    assert abs(gap - (2 - 2 * 0.5**0.5) ** 0.5) < 0.05


def test_figures_written(full_run):
    result, out = full_run
    names = sorted(Path(p).name for p in result["figures"])
    assert names == sorted(
        [
            "instance_cloning.png",
            "feature_cloning.png",
            "feature_baby.png",
            "collapse_degree.png",
            "dimension_sweep.png",
        ]
    )
    for p in result["figures"]:
        assert Path(p).parent == out
        assert Path(p).read_bytes()[:4] == b"\x89PNG"


def test_deterministic_and_prints_table(properties, capsys):
    argv = ["--n", "128", "--dim", "16", "--sweep-n", "128", "--no-figures"]
    a = properties.main(argv)
    b = properties.main(argv)
    assert a["verdicts"] == b["verdicts"]
    for name in ("W2", "L_U"):
        assert (
            a["study"][name]["curves"]["collapse degree"]
            == b["study"][name]["curves"]["collapse degree"]
        )
    out = capsys.readouterr().out
    assert "instance cloning" in out and "✓" in out and "✗" in out
