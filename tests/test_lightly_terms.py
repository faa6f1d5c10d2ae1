"""``w2reg.adapters.lightly_terms``: lightly's SIGReg / VICReg var+cov / VISReg as terms.

Each term against lightly's own functions called directly (same value, the same random
slices where the function draws them), its name in the logs, its weight from the table, and
one in a regularized model. On a lightly without SIGReg (< 1.5.23) or VISReg (< 1.6) the
error names the version to install; these tests check that instead of skipping.
"""

from __future__ import annotations

import importlib

import pytest
import torch

pytest.importorskip("lightly")

from w2reg import Regularizer  # noqa: E402
from w2reg.adapters import lightly_terms as lt  # noqa: E402
from w2reg.adapters.defaults import DEFAULTS, PAPER_METHODS  # noqa: E402
from w2reg.terms import as_term  # noqa: E402


def has(module: str, name: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


HAS_SIGREG = has("lightly.loss.lejepa_loss", "SIGReg")
HAS_VISREG = has("lightly.loss.visreg_loss", "visreg_shape_loss")
#: the terms the installed lightly has (the others are checked as errors below)
AVAILABLE = ["vicreg"] + ["sigreg"] * HAS_SIGREG + ["visreg"] * HAS_VISREG


def rows(n: int = 64, m: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, m, generator=torch.Generator().manual_seed(seed)) * 0.7 + 0.1


def seeded(fn, z, seed: int = 5) -> torch.Tensor:
    torch.manual_seed(seed)
    return fn(z)


# -- make, names ----------------------------------------------------------------------------------
def test_names_and_unknown_names():
    assert lt.NAMES == ("sigreg", "vicreg", "visreg")
    with pytest.raises(ValueError, match=r"name must be one of \['sigreg', 'vicreg', 'visreg'\]"):
        lt.make("vic")
    # what an older lightly says (the same helper makes every term)
    with pytest.raises(ImportError, match=r"lightly\.loss\.NoSuchLoss .* needs lightly >= 9\.9"):
        lt._lightly("lightly.loss", "NoSuchLoss", "9.9")


def test_vicreg_is_lightlys_variance_plus_covariance():
    from lightly.loss.vicreg_loss import covariance_loss, variance_loss

    z = rows()
    term = lt.make("vicreg")
    assert as_term(term).name == "vicreg"
    want = variance_loss(z, eps=1e-4) + (2.0 / 25.0) * covariance_loss(z)
    torch.testing.assert_close(term(z), want, rtol=0, atol=0)
    custom = lt.VICRegVarCov(cov_weight=0.5, eps=1e-3)
    torch.testing.assert_close(
        custom(z), variance_loss(z, eps=1e-3) + 0.5 * covariance_loss(z), rtol=0, atol=0
    )


def test_sigreg_is_lightlys_sigreg():
    if not HAS_SIGREG:
        with pytest.raises(ImportError, match=r"lightly >= 1\.5\.23"):
            lt.make("sigreg")
        return
    from lightly.loss.lejepa_loss import SIGReg

    term = lt.make("sigreg")
    assert isinstance(term, SIGReg) and as_term(term).name == "sigreg"
    z = rows()
    torch.testing.assert_close(seeded(term, z), seeded(SIGReg(), z), rtol=0, atol=0)
    assert lt.sigreg(num_vectors=32).num_vectors == 32


def test_visreg_is_lightlys_scale_shape_center():
    if not HAS_VISREG:
        with pytest.raises(ImportError, match=r"lightly >= 1\.6\.0"):
            lt.make("visreg")(rows())
        return
    from lightly.loss.visreg_loss import visreg_center_loss, visreg_scale_loss, visreg_shape_loss

    term = lt.make("visreg")
    assert as_term(term).name == "visreg"
    z = rows()

    def direct(x):
        return (
            visreg_scale_loss(x)
            + visreg_shape_loss(x, num_slices=4096, eps=1e-4)
            + visreg_center_loss(x)
        )

    torch.testing.assert_close(seeded(term, z), seeded(direct, z), rtol=0, atol=0)
    assert not torch.equal(seeded(term, z, 1), seeded(term, z, 2))  # fresh slices per call
    with pytest.raises(ValueError, match="num_slices"):
        lt.VISRegTerm(num_slices=0)


@pytest.mark.parametrize("name", AVAILABLE)
def test_as_a_regularizer_term_it_is_weight_times_lightlys_value(name):
    z0, z1 = rows(seed=1), rows(seed=2)
    fn = lt.make(name)
    reg = Regularizer(fn, 0.4)
    got = seeded(lambda _: reg(z0, z1), None)
    want = 0.4 * seeded(fn, torch.cat([z0, z1]))
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    assert reg.term.name == name and reg.state_dict() == {}


# -- weights ---------------------------------------------------------------------------------------
def test_per_alignment_numbers():
    assert lt.PER_ALIGNMENT["sigreg"] == pytest.approx(0.05 / 0.2375)
    assert lt.PER_ALIGNMENT["vicreg"] == 1.0
    assert lt.PER_ALIGNMENT["visreg"] == pytest.approx(6.0)


@pytest.mark.parametrize("name", ["sigreg", "vicreg", "visreg"])
@pytest.mark.parametrize("method", PAPER_METHODS)
def test_weight_is_per_alignment_times_the_methods_alignment(name, method):
    alignment = DEFAULTS[method].alignment
    if alignment is None:  # Barlow Twins, Zero-CL: no alignment term to scale against
        with pytest.raises(ValueError, match="give the weight yourself"):
            lt.weight(name, method)
        return
    assert lt.weight(name, method) == pytest.approx(lt.PER_ALIGNMENT[name] * alignment)


def test_weight_numbers_and_names():
    assert lt.weight("vicreg", "byol") == pytest.approx(2.0)
    assert lt.weight("visreg", "simclr") == pytest.approx(15.0)
    assert lt.weight("sigreg", "mocov2plus") == pytest.approx(5 * 0.05 / 0.2375)  # alias
    with pytest.raises(ValueError, match="name must be one of"):
        lt.weight("lu", "byol")
    with pytest.raises(ValueError, match="method must be one of"):
        lt.weight("vicreg", "dino")


# -- in a model ------------------------------------------------------------------------------------
def test_in_a_regularized_model_the_term_is_lightlys_and_adds_no_state():
    from glue_models import SimCLR, batch_of, online_projections

    from w2reg.adapters.lightly import w2_regularized

    name = "sigreg" if HAS_SIGREG else "vicreg"
    fn = lt.make(name)
    weight = lt.weight(name, "simclr")
    model = w2_regularized(SimCLR, term=fn, weight=weight)()
    plain = SimCLR()
    plain.load_state_dict(model.state_dict(), strict=True)  # nothing added to the state
    batch = batch_of()
    z = online_projections(model, batch[0])
    torch.manual_seed(7)
    loss = model.training_step(batch, 0)
    torch.manual_seed(7)
    want = weight * float(fn(z))
    diff = float(loss.detach()) - float(plain.training_step(batch, 0).detach())
    assert diff == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert model.w2reg.loss.term.name == name
