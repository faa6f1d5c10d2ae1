"""``HeadRegularizer`` in a plain PyTorch loop (no framework): the numbers and gradients.

``begin()`` ... ``end()`` around a step returns ``weight_t * W2`` of everything the head
computed with gradients in between; checked against :func:`w2reg.w2_uniformity` of the
concatenated outputs, computed here, with gradient accumulation, ``torch.no_grad``
evaluation, a model called several times per step, and a timm model's classifier head.
Then the object's own behaviour: state, restore, errors, a replaced head.
Pure PyTorch (the core env runs it; the timm case needs timm).
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

from w2reg import LinearDecay, w2_uniformity
from w2reg.adapters.head import HeadRegularizer, NoProjections  # imports no framework


class Net(nn.Module):
    """``backbone -> projection_head``, float64."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(6, 16), nn.Tanh())
        self.projection_head = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 5))
        self.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x))


def data(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def ssl(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """A stand-in SSL loss (alignment)."""
    return (z0 - z1).square().sum(dim=1).mean()


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_plain_loop_term_and_gradients_are_those_of_w2_of_the_concatenated_outputs():
    torch.manual_seed(0)
    model = Net()
    oracle = copy.deepcopy(model)  # the same steps computed by hand
    reg = HeadRegularizer(model, "projection_head", weight=LinearDecay(1.0, 0.0, epochs=4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt_oracle = torch.optim.SGD(oracle.parameters(), lr=0.1)
    for epoch in range(3):
        reg.set_epoch(epoch)
        x0, x1 = data(12, 2 * epoch), data(12, 2 * epoch + 1)
        reg.begin()
        z0, z1 = model(x0), model(x1)
        term = reg.end()
        loss = ssl(z0, z1) + term
        opt.zero_grad()
        loss.backward()

        weight = 1.0 - epoch / 4
        o0, o1 = oracle(x0), oracle(x1)
        want = weight * w2_uniformity(torch.cat([o0, o1]))
        assert float(term) == pytest.approx(float(want), rel=1e-12)
        assert reg.last_rows == 24 and reg.loss.last_weight == weight
        opt_oracle.zero_grad()
        (ssl(o0, o1) + want).backward()
        for name, grad in grads(oracle).items():
            torch.testing.assert_close(grads(model)[name], grad, rtol=1e-10, atol=1e-14)
        opt.step()
        opt_oracle.step()


def test_gradient_accumulation_each_micro_batch_carries_its_own_term():
    torch.manual_seed(0)
    model = Net()
    oracle = copy.deepcopy(model)
    reg = HeadRegularizer(model, "projection_head", weight=0.5)
    micro = [(data(8, 10 + i), data(8, 20 + i)) for i in range(4)]
    terms = []
    for x0, x1 in micro:  # accumulate: one begin/end per micro-batch, backward each
        reg.begin()
        loss = ssl(model(x0), model(x1))
        term = reg.end()
        terms.append(float(term))
        ((loss + term) / len(micro)).backward()
    total = 0.0
    for (x0, x1), got in zip(micro, terms, strict=True):
        o0, o1 = oracle(x0), oracle(x1)
        want = 0.5 * w2_uniformity(torch.cat([o0, o1]))
        assert got == pytest.approx(float(want), rel=1e-12)
        total = total + (ssl(o0, o1) + want) / len(micro)
    total.backward()
    for name, grad in grads(oracle).items():
        torch.testing.assert_close(grads(model)[name], grad, rtol=1e-10, atol=1e-14)
    # the accumulated term differs from W2 of all micro-batches at once (it is per micro-batch)
    everything = torch.cat([oracle(x) for pair in micro for x in pair])
    assert abs(sum(terms) / 4 - 0.5 * float(w2_uniformity(everything))) > 1e-6


def test_no_grad_evaluation_is_never_captured():
    model = Net()
    reg = HeadRegularizer(model, "projection_head", weight=1.0)
    with torch.no_grad():
        model(data(16, 0))  # evaluation before the step
    reg.begin()
    z = model(data(10, 1))
    with torch.no_grad():
        model(data(30, 2))  # evaluation inside the step (kNN monitor, targets)
    model.eval()
    with torch.inference_mode():
        model(data(30, 3))
    model.train()
    term = reg.end()
    assert reg.last_rows == 10
    assert float(term) == pytest.approx(float(w2_uniformity(z.detach())), rel=1e-12)
    model(data(16, 4))  # after end: nothing is kept
    assert not reg.pending and not reg.active


def test_a_model_called_several_times_per_step():
    model = Net()
    reg = HeadRegularizer(model, "projection_head", weight=2.0)
    xs = [data(8, 0), data(8, 1), data(6, 2), data(6, 3)]  # two global, two smaller crops
    reg.begin()
    zs = [model(x) for x in xs]
    partial = reg.take()  # capturing goes on after take()
    z_extra = model(data(4, 9))
    rest = reg.end()
    assert float(partial) == pytest.approx(2.0 * float(w2_uniformity(torch.cat(zs))), rel=1e-12)
    assert float(rest) == pytest.approx(2.0 * float(w2_uniformity(z_extra)), rel=1e-12)
    assert reg.last_rows == 4 and reg.taken == 2


def test_a_timm_model_head():
    timm = pytest.importorskip("timm", reason="timm is not installed")
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=8, img_size=32)
    keys = set(model.state_dict())
    reg = HeadRegularizer(model, "head", weight=0.3)  # the classifier: (B, 8) outputs
    assert set(model.state_dict()) == keys  # attaching adds nothing to the state
    x0, x1 = torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32)
    reg.begin()
    z0, z1 = model(x0), model(x1)
    with torch.no_grad():
        model(torch.randn(6, 3, 32, 32))
    term = reg.end()
    want = 0.3 * w2_uniformity(torch.cat([z0, z1]).detach())
    assert float(term) == pytest.approx(float(want), rel=1e-5)
    term.backward()
    assert model.head.weight.grad is not None and model.patch_embed.proj.weight.grad is not None
    # the hooked model still pickles (the hook is one module-level function)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    copy_reg = HeadRegularizer(loaded, "head", weight=0.3)
    copy_reg.begin()
    loaded(x0)
    assert copy_reg.end().requires_grad and not reg.pending


# -- the object's behaviour ------------------------------------------------------------------------
def test_state_dict_and_restored_carry_the_settings_in_plain_types():
    model = Net()
    reg = HeadRegularizer(
        model, "projection_head", LinearDecay(2.0, 1.0, epochs=5), term="lu", normalize=False
    )
    reg.set_epoch(3)
    state = reg.state_dict()
    assert state["settings"] == {
        "head": "projection_head",
        "term": "lu",
        "term_name": "lu",
        "normalize": False,
        "method": None,
        "gather_distributed": False,
    }
    assert pickle.loads(pickle.dumps(state)) == state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True) == state  # plain types only

    default = HeadRegularizer(model, "projection_head", 1.0)
    back = default.restored(state)
    assert back is not default and back.state_dict() == state
    assert back.loss.term.name == "lu" and back.loss.weight == pytest.approx(2.0 - 3 / 5)
    with pytest.raises(RuntimeError, match="removed"):
        default.begin()  # the replaced regularizer captures nothing any more
    same = HeadRegularizer(
        model, "projection_head", LinearDecay(2.0, 1.0, epochs=5), term="lu", normalize=False
    )
    assert same.restored(state) is same and same.loss.schedule.epoch == 3


def test_restored_refuses_another_callable_term():
    def spread(z):
        return z.var(dim=0).mean()

    model = Net()
    state = HeadRegularizer(model, "projection_head", 1.0, term=spread).state_dict()
    with pytest.raises(ValueError, match="'spread'"):
        HeadRegularizer(model, "projection_head", 1.0).restored(state)


def test_errors_name_what_is_wrong():
    model = Net()
    with pytest.raises(ValueError, match="head='proj'.*top-level modules are"):
        HeadRegularizer(model, "proj")
    with pytest.raises(ValueError, match="model must be an nn.Module"):
        HeadRegularizer("model", "proj")  # type: ignore[arg-type]
    reg = HeadRegularizer(model, "projection_head")
    reg.begin()
    with torch.no_grad():
        model(data(4, 0))
    with pytest.raises(NoProjections, match="produced no output with gradients"):
        reg.end()


def test_a_zero_dim_head_output_and_mixed_widths_are_clear_errors():
    scalar = nn.Sequential(nn.Linear(4, 3), nn.Flatten(0))  # (B, 3) -> (3B,) ...

    class Mean(nn.Module):
        def forward(self, x):
            return x.mean()

    head = nn.Sequential(nn.Linear(4, 3), Mean())
    reg = HeadRegularizer(head, None, 1.0)  # the head module itself
    reg.begin()
    with pytest.raises(ValueError, match="0-d tensor"):
        head(torch.randn(5, 4))
    reg.abort()
    reg = HeadRegularizer(scalar, None, 1.0)  # 1-d rows are flattened per row: fine
    reg.begin()
    scalar(torch.randn(5, 4))
    assert reg.end().dim() == 0
    model = Net()
    reg = HeadRegularizer(model.projection_head, None, 1.0)
    reg.begin()
    model(data(4, 0))
    model.projection_head[2](torch.randn(7, 16, dtype=torch.float64))  # a submodule: not hooked
    reg.end()
    assert reg.last_rows == 4


def test_capturing_aborts_when_the_step_raises_and_a_replaced_head_is_followed():
    model = Net()
    reg = HeadRegularizer(model, "projection_head", 1.0)
    with pytest.raises(RuntimeError, match="boom"):
        with reg.capturing():
            model(data(4, 0))
            raise RuntimeError("boom")
    assert not reg.active and not reg.pending
    old = model.projection_head
    model.projection_head = nn.Linear(16, 5).double()
    reg.begin()
    old(torch.randn(3, 16, dtype=torch.float64))  # the old head: not captured
    z = model(data(8, 1))
    term = reg.end()
    assert reg.head is model.projection_head and reg.last_rows == 8
    assert float(term) == pytest.approx(float(w2_uniformity(z.detach())), rel=1e-12)
