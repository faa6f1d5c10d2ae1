"""``w2reg.terms``: the terms of a step's projections (names, checks, values, gathering).

Pure PyTorch (the core env runs it). Values against the core's functions and a float64
NumPy oracle of Wang & Isola's L_U; gathering on two gloo processes against the
single-process value and gradient on the concatenated rows (as tests/test_distributed.py
does for W2 alone).
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from w2reg import Regularizer, W2Uniformity, w2_uniformity, wang_isola_uniformity
from w2reg.terms import TERMS, CallableTerm, LUTerm, Term, W2Term, as_term


def rows(n: int = 48, m: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def my_Variance_2(z: torch.Tensor) -> torch.Tensor:  # noqa: N802 - a user's name, as given
    return z.var(dim=0).mean()


class SketchLike(nn.Module):
    """A module term with a buffer, as lightly's ``SIGReg`` is."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(2.0, dtype=torch.float64))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * z.square().mean()


def lu_oracle(z: np.ndarray, t: float = 2.0) -> float:
    """``log mean_{i<j} exp(-t ||x_i - x_j||^2)`` of the unit rows, float64 NumPy."""
    x = z / np.linalg.norm(z, axis=1, keepdims=True)
    i, j = np.triu_indices(len(x), k=1)
    d2 = ((x[i] - x[j]) ** 2).sum(axis=1)
    top = (-t * d2).max()
    return float(top + np.log(np.exp(-t * d2 - top).mean()))


# -- names -----------------------------------------------------------------------------------------
def test_builtin_names_and_the_default():
    assert TERMS == ("w2", "lu")
    assert isinstance(as_term(), W2Term) and as_term().name == "w2"
    assert isinstance(as_term("lu"), LUTerm) and as_term("lu").name == "lu"


@pytest.mark.parametrize(
    ("fn", "name", "want"),
    [
        (my_Variance_2, None, "my_variance_2"),
        (lambda z: z.mean(), None, "term"),
        (SketchLike(), None, "sketchlike"),
        (nn.Identity(), None, "identity"),
        (lambda z: z.mean(), "spread", "spread"),
    ],
    ids=["function", "lambda", "module", "torch-module", "given"],
)
def test_callable_names(fn, name, want):
    term = as_term(fn, name=name)
    assert isinstance(term, CallableTerm) and term.name == want


def test_a_term_instance_is_returned_as_is():
    term = LUTerm(t=1.0)
    assert as_term(term) is term


# -- checks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"term": "w3"}, r"term must be one of \['w2', 'lu'\]"),
        ({"term": 3}, "term must be one of"),
        ({"term": None}, "term must be one of"),
        ({"term": b"w2"}, "term must be one of"),
        ({"term": "lu", "method": "exact"}, "method='exact' applies to term='w2' only"),
        ({"term": my_Variance_2, "method": "exact"}, "method='exact' applies to term='w2' only"),
        ({"term": "w2", "method": "svd"}, "method"),
        ({"term": "w2", "normalize": "no"}, "normalize must be True or False"),
        ({"term": "lu", "normalize": 1}, "normalize must be True or False"),
        ({"term": my_Variance_2, "name": "two words"}, "name must be an identifier"),
        ({"term": my_Variance_2, "name": 7}, "name must be an identifier"),
    ],
)
def test_as_term_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        as_term(**kwargs)


def test_lu_temperature_is_checked():
    for t in (0, -1.0, True, "2"):
        with pytest.raises(ValueError, match=r"t must be > 0 \(the temperature\), a finite number"):
            LUTerm(t=t)


@pytest.mark.parametrize(
    ("fn", "got"),
    [
        (lambda z: z.mean(dim=0), "(10,)"),
        (lambda z: z.mean().reshape(1), "(1,)"),
        (lambda z: float(z.mean()), "float"),
        (lambda z: (z > 0).sum(), "()"),  # an integer tensor
        (lambda z: None, "NoneType"),
    ],
    ids=["vector", "one-element", "python-float", "integer", "none"],
)
def test_callable_must_return_a_scalar_floating_tensor(fn, got):
    term = as_term(fn, name="bad")
    with pytest.raises(ValueError, match=r"term 'bad' must return a scalar floating tensor"):
        term.value(rows())
    with pytest.raises(ValueError, match=got.replace("(", r"\(").replace(")", r"\)")):
        Regularizer(fn, 1.0, name="bad")(rows())


def test_callable_gets_checked_rows():
    term = as_term(my_Variance_2)
    with pytest.raises(ValueError, match="z must be 2-D"):
        term.value(torch.randn(4))
    with pytest.raises(ValueError, match="NaN"):
        term.value(torch.full((4, 3), float("nan")))


# -- values ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("method", ["exact", "iterative", "eigh32", "auto"])
def test_w2_term_is_w2_uniformity(normalize, method):
    z = rows()
    got = as_term("w2", normalize=normalize, method=method).value(z)
    assert got.dtype == torch.float64
    want = w2_uniformity(z, normalize=normalize, method="exact")
    # float32 arithmetic inside "iterative" and "eigh32"; "auto" is "exact" for float64 rows
    rtol = {"iterative": 1e-4, "eigh32": 1e-6}.get(method, 1e-10)
    torch.testing.assert_close(got, want, rtol=rtol, atol=0)


def test_lu_term_against_a_numpy_oracle():
    z = rows()
    assert float(as_term("lu").value(z)) == pytest.approx(lu_oracle(z.numpy()), rel=1e-12)
    torch.testing.assert_close(LUTerm(t=1.0).value(z), wang_isola_uniformity(z, t=1.0))
    raw = LUTerm(normalize=False).value(z)
    torch.testing.assert_close(raw, wang_isola_uniformity(z, normalize=False))
    assert not math.isclose(float(raw), float(as_term("lu").value(z)))


def test_callable_gets_the_rows_as_captured():
    z = rows() * 3.0
    assert float(as_term(my_Variance_2).value(z)) == pytest.approx(float(z.var(dim=0).mean()))


def test_regularizer_is_weight_times_term_of_the_concatenated_views():
    from w2reg import LinearDecay

    z0, z1 = rows(24, seed=1), rows(24, seed=2)
    z = torch.cat([z0, z1])
    for term, oracle in (("w2", w2_uniformity), ("lu", wang_isola_uniformity)):
        reg = Regularizer(term, LinearDecay(4.0, 0.0, epochs=8))
        reg.set_epoch(2)
        out = reg(z0, z1)
        assert float(out) == pytest.approx(3.0 * float(oracle(z)), rel=1e-10)
        assert reg.last_weight == 3.0 and reg.term.name == term
    spread = Regularizer(my_Variance_2, 0.5)
    assert float(spread(z0, z1)) == pytest.approx(0.5 * float(my_Variance_2(z)))
    assert spread.term.name == "my_variance_2"


def test_float32_views_keep_a_float32_value_and_return_their_dtype():
    z = rows().float()
    reg = Regularizer("lu", 2.0)
    out = reg(z)
    assert out.dtype == torch.float32 and reg.last_value.dtype == torch.float32
    assert W2Uniformity()(z.double()).dtype == torch.float64


# -- a module term ---------------------------------------------------------------------------------
def test_module_term_stays_out_of_the_module_tree():
    sketch = SketchLike()
    reg = Regularizer(sketch, 1.0)
    model = nn.Sequential(nn.Linear(4, 4))
    model.reg = reg
    assert reg.state_dict() == {} and list(reg.buffers()) == []
    assert set(model.state_dict()) == {"0.weight", "0.bias"}
    assert reg.term.fn is sketch


def test_module_term_is_moved_to_the_rows_device():
    """The rows on another device (``meta``: no accelerator needed) take the term's buffers
    there before it is called."""
    sketch = SketchLike()
    assert sketch.scale.device.type == "cpu"
    out = as_term(sketch).value(torch.empty(16, 4, device="meta", dtype=torch.float64))
    assert out.device.type == "meta" and out.dim() == 0
    assert sketch.scale.device.type == "meta"


def test_a_term_subclass_is_used_as_given():
    class Mean(Term):
        name = "mean"

        def value(self, z, *, gather_distributed=False):
            return z.mean()

    reg = Regularizer(Mean(), 2.0)
    z = rows()
    assert float(reg(z)) == pytest.approx(2.0 * float(z.mean())) and reg.term.name == "mean"


# -- gathering on two processes --------------------------------------------------------------------
WORLD, LOCAL, DIM = 2, 16, 6


def _weights() -> tuple[torch.Tensor, nn.Linear]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(WORLD * LOCAL, 5, generator=g, dtype=torch.float64)
    lin = nn.Linear(5, DIM).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(DIM, 5, generator=g, dtype=torch.float64))
        lin.bias.copy_(torch.randn(DIM, generator=g, dtype=torch.float64))
    return x, lin


GATHER_TERMS = {"w2": "w2", "lu": "lu", "callable": my_Variance_2}


def _gather_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    out = {}
    try:
        for key, term in GATHER_TERMS.items():
            x, lin = _weights()
            z = lin(x[rank * LOCAL : (rank + 1) * LOCAL])
            value = Regularizer(term, 1.0, gather_distributed=True, method="auto")(z)
            value.backward()
            for p in lin.parameters():  # DDP's averaging of parameter gradients
                dist.all_reduce(p.grad)
                p.grad /= WORLD
            out[key] = (value.detach(), lin.weight.grad.clone(), lin.bias.grad.clone())
    finally:
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    os._exit(0)


def test_every_term_gathers_the_global_batch_with_gradients():
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_gather_worker, args=(os.path.join(tmp, "init"), tmp), nprocs=WORLD)
        results = [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(WORLD)]
    for key, term in GATHER_TERMS.items():
        x, lin = _weights()
        value = Regularizer(term, 1.0)(lin(x))
        value.backward()
        local = float(Regularizer(term, 1.0)(lin(x[:LOCAL])))
        assert abs(local - float(value)) > 1e-6, key  # the global value is another number
        for rank in range(WORLD):
            got, w_grad, b_grad = results[rank][key]
            torch.testing.assert_close(got, value.detach(), rtol=1e-10, atol=0)
            torch.testing.assert_close(w_grad, lin.weight.grad, rtol=1e-8, atol=1e-12)
            torch.testing.assert_close(b_grad, lin.bias.grad, rtol=1e-8, atol=1e-12)
