"""The solo-learn entry script as users run it: several processes, paths, methods by name, help.

``python -m w2reg.adapters.solo_pretrain`` runs solo-learn's own ``main_pretrain.py``
(``W2REG_SOLO_SRC``: a source tree; CI extracts solo-learn's archives for it). The two-process
run is a subprocess started exactly as a user types the command, from a working directory
outside the repository, on the tiny on-disk CIFAR-10 (``cifar_fixture``) read by torchvision's
real loader, with DDP over gloo on the CPU. Its ranks import ``solo_rank_probe`` through the
script's ``--import`` (a user module: a tiny backbone, and Barlow Twins with a per-rank record),
so what each rank computed can be checked against a float64 recomputation here.

The argument handling and ``--help`` need no solo-learn and run everywhere.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from w2reg.adapters import solo_pretrain

TESTS = Path(__file__).resolve().parent
PROG = [sys.executable, "-m", "w2reg.adapters.solo_pretrain"]


def _current_solo() -> tuple[Any, str]:
    try:
        import w2reg.adapters.solo as ws
    except ImportError as err:
        return None, str(err)
    if ws.SOLO_API != "cfg":
        return None, f"current solo-learn (cfg API) is not installed (found {ws.SOLO_VERSION})"
    return ws, ""


ws, NO_SOLO = _current_solo()
needs_solo = pytest.mark.skipif(ws is None, reason=NO_SOLO)
try:  # W2REG_SOLO_SRC may also be a pip URL; these tests need a source tree
    MAIN_PRETRAIN = solo_pretrain.find_main_pretrain() if ws is not None else None
except FileNotFoundError:
    MAIN_PRETRAIN = None
needs_source = pytest.mark.skipif(
    MAIN_PRETRAIN is None,
    reason=f"needs current solo-learn and {solo_pretrain.ENV_VAR}=<its source tree>",
)

#: Hydra overrides of the runs here: the probe's tiny backbone, CPU, small batches, no resume.
TINY_CPU = [
    "data.num_workers=0",
    "backbone.name=w2reg_probe_tiny",
    "optimizer.batch_size=4",
    "method_kwargs.proj_hidden_dim=16",
    "method_kwargs.proj_output_dim=8",
    "accelerator=cpu",
    "precision=32",
    "sync_batchnorm=false",
    "auto_resume.enabled=false",
]


def _env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: tests/ on PYTHONPATH (for the --import module)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("W2REG_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    return {**env, **extra}


def _run(args: list[str], cwd: Path, env: dict[str, str], launcher: list[str] | None = None):
    """``python [launcher] -m w2reg.adapters.solo_pretrain args`` in ``cwd``."""
    command = [sys.executable, *(launcher or []), *PROG[1:], *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return result, f"rc={result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"


def _cifar(root: Path) -> Path:
    """The tiny CIFAR-10 under ``root / "cifar"``, and its checksums' JSON for the probe."""
    import cifar_fixture

    sums = cifar_fixture.write(root / "cifar", "cifar10")
    path = root / "cifar_sums.json"
    path.write_text(json.dumps({"dataset": "cifar10", "checksums": sums}))
    return path


# ------------------------------------------------------------------ several processes


#: How the ranks are started: Lightning's launcher re-runs rank 0's command for rank 1 (the
#: README's command); torchrun (like SLURM's srun) runs the user's command in every rank.
LAUNCHERS = {
    "lightning": [],
    "torchrun": ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"],
}


@needs_source
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_process_ddp_run_through_the_entry_script(launcher, tmp_path):
    """Both ranks train, W2 is that of the global batch on both, the checkpoint loads plain."""
    sums = _cifar(tmp_path)
    probe = tmp_path / "probe"
    probe.mkdir()
    work = tmp_path / "work"  # the user's working directory: not the repository
    work.mkdir()
    args = [
        "--import",
        "solo_rank_probe",
        "--config-name",
        "barlow_twins",
        "method=rank_probe_w2",  # the user module's method, its _w2 by name
        f"data.train_path={tmp_path / 'cifar'}",
        f"data.val_path={tmp_path / 'cifar'}",
        *TINY_CPU,
        "devices='2'",  # the shell's "devices='2'": two CPU processes
        "strategy=ddp",
        "checkpoint.dir=ckpt",  # relative: the working directory's
        "max_epochs=1",
        "+limit_train_batches=2",
        "+limit_val_batches=1",
        "+num_sanity_val_steps=0",
    ]
    env = _env(
        **{
            solo_pretrain.ENV_VAR: str(MAIN_PRETRAIN.parent),
            "W2REG_PROBE_DIR": str(probe),
            "W2REG_PROBE_CIFAR_SUMS": str(sums),
        }
    )
    result, log = _run(args, work, env, launcher=LAUNCHERS[launcher])
    assert result.returncode == 0, log

    import solo_rank_probe  # noqa: F401  (the tiny backbone, for the plain model below)
    from omegaconf import OmegaConf
    from solo.methods import METHODS

    import w2reg

    ranks = [torch.load(probe / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [len(records) for records in ranks] == [2, 2], log  # both ranks trained 2 steps
    for step0, step1 in zip(*ranks, strict=True):
        assert (step0["rank"], step1["rank"]) == (0, 1)
        assert step0["world_size"] == step1["world_size"] == 2
        assert step0["step"] == step1["step"]
        assert not set(step0["indexes"].tolist()) & set(step1["indexes"].tolist())
        assert step0["weight"] == step1["weight"] == 1.0  # not a paper method: 1.0
        # W2 of the global batch: the same on both ranks, equal to the float64 W2 of both
        # ranks' projections together, and not either rank's own
        glob = float(w2reg.w2_uniformity(torch.cat([step0["z"], step1["z"]])))
        assert step0["w2"] == pytest.approx(step1["w2"], rel=1e-6)
        assert step0["w2"] == pytest.approx(glob, rel=1e-5)
        for own in (step0, step1):
            assert abs(float(w2reg.w2_uniformity(own["z"])) - glob) > 1e-3

    ckpts = sorted((work / "ckpt" / "rank_probe_w2").rglob("*.ckpt"))
    assert ckpts, log
    ckpt = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    assert set(ckpt[ws.CHECKPOINT_KEY]["schedule"]) >= {"epoch", "start", "end"}
    cfg = OmegaConf.load(next(ckpts[-1].parent.glob("args.json")))
    OmegaConf.set_struct(cfg, False)
    cfg.method = "barlow_twins"
    METHODS["barlow_twins"](cfg).load_state_dict(ckpt["state_dict"], strict=True)


@needs_solo
def test_w2_models_unpickle_in_a_process_that_never_registered(tmp_path):
    """What ddp_spawn does: the model is unpickled in a fresh process (user methods too)."""
    import solo_cfg
    import solo_rank_probe
    from solo.methods import METHODS

    ws.register(["vicreg", "rank_probe"])
    models = [
        METHODS[name](solo_cfg.make_cfg(name, backbone=solo_rank_probe.TINY))
        for name in ("vicreg_w2", "rank_probe_w2")
    ]
    path = tmp_path / "models.pkl"
    path.write_bytes(pickle.dumps(models))
    code = (
        "import pickle, sys\n"
        "models = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "for m in models:\n"
        "    assert m.w2reg.head is m.projector\n"
        "    print(type(m).__module__, type(m).__name__, m.w2reg.loss.weight)\n"
    )
    env = _env(**{solo_pretrain.IMPORT_ENV_VAR: "solo_rank_probe"})
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.split("\n")[:2] == [
        "w2reg.adapters.solo VICRegW2 1.0",
        "w2reg.adapters.solo RankProbeW2 1.0",
    ]


# ------------------------------------------------------------------ methods by name, paths


def _solo_configs() -> Path:
    assert MAIN_PRETRAIN is not None
    configs = MAIN_PRETRAIN.parent / "scripts" / "pretrain" / "cifar"
    if not (configs / "vicreg.yaml").is_file():
        pytest.skip(f"{configs} has no vicreg.yaml (solo-learn's own CIFAR configs)")
    return configs


def _main_in_process(args: list[str], tmp_path: Path, monkeypatch) -> None:
    import cifar_fixture
    from hydra.core.global_hydra import GlobalHydra

    sums = cifar_fixture.write(tmp_path / "cifar", "cifar10")
    cifar_fixture.use_fixture_checksums(monkeypatch, "cifar10", sums)
    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    solo_pretrain.main(
        [
            "--import",
            "solo_rank_probe",
            *args,
            "wandb.enabled=false",
            f"data.train_path={tmp_path / 'cifar'}",
            f"data.val_path={tmp_path / 'cifar'}",
            *TINY_CPU,
            "devices='1'",
            "strategy=auto",
            "+fast_dev_run=true",
        ]
    )


@needs_source
def test_any_solo_method_as_name_w2_with_a_relative_config_path(tmp_path, monkeypatch):
    """solo-learn's own vicreg config, found relative to the working directory, + W2."""
    relative = os.path.relpath(_solo_configs(), tmp_path)
    assert not Path(relative).is_absolute()
    _main_in_process(
        ["--config-path", relative, "--config-name", "vicreg", "method=vicreg_w2"],
        tmp_path,
        monkeypatch,
    )
    from omegaconf import OmegaConf
    from solo.methods import METHODS

    ckpts = sorted((tmp_path / "trained_models" / "vicreg_w2").rglob("*.ckpt"))
    assert ckpts, "main_pretrain's Checkpointer wrote no checkpoint"
    ckpt = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    assert ckpt[ws.CHECKPOINT_KEY]["settings"]["head"] == "projector"
    cfg = OmegaConf.load(next(ckpts[-1].parent.glob("args.json")))
    OmegaConf.set_struct(cfg, False)
    assert cfg.method_kwargs.w2_weight == 1.0  # outside the paper's eight
    cfg.method = "vicreg"
    METHODS["vicreg"](cfg).load_state_dict(ckpt["state_dict"], strict=True)


@needs_source
@pytest.mark.parametrize("method", ["dino", "mae"])
def test_ineligible_method_fails_with_the_reason(method, tmp_path, monkeypatch):
    """``method=dino_w2`` fails naming the method and why, not with solo's list of names."""
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # Hydra re-raises instead of printing
    reason = {"dino": "prototype", "mae": "no projector"}[method]
    with pytest.raises(ValueError, match=rf"method={method}_w2: .*{method!r}.*{reason}"):
        _main_in_process(
            ["-cp", str(_solo_configs()), "--config-name", "vicreg", f"method={method}_w2"],
            tmp_path,
            monkeypatch,
        )


def test_relative_config_path_is_resolved_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = str(tmp_path / "my_configs")
    assert solo_pretrain.with_config_path(["--config-path", "my_configs", "x=1"]) == [
        "--config-path",
        mine,
        "x=1",
    ]
    assert solo_pretrain.with_config_path(["-cp=my_configs"]) == [f"-cp={mine}"]
    assert solo_pretrain.with_config_path(["-cd", "extra", "--config-name", "byol_w2"]) == [
        f"--config-path={solo_pretrain.CONFIG_DIR}",
        "-cd",
        str(tmp_path / "extra"),
        "--config-name",
        "byol_w2",
    ]
    assert solo_pretrain.with_config_path(["-cp", "pkg://my.configs"])[1] == "pkg://my.configs"


def test_our_options_are_taken_out_of_hydras():
    args = solo_pretrain.parse_args(
        ["--solo-src", "/s", "--import=a,b", "--import", "c", "method=x", "-h", "data=cifar100"]
    )
    assert args == ("/s", ("a", "b", "c"), True, ["method=x", "data=cifar100"])
    with pytest.raises(SystemExit, match="--import needs a value"):
        solo_pretrain.parse_args(["--import"])


# ------------------------------------------------------------------ help and errors


def test_help_without_a_solo_source(tmp_path):
    result, log = _run(["--help"], tmp_path, _env())
    assert result.returncode == 0 and "Traceback" not in result.stderr, log
    assert result.stdout.startswith(f"usage: {solo_pretrain.PROG}"), log
    assert solo_pretrain.ENV_VAR in result.stdout and "--solo-src" in result.stdout
    assert "barlow_twins_w2" in result.stdout  # the shipped configs
    assert "solo-learn source: not set" in result.stdout


def test_missing_solo_source_is_an_error_message_not_a_traceback(tmp_path):
    result, log = _run(["--config-name", "byol_w2"], tmp_path, _env())
    assert result.returncode == 2 and "Traceback" not in result.stderr, log
    assert "error:" in result.stderr and solo_pretrain.ENV_VAR in result.stderr, log
    with pytest.raises(solo_pretrain.SoloSourceNotFoundError, match="main_pretrain.py not found"):
        solo_pretrain.find_main_pretrain(tmp_path)


@needs_source
def test_help_with_a_solo_source_adds_hydras(tmp_path, monkeypatch, capsys):
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_:  # Hydra's --help exits 0 after printing
        solo_pretrain.main(["--solo-src", str(MAIN_PRETRAIN), "--help", "--config-name=byol_w2"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert out.startswith(f"usage: {solo_pretrain.PROG}") and str(MAIN_PRETRAIN) in out
    assert "powered by Hydra" in out and "method: byol_w2" in out, out[-3000:]


def test_an_unknown_config_name_lists_the_configs(tmp_path):
    """Hydra's own error says only "Cannot find primary config 'byol_w3'" (issue 19)."""
    result, log = _run(["--config-name", "byol_w3"], tmp_path, _env())
    assert result.returncode == 2 and "Traceback" not in result.stderr, log
    assert "no byol_w3.yaml in" in result.stderr and "Did you mean 'byol_w2'?" in result.stderr
    assert " ".join(solo_pretrain.shipped_configs()) in result.stderr, log
    mine = tmp_path / "my_configs"
    mine.mkdir()
    (mine / "vicreg_small.yaml").write_text("method: vicreg\n")
    with pytest.raises(solo_pretrain.ConfigNotFoundError, match=r"there: vicreg_small$"):
        solo_pretrain.main(["--config-path", str(mine), "--config-name=vicreg"])
    # found, or not decidable from the arguments (another search path): Hydra's business
    solo_pretrain.check_config_name(["--config-path", str(mine), "-cn", "vicreg_small"])
    solo_pretrain.check_config_name(["-cp", str(mine), "-cn", "x", "--config-dir", "/else"])


def test_without_solo_learn_the_hint_works_offline(tmp_path):
    """The install hint names a source tree and docs/install.md, not only a git+https URL."""
    (tmp_path / "main_pretrain.py").write_text("raise SystemExit('not reached')\n")
    code = (
        "import sys\n"
        "sys.modules['solo'] = None  # solo-learn not installed\n"
        "from w2reg.adapters.solo_pretrain import _cli\n"
        f"sys.argv = ['x', '--solo-src', {str(tmp_path)!r}, '--config-name', 'byol_w2']\n"
        "sys.exit(_cli())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    err = result.stderr
    assert result.returncode == 2 and "Traceback" not in err, err
    assert "w2reg.adapters.solo needs solo-learn" in err and "git+https" not in err, err
    assert "local clone or an unpacked archive" in err and "docs/install.md" in err, err
    assert "--no-build-isolation --no-deps /path/to/solo-learn" in err, err


def _docs_cpu_block() -> str:
    """docs/solo.md's one-process CPU recipe: the bash block with ``"devices='1'"``."""
    from doc_snippets import blocks

    found = [b.code for b in blocks(TESTS.parent / "docs" / "solo.md", "bash")]
    found = [code for code in found if "\"devices='1'\"" in code]
    assert len(found) == 1, found
    return found[0]


@needs_source
def test_docs_one_process_cpu_recipe_runs_as_written(tmp_path):
    """docs/solo.md's CPU commands, run as a user pastes them (from a copy of the clone's
    examples/; Fashion-MNIST from the tiny fixture instead of the full dataset on disk)."""
    import shutil

    import fashion_mnist_fixture

    block = _docs_cpu_block()
    work = tmp_path / "clone"
    shutil.copytree(TESTS.parent / "examples", work / "examples")
    # export_imagefolder.py's --data-dir default, looked at before Debian's folder
    fashion_mnist_fixture.write(work / "data", n_train=64, n_test=32)
    env = _env(**{solo_pretrain.ENV_VAR: str(MAIN_PRETRAIN)})
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=work,
        env={**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = f"rc={result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    assert result.returncode == 0, log
    ckpts = list((work / "trained_models" / "byol_w2").rglob("byol_w2-custom-*-ep=0.ckpt"))
    assert len(ckpts) == 1, log


@needs_source
def test_an_unimportable_user_module_is_named(tmp_path):
    env = _env(**{solo_pretrain.ENV_VAR: str(MAIN_PRETRAIN)})
    result, log = _run(["--import", "no_such_module_w2reg", "method=x"], tmp_path, env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, log
    assert "cannot import 'no_such_module_w2reg'" in result.stderr, log
