"""The stable-pretraining binding on real spt objects: forward-function modules and method
classes, trained by spt's own ``training_step`` (no mocks). The oracle is scipy's W2 in
float64 (tests/oracle.py) of the projections an independent hook recorded."""

from __future__ import annotations

import copy
import math

import pytest
import torch

spt = pytest.importorskip("stable_pretraining")

import lightning.pytorch as pl  # noqa: E402
from oracle import bures_w2, wang_isola  # noqa: E402
from spt_fixture import (  # noqa: E402
    CLASSES,
    FORWARDS,
    WITH_ENV_DUMP,
    B,
    Steps,
    build,
    from_class,
    from_forward,
    keep_outputs,
    loader,
    quiet_spt,  # noqa: F401  (autouse fixture)
    trainer,
)
from torch import nn  # noqa: E402

from w2reg import LinearDecay  # noqa: E402
from w2reg.adapters.head import NoProjections  # noqa: E402
from w2reg.adapters.spt import (  # noqa: E402
    LOG_TERM,
    LOG_W2,
    LOG_WEIGHT,
    METHODS,
    SPT_LOSS_SCALE,
    W2Regularizer,
    default_weight,
    detect_method,
    projector_name,
)

#: the weight a default W2Regularizer() takes on each tiny module of spt_fixture (temperatures:
#: the forward functions' NTXEntLoss at 0.5 as built there; the classes' defaults: SimCLR 0.5,
#: MoCo v2 0.2, NNCLR 0.1)
EXPECTED_DEFAULT = {
    "forward:simclr": 0.5 * 0.2 / 0.5,  # the table's 0.5 at T = 0.2
    "forward:byol": 0.2 * 0.5,  # the paper's 0.2; spt averages the two directions
    "forward:nnclr": 0.5 * 0.2 / 0.5,
    "forward:barlow_twins": 30.0,  # LinearDecay(30, 0): epoch 0
    "class:SimCLR": 0.5 * 0.2 / 0.5,
    "class:BYOL": 0.2 * 0.5,
    "class:MoCov2": 1.0 * 0.5 * 0.2 / 0.2,  # one direction of the paper's two, T = 0.2
    "class:NNCLR": 0.5 * 0.2 / 0.1,
    "class:SimSiam": 0.2 * 0.25,
    "class:BarlowTwins": 30.0,
}
KINDS = [f"forward:{n}" for n in FORWARDS] + [f"class:{n}" for n in CLASSES]


def online_projector(module: nn.Module) -> nn.Module:
    return module.get_submodule(projector_name(module))


def one_step(module: spt.Module, callbacks: list, **kw) -> torch.Tensor:
    steps = Steps()
    trainer(max_steps=1, callbacks=[steps, *callbacks], **kw).fit(module, loader())
    assert len(steps.losses) == 1
    return steps.losses[0]


def test_the_methods_the_issue_names_are_covered() -> None:
    need = {"simclr", "byol", "mocov2", "nnclr", "simsiam", "barlow_twins", "vicreg"}
    assert need <= set(METHODS)
    assert set(SPT_LOSS_SCALE) == need - {"vicreg"}  # VICReg: no default in the table


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_adds_weight_times_w2_of_the_online_projections(kind: str) -> None:
    plain = build(kind)
    module = copy.deepcopy(plain)
    kept = keep_outputs(online_projector(module))
    cb = W2Regularizer(weight=0.5 if "vicreg" in kind.lower() else None)  # VICReg: no default
    loss = one_step(module, [cb])
    base = one_step(plain, [])
    reg = cb.regularizer
    assert reg is not None and reg.taken == 1
    w = EXPECTED_DEFAULT.get(kind, 0.5)
    assert reg.loss.last_weight == pytest.approx(w, rel=1e-12)
    z = torch.cat(kept)
    rows = B if kind == "class:MoCov2" else 2 * B  # MoCo v2: the queries of view 1 only
    assert z.shape[0] == rows == reg.last_rows
    expected = w * bures_w2(z.numpy())
    tol = 1e-6 * max(1.0, abs(float(base)))  # float32 sum: its last digit
    assert abs(float(loss - base) - expected) < tol, (float(loss - base), expected)


@pytest.mark.parametrize("name", ["simclr", "byol"])
def test_simclr_and_byol_to_1e_6_with_the_backbone_getting_the_w2_gradient(name: str) -> None:
    """The issue's case: loss - plain loss = weight * W2 to 1e-6, and the backbone's update
    differs from the plain step's by exactly lr * weight * dW2/dtheta (SGD, lr 0.5)."""
    plain = from_forward(name)
    module = copy.deepcopy(plain)
    start = copy.deepcopy(plain)
    kept = keep_outputs(online_projector(module))
    weight = 0.3
    loss = one_step(module, [W2Regularizer(weight)])
    base = one_step(plain, [])
    w2 = bures_w2(torch.cat(kept).numpy())
    assert abs(float(loss - base) - weight * w2) < 1e-6

    # the oracle gradient: the same online path in float64, from the starting weights
    ref = start.double()
    student = ref.backbone.student if name == "byol" else ref.backbone
    head = ref.get_submodule(projector_name(ref))
    batch = next(iter(loader()))
    z = torch.cat([head(student(v["image"].double())) for v in batch["views"]])
    from w2reg import w2_uniformity

    (weight * w2_uniformity(z)).backward()
    lr = 0.5
    prefix = "backbone.student." if name == "byol" else "backbone."
    got = dict(module.named_parameters())
    other = dict(plain.named_parameters())
    checked = 0
    for pname, p in ref.named_parameters():
        if not pname.startswith(prefix):
            continue
        update_diff = (got[pname] - other[pname]).double()  # = -lr * weight * dW2/dp
        torch.testing.assert_close(update_diff, -lr * p.grad, rtol=1e-4, atol=1e-6)
        checked += int(p.grad.abs().max() > 1e-4)
    assert checked >= 2, "the W2 gradient did not reach the backbone"


@pytest.mark.parametrize("kind", ["forward:byol", "class:BYOL", "class:MoCov2"])
def test_the_momentum_branch_is_never_captured(kind: str) -> None:
    module = build(kind)
    with torch.no_grad():  # a teacher unlike the student: its W2 would differ
        for p in module.projector.teacher.parameters():
            p.add_(torch.randn_like(p))
    student = keep_outputs(module.projector.student)
    teacher = []
    module.projector.teacher.register_forward_hook(lambda m, i, o: teacher.append(o.detach()))
    cb = W2Regularizer(weight=1.0)
    one_step(module, [cb])
    assert teacher, "the teacher ran (its outputs are the targets)"
    assert projector_name(module) == "projector.student"
    z = torch.cat(student)
    assert cb.regularizer.last_rows == z.shape[0]
    assert float(cb.regularizer.loss.last_value) == pytest.approx(bures_w2(z.numpy()), abs=1e-6)


def test_a_teacher_that_is_the_student_runs_under_no_grad_and_is_not_captured() -> None:
    """ema 0: spt's TeacherStudentWrapper makes the teacher the student module itself; its
    teacher pass (forward_teacher, under no_grad) must not add rows."""
    from stable_pretraining.backbone import TeacherStudentWrapper

    module = from_forward("byol")
    module.projector = TeacherStudentWrapper(
        module.projector.student, base_ema_coefficient=0.0, final_ema_coefficient=0.0
    )
    assert module.projector.teacher is module.projector.student
    calls = []
    module.projector.student.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    kept = keep_outputs(module.projector.student)
    cb = W2Regularizer(1.0)
    one_step(module, [cb])
    assert len(calls) == 4  # two online views, two target views
    assert cb.regularizer.last_rows == torch.cat(kept).shape[0] == 2 * B
    assert float(cb.regularizer.loss.last_value) == pytest.approx(
        bures_w2(torch.cat(kept).numpy()), abs=1e-6
    )


def test_the_term_is_on_the_global_batch_by_default() -> None:
    cb = W2Regularizer()
    one_step(from_forward("simclr"), [cb])
    assert cb.gather_distributed and cb.regularizer.loss.gather_distributed


def test_head_projector_means_the_student_of_a_teacher_student_wrapper() -> None:
    module = from_forward("byol")
    assert projector_name(module, "projector") == "projector.student"
    plain = from_forward("simclr")
    assert projector_name(plain) == "projector"
    with pytest.raises(ValueError, match="head='head'.*top-level modules"):
        projector_name(plain, "head")


def test_the_method_is_recognised_from_the_class_or_the_forward_functions_loss() -> None:
    for name in FORWARDS:
        assert detect_method(from_forward(name)) == name
    keys = {"MoCov2": "mocov2", "BarlowTwins": "barlow_twins", "SimSiam": "simsiam"}
    for name in CLASSES:
        assert detect_method(from_class(name)) == keys.get(name, name.lower())
    assert (
        detect_method(spt.Module(forward=lambda self, b, s: {}, backbone=nn.Linear(2, 2))) is None
    )


def test_default_weights_follow_the_table_and_spts_loss_scales() -> None:
    assert default_weight("byol") == 0.1
    assert default_weight("simsiam") == 0.05
    d = default_weight("barlow_twins")
    assert isinstance(d, LinearDecay) and (d.start, d.end) == (30.0, 0.0)
    assert default_weight("simclr", from_forward("simclr", temperature=0.2)) == 0.5
    assert default_weight("simclr", from_forward("simclr", temperature=0.1)) == 1.0
    from w2reg.adapters.defaults import LU_RELATIVE_WEIGHT

    assert default_weight("byol", term="lu") == pytest.approx(0.1 * LU_RELATIVE_WEIGHT)
    with pytest.raises(ValueError, match="temperature: pass the module"):
        default_weight("simclr")
    with pytest.raises(ValueError, match="no default W2 weight.*weight="):
        default_weight("vicreg")
    with pytest.raises(ValueError, match="knows spt's"):
        default_weight("dino")
    with pytest.raises(ValueError, match="no default weight: give the weight"):
        default_weight("byol", term=lambda z: z.sum())


def test_vicreg_without_a_weight_says_to_give_one() -> None:
    with pytest.raises(ValueError, match=r"no default W2 weight.*W2Regularizer\(weight=\.\.\.\)"):
        one_step(from_class("VICReg"), [W2Regularizer()])
    with pytest.raises(ValueError, match="none of the spt methods.*ssl_method="):
        module = spt.Module(
            forward=from_forward("simclr").forward.__func__,  # its loss renamed: not found
            backbone=nn.Flatten(),
            projector=nn.Linear(192, 4),
            my_loss=spt.losses.NTXEntLoss(),
        )
        one_step(module, [W2Regularizer()])


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(weight=-1.0), "weight"),
        (dict(weight="0.2"), "weight"),
        (dict(weight=lambda m: 0.2), "weight must be None"),
        (dict(head=""), "head"),
        (dict(term="sigreg"), "term must be one of"),
        (dict(normalize="yes"), "normalize"),
        (dict(gather_distributed=1), "gather_distributed"),
        (dict(method="fast"), "method"),
        (dict(ssl_method="dino"), "ssl_method='dino'"),
    ],
)
def test_invalid_settings_are_refused_when_the_callback_is_made(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        W2Regularizer(**bad)


def test_a_plain_lightning_module_is_refused_with_what_to_use_instead() -> None:
    class Plain(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.projector = nn.Linear(192, 4)

        def training_step(self, batch, batch_idx):
            return self.projector(batch["views"][0]["image"].flatten(1)).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    with pytest.raises(TypeError, match="spt.Module.*w2_regularized"):
        trainer(max_steps=1, callbacks=[W2Regularizer(1.0)]).fit(Plain(), loader())


def test_a_wrong_head_fails_the_step_with_a_message_naming_it() -> None:
    module = from_forward("simclr")
    module.unused = nn.Linear(16, 4)  # never called
    with pytest.raises(NoProjections, match="head 'unused'"):
        one_step(module, [W2Regularizer(1.0, head="unused")])


@pytest.mark.parametrize("term", ["lu", "callable"])
def test_any_term(term: str) -> None:
    def spread(z: torch.Tensor) -> torch.Tensor:  # a user's term: the mean squared norm
        return z.pow(2).sum(1).mean()

    plain = from_forward("simclr")
    module = copy.deepcopy(plain)
    kept = keep_outputs(module.projector)
    cb = W2Regularizer(0.7, term=spread if term == "callable" else "lu")
    t = trainer(max_steps=1, callbacks=[cb])
    steps = Steps()
    t.callbacks.append(steps)
    t.fit(module, loader())
    base = one_step(plain, [])
    z = torch.cat(kept)
    if term == "lu":
        value, key = wang_isola(z.numpy() / z.norm(dim=1, keepdim=True).numpy()), "train_lu"
    else:
        value, key = float(spread(z)), "train_spread"
    assert abs(float(steps.losses[0] - base) - 0.7 * value) < 1e-6
    assert float(t.callback_metrics[f"{key}_step"]) == pytest.approx(value, abs=1e-5)
    assert cb.state_key == f"W2Regularizer[term={'lu' if term == 'lu' else 'spread'}]"


@pytest.mark.parametrize("probe_first", [True, False])
def test_with_spts_online_probe_in_either_order(probe_first: bool) -> None:
    """OnlineProbe wraps forward and adds its loss; the W2 term is added once either way."""
    plain = from_forward("simclr")
    module = copy.deepcopy(plain)
    kept = keep_outputs(module.projector)
    linear = nn.Linear(16, 3)

    def probe(m):
        import torchmetrics

        return spt.callbacks.OnlineProbe(
            m,
            "probe",
            "embedding",
            "label",
            copy.deepcopy(linear),  # the same probe in both runs
            nn.CrossEntropyLoss(),
            metrics={"acc": torchmetrics.classification.MulticlassAccuracy(3)},
        )

    w2 = W2Regularizer(0.4)
    # the probe wraps forward at construction: build it on each module, in the given order
    first, second = (probe(module), w2) if probe_first else (w2, probe(module))
    loss = one_step(module, [first, second])
    base = one_step(plain, [probe(plain)])
    value = bures_w2(torch.cat(kept).numpy())
    assert abs(float(loss - base) - 0.4 * value) < 1e-6


def test_validation_and_no_grad_calls_are_not_captured_and_rankme_logs_beside_it(
    tmp_path,
) -> None:
    """One epoch with validation, spt's RankMe and a CSV logger: the W2 keys and RankMe's
    reach the same logger; the validation batches add nothing to the term. With all of
    spt's default callbacks, its environment dump too."""
    spt.set(**WITH_ENV_DUMP)
    module = from_forward("simclr")
    cb = W2Regularizer(0.4)
    rankme = spt.callbacks.RankMe(
        name="rankme", target="embedding", queue_length=64, target_shape=16
    )
    logger = pl.loggers.CSVLogger(tmp_path)
    t = trainer(max_epochs=1, logger=logger, log_every_n_steps=1, callbacks=[rankme, cb])
    t.fit(module, loader(2 * B), val_dataloaders=loader(B, seed=1, views=False))
    assert cb.regularizer.taken == 1 and cb.regularizer.last_rows == 2 * B
    import csv

    rows = list(csv.DictReader(open(f"{logger.log_dir}/metrics.csv")))
    logged = {k for row in rows for k, v in row.items() if v}
    assert {f"{LOG_W2}_step", f"{LOG_WEIGHT}_step", f"{LOG_TERM}_step", "rankme"} <= logged
    w2 = [float(r[f"{LOG_W2}_step"]) for r in rows if r.get(f"{LOG_W2}_step")]
    assert len(w2) == 2 and all(math.isfinite(v) and v > 0 for v in w2)


def test_the_binding_reads_no_value_on_the_host(monkeypatch) -> None:
    """No ``.item()``, ``float(t)``, ``int(t)``, ``bool(t)`` or ``.tolist()`` of a tensor in
    the binding's code (this module, the head hook, the Lightning glue) during training: on a
    device each would synchronise the host every step (spt's OnlineProbe calls ``.item()``).
    The core's own reads happen on CPU tensors only (tests/test_cuda.py checks it on a GPU)."""
    import sys
    from pathlib import Path

    import w2reg.adapters._lightning as glue
    import w2reg.adapters.head as head
    import w2reg.adapters.spt as binding

    ours = {Path(m.__file__).resolve() for m in (glue, head, binding)}
    calls: list[str] = []
    for attr in ("item", "tolist", "__float__", "__int__", "__bool__", "__index__"):
        original = getattr(torch.Tensor, attr)

        def spy(self, *a, _o=original, _n=attr, **k):
            caller = Path(sys._getframe(1).f_code.co_filename).resolve()
            if caller in ours:
                calls.append(f"{_n} in {caller.name}:{sys._getframe(1).f_lineno}")
            return _o(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, attr, spy)
    cb = W2Regularizer(LinearDecay(0.4, 0.0))
    trainer(max_epochs=2, callbacks=[cb]).fit(from_forward("byol"), loader(2 * B))
    assert cb.regularizer.taken == 1 and cb.regularizer.loss.last_weight == 0.2
    assert calls == [], calls
