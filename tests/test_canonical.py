"""``w2reg.adapters.defaults.canonical``: the one normalisation of method names.

Framework-free (the module imports neither lightly, solo-learn nor Lightning), so it runs with
the core tests.
"""

from __future__ import annotations

import pytest

from w2reg.adapters.defaults import ALIASES, DEFAULTS, PAPER_METHODS, canonical, default_weights


def test_every_paper_method_is_its_own_key() -> None:
    assert len(PAPER_METHODS) == 8 and set(PAPER_METHODS) == set(DEFAULTS)
    for method in PAPER_METHODS:
        assert canonical(method) == method


@pytest.mark.parametrize(
    "name,key",
    [
        ("mocov2plus", "mocov2"),  # solo-learn's name
        ("MoCoV2Plus", "mocov2"),
        ("barlow-twins", "barlow_twins"),
        ("Barlow_Twins", "barlow_twins"),
        ("ALIGN-UNIFORM", "align_uniform"),
        ("zero-cl", "zero_cl"),
    ],
)
def test_other_spellings_map_to_the_key(name: str, key: str) -> None:
    assert canonical(name) == key
    assert default_weights(name) == default_weights(key)  # the weights use the same rule


def test_aliases_point_at_keys() -> None:
    assert ALIASES and all(target in DEFAULTS for target in ALIASES.values())


@pytest.mark.parametrize("bad", ["vicreg", "", "moco v2", None, 3, b"byol"])
def test_anything_else_is_a_value_error_listing_the_methods(bad: object) -> None:
    with pytest.raises(ValueError, match=r"one of the paper's eight methods .*'simclr'") as err:
        canonical(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(err.value)
    assert "mocov2plus" in str(err.value)  # the aliases are named too
