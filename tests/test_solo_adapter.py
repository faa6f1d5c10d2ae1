"""w2reg.adapters.solo with the real, current solo-learn (the Hydra/cfg API; no mocks).

Skipped where current solo-learn is not installed (CI has PyPI's 1.0.2 at most; that one is
tested in test_solo_legacy.py). The entry-script test also needs solo-learn's source tree
(``main_pretrain.py`` is not in the package): ``export W2REG_SOLO_SRC=/path/to/solo-learn``.

Models are built the way solo-learn's own tests build them (tests/methods/utils.py: a plain
OmegaConf cfg) on a tiny backbone registered in solo's backbone table, so each step takes
milliseconds; the recipe's ResNet-18 configs are checked by composing them with Hydra.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

try:
    import w2reg.adapters.solo as ws
except ImportError as err:  # not installed, not importable, or an unsupported version
    pytest.skip(str(err), allow_module_level=True)
if ws.SOLO_API != "cfg":
    pytest.skip(
        f"current solo-learn (Hydra/cfg API, git 1.0.6+) is not installed (found solo-learn "
        f"{ws.SOLO_VERSION}); install it from source (docs/install.md, 'solo-learn')",
        allow_module_level=True,
    )

import solo.methods.base as solo_base  # noqa: E402
import solo_cfg  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from solo.methods import METHODS  # noqa: E402

import w2reg  # noqa: E402
from w2reg.adapters import defaults as paper_defaults  # noqa: E402
from w2reg.adapters import solo_methods, solo_pretrain  # noqa: E402

pl = solo_base.pl  # the Lightning that the installed solo-learn uses
CONFIGS = solo_pretrain.CONFIG_DIR
SOLO_SRC = os.environ.get(solo_pretrain.ENV_VAR)
try:  # W2REG_SOLO_SRC may also be a pip URL (tox solo-git); this test needs a local clone
    MAIN_PRETRAIN = solo_pretrain.find_main_pretrain(SOLO_SRC) if SOLO_SRC else None
except FileNotFoundError:
    MAIN_PRETRAIN = None

TINY = "w2reg_tiny"
BACKBONE_CALLS: list[str] = []
BATCH, NUM_CLASSES = solo_cfg.BATCH, solo_cfg.NUM_CLASSES


def tiny_backbone(method: str, **kwargs: Any) -> nn.Module:
    BACKBONE_CALLS.append(method)
    return solo_cfg.TinyBackbone()


@pytest.fixture(scope="module", autouse=True)
def _solo_setup():
    with solo_cfg.backbone(TINY, tiny_backbone):
        ws.register()
        yield


def make_cfg(method: str, **kwargs: Any):
    return solo_cfg.make_cfg(method, backbone=TINY, **kwargs)


def defaults(method: str, **kwargs: Any) -> tuple[float, float]:
    """The default (w2_weight, w2_final_weight) of ``<method>_w2`` for a tiny cfg."""
    cfg = METHODS[method].add_and_assert_specific_cfg(make_cfg(method, **kwargs))
    return ws.default_weights(method, cfg)


def make_batch(small_crops: int = 0, seed: int = 0) -> list[Any]:
    g = torch.Generator().manual_seed(seed)
    crops = [torch.randn(BATCH, 3, 16, 16, generator=g) for _ in range(2)]
    crops += [torch.randn(BATCH, 3, 8, 8, generator=g) for _ in range(small_crops)]
    return [torch.arange(BATCH), crops, torch.randint(0, NUM_CLASSES, (BATCH,), generator=g)]


def loader() -> torch.utils.data.DataLoader:
    return solo_cfg.loader()


def trainer(**kwargs: Any) -> Any:
    return solo_cfg.trainer(pl, **kwargs)


# ------------------------------------------------------------------ registration, naming


def test_register_adds_every_w2_variant_and_the_two_methods():
    added = ws.register()  # again: idempotent
    for name in ws.PAPER_METHODS:
        assert METHODS[name + "_w2"] is added[name + "_w2"]
        assert issubclass(METHODS[name + "_w2"], METHODS[name])
    assert METHODS["align_uniform"] is solo_methods.AlignUniform
    assert METHODS["zero_cl"] is solo_methods.ZeroCL
    assert ws.register()["byol_w2"] is added["byol_w2"]
    assert METHODS["barlow_twins_w2"].__name__ == "BarlowTwinsW2"
    assert ws.base_method_name("mocov2plus_w2") == "mocov2plus"


def test_register_rejects_unknown_names_and_foreign_entries():
    with pytest.raises(ValueError, match="not in solo.methods.METHODS"):
        ws.register(["no_such_method"])
    with pytest.raises(ValueError, match=r"not in solo.methods.METHODS; did you mean 'byol'\?"):
        ws.register(["boyl"])
    # a W2 variant's name, registered or not yet: the message gives the base name (issue 19)
    for name, base in [("byol_w2", "byol"), ("vicreg_w2", "vicreg")]:
        with pytest.raises(ValueError, match=rf"register\(\[{base!r}\]\) adds {name!r}"):
            ws.register([name])
    with pytest.raises(ValueError, match=r"name of a W2 variant.*register\(\['simclr'\]\)"):
        ws.register(["simclr_w2"])
    saved = METHODS["simclr_w2"]
    METHODS["simclr_w2"] = METHODS["simclr"]
    try:
        with pytest.raises(ValueError, match="overwrite=True"):
            ws.register(["simclr"])
        assert ws.register(["simclr"], overwrite=True)["simclr_w2"] is saved
    finally:
        METHODS["simclr_w2"] = saved


def test_register_all_adds_every_eligible_method_and_names_the_others():
    added = ws.register(ws.ALL)
    eligible = {"vicreg", "swav", "deepclusterv2", "mocov3", "nnbyol", "ressl"} & set(METHODS)
    assert {m + "_w2" for m in eligible} <= set(added)
    assert set(added) >= {m + "_w2" for m in ws.PAPER_METHODS}
    for name, reason in [("dino", "prototype"), ("mae", "no projector"), ("linear", "linear")]:
        if name not in METHODS:
            continue
        assert ws.w2_ineligibility(METHODS[name]) is not None
        assert isinstance(METHODS[name + "_w2"], ws.IneligibleMethod)
        with pytest.raises(ValueError, match=rf"method={name}_w2: .*{reason}"):
            METHODS[name + "_w2"](make_cfg(name + "_w2"))
        with pytest.raises(ValueError, match=rf"methods: {name!r}: .*{reason}"):
            ws.register([name])
    assert ws.w2_ineligibility(METHODS["swav"]) is None
    assert ws.register(ws.ALL) == added  # idempotent


def test_backbone_factory_gets_the_base_method_name():
    BACKBONE_CALLS.clear()
    METHODS["mocov2plus_w2"](make_cfg("mocov2plus_w2"))
    assert set(BACKBONE_CALLS) == {"mocov2plus"}  # online and momentum backbones


@pytest.mark.parametrize("method", ws.PAPER_METHODS)
def test_cfg_defaults_are_the_tables_times_solos_loss_scale(method):
    model = METHODS[method + "_w2"](make_cfg(method + "_w2"))
    start, end = defaults(method)
    reference = paper_defaults.default_weights(method)
    scale = ws.SOLO_LOSS_SCALE[method]
    factor = model.cfg.method_kwargs.scale_loss if isinstance(scale, str) else scale
    assert (start, end) == pytest.approx((reference[0] * factor, reference[1] * factor))
    assert model.cfg.method_kwargs.w2_weight == start
    assert model.cfg.method_kwargs.w2_final_weight == end
    assert model.w2reg.loss.weight == start
    assert model.w2reg.head is model.projector
    assert model.w2reg.loss.gather_distributed and model.w2reg.loss.normalize


@pytest.mark.parametrize(("method", "given", "expected"), solo_cfg.RULE_CASES)
def test_cfg_keys_override_the_defaults_by_the_one_rule(method, given, expected):
    model = METHODS[method + "_w2"](make_cfg(method + "_w2", **given))
    kwargs = model.cfg.method_kwargs
    assert (kwargs.w2_weight, kwargs.w2_final_weight) == pytest.approx(expected)
    assert kwargs.w2_term == given.get("w2_term", "w2")
    schedule = model.w2reg.loss.schedule
    assert (schedule.value_at(0, 3), schedule.value_at(3, 3)) == pytest.approx(expected)
    assert model.w2reg.loss.term.name == kwargs.w2_term


def test_solo_defaults_keep_the_papers_ratio_to_solos_losses():
    # the paper's MoCo v2 1.0 is against the sum of both directions; solo-learn averages them
    assert defaults("mocov2plus") == pytest.approx((0.5, 0.5))
    assert defaults("byol") == pytest.approx((0.2, 0.2))  # solo sums, as the paper's code
    assert defaults("simsiam") == pytest.approx((0.05, 0.05))  # (-cos - cos) / 2: 1/4
    assert defaults("simclr") == defaults("nnclr") == pytest.approx((0.5, 0.5))
    assert defaults("align_uniform") == pytest.approx((0.2, 0.2))
    assert defaults("zero_cl") == pytest.approx((30.0, 30.0))
    # Barlow Twins: scale_loss times the paper's 30 -> 0 (the shipped configs: 0.1)
    assert defaults("barlow_twins", scale_loss=1.0) == pytest.approx((30.0, 0.0))
    assert defaults("barlow_twins", scale_loss=0.1) == pytest.approx((3.0, 0.0))
    assert ws.default_weights("vicreg") == (1.0, 1.0)  # outside the paper's eight
    with pytest.raises(ValueError, match="scale_loss"):
        ws.default_weights("barlow_twins")  # needs the cfg


@pytest.mark.parametrize(
    ("key", "value"),
    [("w2_weight", -1.0), ("w2_weight", "big"), ("w2_final_weight", float("nan"))],
)
def test_invalid_w2_keys_name_the_key(key, value):
    cfg = make_cfg("simclr_w2", **{key: value})
    with pytest.raises(ValueError, match=f"method_kwargs.{key}"):
        METHODS["simclr_w2"](cfg)


def test_method_checks_name_missing_keys():
    cfg = make_cfg("align_uniform")
    del cfg.method_kwargs["proj_output_dim"]
    with pytest.raises(ValueError, match="proj_output_dim"):
        METHODS["align_uniform"](cfg)
    with pytest.raises(ValueError, match="lamb"):
        METHODS["align_uniform_w2"](make_cfg("align_uniform_w2", lamb=0))


def test_unsupported_version_fails_with_versions_in_message(monkeypatch):
    from w2reg.adapters import solo_api

    monkeypatch.delattr(solo_base.BaseMethod, "add_and_assert_specific_cfg")
    monkeypatch.setattr(solo_api, "_installed_version", lambda: "1.0.4")
    with pytest.raises(ImportError, match=r"solo-learn 1\.0\.4 is not supported.*1\.0\.6"):
        solo_api.detect()


# ------------------------------------------------------------------ the training step


#: Beyond the paper's eight: VICReg, and SwAV, whose prototypes follow the projector.
OTHER_METHODS = ("vicreg", "swav")


@pytest.mark.parametrize("method", ws.PAPER_METHODS + OTHER_METHODS)
def test_training_step_adds_weight_times_w2_of_online_projections(method):
    ws.register([method])
    model = METHODS[method + "_w2"](make_cfg(method + "_w2"))
    plain = METHODS[method](make_cfg(method))
    plain.load_state_dict(model.state_dict(), strict=True)  # no parameter or buffer added
    if method == "swav":  # what SwAV's on_train_start sets up, here without a Trainer
        from solo.utils.sinkhorn_knopp import SinkhornKnopp

        model.sk = plain.sk = SinkhornKnopp(model.sk_iters, model.sk_epsilon, 1)
    seen: list[torch.Tensor] = []
    model.projector.register_forward_hook(lambda mod, inp, out: seen.append(out))
    batch = make_batch()

    torch.manual_seed(1)
    loss = model.training_step(batch, 0)
    torch.manual_seed(1)
    reference = plain.training_step(batch, 0)

    z = torch.cat(seen)
    assert z.shape == (2 * BATCH, 8) and z.requires_grad  # both crops, online, with grad
    weight = defaults(method)[0]
    expected = w2reg.w2_uniformity(z.detach().double()).float()
    assert model.w2reg.loss.last_weight == weight
    torch.testing.assert_close(model.w2reg.loss.last_value, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss - reference, weight * expected, rtol=1e-4, atol=1e-4)
    loss.backward()
    assert model.projector[0].weight.grad is not None


def test_align_uniform_and_zero_cl_use_w2regs_losses():
    z1, z2 = torch.randn(BATCH, 8), torch.randn(BATCH, 8)
    au = METHODS["align_uniform"](make_cfg("align_uniform", lamb=0.5))
    expected = w2reg.align_uniform_loss(z1, z2, lam=0.5)
    torch.testing.assert_close(au._ssl_loss([z1, z2]), expected)
    zc = METHODS["zero_cl"](make_cfg("zero_cl", loss_kwargs={"feature_weight": 0.0}))
    expected = w2reg.zero_cl_loss(z1, z2, feature_weight=0.0)
    torch.testing.assert_close(zc._ssl_loss([z1, z2]), expected)


def test_small_crops_are_part_of_the_term():
    model = METHODS["simclr_w2"](make_cfg("simclr_w2", small_crops=2))
    seen: list[torch.Tensor] = []
    model.projector.register_forward_hook(lambda mod, inp, out: seen.append(out))
    model.training_step(make_batch(small_crops=2), 0)
    assert len(seen) == 4
    expected = w2reg.w2_uniformity(torch.cat(seen).detach())
    torch.testing.assert_close(model.w2reg.loss.last_value, expected, rtol=1e-5, atol=1e-6)


def test_registered_model_pickles_with_its_regularizer():
    # what ddp_spawn / multiprocessing do with the model
    import pickle

    model = pickle.loads(pickle.dumps(METHODS["byol_w2"](make_cfg("byol_w2"))))
    assert type(model) is METHODS["byol_w2"] and model.w2reg.head is model.projector
    model.training_step(make_batch(), 0)
    assert model.w2reg.loss.last_weight == 0.2


def test_w2_class_on_a_user_subclass():
    class MySimCLR(METHODS["simclr"]):
        """A user's method: SimCLR with a different temperature default."""

    klass = ws.w2_class(MySimCLR, 0.5)
    assert issubclass(klass, MySimCLR) and klass.__name__ == "MySimCLRW2"
    BACKBONE_CALLS.clear()
    model = klass(make_cfg("my_simclr_w2", temperature=0.2))
    assert BACKBONE_CALLS == ["my_simclr"]
    assert model.cfg.method_kwargs.w2_weight == 0.5
    model.training_step(make_batch(), 0)
    assert model.w2reg.loss.last_weight == 0.5
    with pytest.raises(TypeError, match="BaseMethod subclass"):
        ws.w2_class(nn.Linear)


# ------------------------------------------------------------------ with a Trainer


@pytest.mark.parametrize("method", ws.PAPER_METHODS)
def test_fast_dev_run_logs_like_solo(method):
    model = METHODS[method + "_w2"](make_cfg(method + "_w2"))
    t = trainer(fast_dev_run=True)
    t.fit(model, loader())
    metrics = t.callback_metrics
    for key in (ws.LOG_W2, ws.LOG_WEIGHT, ws.LOG_TERM):
        assert f"{key}_step" in metrics and f"{key}_epoch" in metrics, sorted(metrics)
    assert float(metrics[f"{ws.LOG_WEIGHT}_epoch"]) == pytest.approx(defaults(method)[0])
    assert torch.isfinite(metrics[f"{ws.LOG_W2}_epoch"])


class _WeightPerEpoch(pl.Callback):
    def __init__(self) -> None:
        self.weights: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights[trainer.current_epoch] = pl_module.w2reg.loss.last_weight


def test_schedule_follows_epochs_and_checkpoint_loads_into_plain_class(tmp_path):
    model = METHODS["barlow_twins_w2"](make_cfg("barlow_twins_w2", max_epochs=3, scale_loss=1.0))
    record = _WeightPerEpoch()
    t = trainer(max_epochs=3, limit_train_batches=1, callbacks=[record])
    t.fit(model, loader())
    assert record.weights == pytest.approx({0: 30.0, 1: 20.0, 2: 10.0})  # 30 -> 0 over 3

    path = tmp_path / "w2.ckpt"
    t.save_checkpoint(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    plain = METHODS["barlow_twins"](make_cfg("barlow_twins"))
    plain.load_state_dict(ckpt["state_dict"], strict=True)
    assert ckpt[ws.CHECKPOINT_KEY]["schedule"]["epoch"] == 2

    resumed = METHODS["barlow_twins_w2"](make_cfg("barlow_twins_w2", max_epochs=3, scale_loss=1.0))
    resumed.on_load_checkpoint(ckpt)
    assert resumed.w2reg.loss.schedule.epoch == 2
    assert resumed.w2reg.loss.weight == pytest.approx(10.0)


# ------------------------------------------------------------------ configs and entry script

CONFIG_NAMES = [m + s for m in ws.PAPER_METHODS for s in ("", "_w2")]


def _compose(name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from solo.args.pretrain import parse_cfg

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.2"):
        cfg = compose(config_name=name, overrides=overrides)
    OmegaConf.set_struct(cfg, False)
    return parse_cfg(cfg)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_shipped_configs_compose_and_validate(name, dataset):
    cfg = _compose(name, [f"data={dataset}"])
    assert cfg.method == name and cfg.name == f"{name}-{dataset}"
    assert cfg.data.dataset == dataset and cfg.data.num_classes == int(dataset[5:])
    assert cfg.backbone.name == "resnet18" and cfg.max_epochs == 500
    assert cfg.optimizer.name == "lars" and cfg.optimizer.batch_size == 256
    assert cfg.optimizer.lr == pytest.approx(0.2) and cfg.optimizer.weight_decay == 1e-4
    assert cfg.method_kwargs.proj_output_dim == 256
    assert cfg.data.num_large_crops == 2 and cfg.data.num_small_crops == 0
    cfg = METHODS[name].add_and_assert_specific_cfg(cfg)
    base = ws.base_method_name(name)
    if name.endswith("_w2"):
        start, end = ws.default_weights(base, cfg)
        assert (cfg.method_kwargs.w2_weight, cfg.method_kwargs.w2_final_weight) == (start, end)
    if "temperature" in cfg.method_kwargs:
        assert cfg.method_kwargs.temperature == 0.2
    if "queue_size" in cfg.method_kwargs:
        assert cfg.method_kwargs.queue_size == 4096


def _image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root


#: Hydra overrides shared by the main_pretrain runs: tiny model, CPU, one process, no resume.
TINY_CPU_RUN = [
    "data.num_workers=0",
    f"backbone.name={TINY}",
    "optimizer.batch_size=4",
    "method_kwargs.proj_hidden_dim=16",
    "method_kwargs.proj_output_dim=8",
    "accelerator=cpu",
    "devices='1'",
    "strategy=auto",
    "precision=32",
    "sync_batchnorm=false",
    "auto_resume.enabled=false",
]


@pytest.mark.skipif(
    MAIN_PRETRAIN is None,
    reason=f"set {solo_pretrain.ENV_VAR} to a local solo-learn clone (for main_pretrain.py)",
)
def test_entry_script_runs_main_pretrain_with_a_w2_method(tmp_path, monkeypatch):
    from hydra.core.global_hydra import GlobalHydra

    train = _image_folder(tmp_path / "train")
    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    solo_pretrain.main(
        [
            "--solo-src",
            str(MAIN_PRETRAIN),
            "--config-name=barlow_twins_w2",  # the shipped configs are the default path
            "data.dataset=custom",
            f"data.train_path={train}",
            "data.val_path=null",
            *TINY_CPU_RUN,
            f"checkpoint.dir={tmp_path / 'ckpt'}",
            "+fast_dev_run=true",
            "max_epochs=2",
        ]
    )
    ckpts = sorted((tmp_path / "ckpt" / "barlow_twins_w2").rglob("*.ckpt"))
    assert ckpts, "main_pretrain's Checkpointer wrote no checkpoint"
    ckpt = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    assert ckpt[ws.CHECKPOINT_KEY]["settings"]["head"] == "projector"
    # the run's own cfg (Checkpointer's args.json), as the plain method
    cfg = OmegaConf.load(next(ckpts[-1].parent.glob("args.json")))
    OmegaConf.set_struct(cfg, False)
    cfg.method = "barlow_twins"
    plain = METHODS["barlow_twins"](cfg)
    plain.load_state_dict(ckpt["state_dict"], strict=True)


W2_CONFIGS = [
    "simclr_w2",
    "mocov2plus_w2",
    "nnclr_w2",
    "byol_w2",
    "simsiam_w2",
    "align_uniform_w2",
    "barlow_twins_w2",
    "zero_cl_w2",
]


@pytest.mark.skipif(
    MAIN_PRETRAIN is None,
    reason=f"set {solo_pretrain.ENV_VAR} to a local solo-learn clone (for main_pretrain.py)",
)
@pytest.mark.parametrize(
    "config,dataset", [(c, "cifar10") for c in W2_CONFIGS] + [("byol_w2", "cifar100")]
)
def test_shipped_cifar_configs_run_one_step_on_cifar_fixture(
    config, dataset, tmp_path, monkeypatch
):
    """Each shipped ``<method>_w2`` CIFAR config runs main_pretrain on a tiny on-disk CIFAR.

    torchvision's real CIFAR loader reads the fixture (only its expected MD5s point at the
    fixture's files); nothing is downloaded. The run must have taken its one optimiser step
    with the W2 term of the config (the checkpoint's ``w2reg`` state: the projector, W2, the
    config's weight) and left finite parameters.
    """
    import cifar_fixture
    from hydra.core.global_hydra import GlobalHydra

    root = tmp_path / "cifar"
    sums = cifar_fixture.write(root, dataset)
    cifar_fixture.use_fixture_checksums(monkeypatch, dataset, sums)
    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    solo_pretrain.main(
        [
            "--solo-src",
            str(MAIN_PRETRAIN),
            f"--config-name={config}",
            f"data={dataset}",
            f"data.train_path={root}",
            f"data.val_path={root}",
            *TINY_CPU_RUN,
            f"checkpoint.dir={tmp_path / 'ckpt'}",
            "+fast_dev_run=true",
        ]
    )
    ckpts = sorted((tmp_path / "ckpt").rglob("*.ckpt"))
    assert ckpts, f"{config}: main_pretrain's Checkpointer wrote no checkpoint"
    ckpt = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    assert ckpt["global_step"] >= 1, ckpt["global_step"]  # fast_dev_run: one training batch
    state = ckpt[ws.CHECKPOINT_KEY]
    assert state["settings"]["head"] == "projector" and state["settings"]["term"] == "w2"
    cfg = OmegaConf.load(next(ckpts[-1].parent.glob("args.json")))
    assert state["schedule"]["start"] == pytest.approx(float(cfg.method_kwargs.w2_weight))
    weights = [t for t in ckpt["state_dict"].values() if t.is_floating_point()]
    assert weights and all(torch.isfinite(t).all() for t in weights)


def test_entry_script_explains_a_missing_source(monkeypatch, tmp_path):
    monkeypatch.delenv(solo_pretrain.ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match=solo_pretrain.ENV_VAR):
        solo_pretrain.find_main_pretrain()
    with pytest.raises(FileNotFoundError, match="main_pretrain.py not found"):
        solo_pretrain.find_main_pretrain(tmp_path)
