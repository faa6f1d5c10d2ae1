"""timm backbones (issue 18): w2reg.adapters.backbones.timm_backbone, and ``--backbone`` of the
example scripts with a timm ViT at 32x32, patch 4, on generated images.

Real timm models (``pretrained=False``: nothing is downloaded), real lightly models, the real
Lightning Trainer. The env that runs the examples installs timm (``w2reg[examples]``) and
requires these tests (``W2REG_REQUIRE=timm``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from example_scripts import load_example

timm = pytest.importorskip("timm")
pytest.importorskip("lightly")
pytest.importorskip("torchvision")

from w2reg.adapters.backbones import build_backbone, feature_dim, timm_backbone  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: the tests' ViT: timm's ViT-Tiny at 32x32 with 4x4 patches, cut down to run in seconds
TINY_VIT = ["--backbone", "vit_tiny_patch16_224"]
TINY_VIT += ["--backbone-args", "patch_size=4", "depth=1", "embed_dim=32", "num_heads=2"]


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_vit_at_32x32_patch_4():
    model, dim = timm_backbone("vit_tiny_patch16_224", 32, patch_size=4, depth=2)
    assert dim == 192 == model.num_features
    assert model.patch_embed.num_patches == 64  # (32 / 4)^2
    assert len(model.blocks) == 2
    model.train()
    out = model(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 192) and model.training  # feature_dim left the mode alone


def test_a_cnn_without_img_size_and_the_resnet():
    model, dim = timm_backbone("resnet18", 32)
    assert dim == 512 and model(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    resnet, dim = build_backbone("resnet18", width=8)
    assert dim == 64 == feature_dim(resnet)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: timm_backbone("no_such_model"), "timm has no model 'no_such_model'"),
        (lambda: timm_backbone("vit_tiny_patch16_224", colour=3), "does not take"),
        (lambda: timm_backbone("vit_tiny_patch16_224", pretrained=True), "pretrained"),
        (lambda: timm_backbone("vit_tiny_patch16_224", 0), "image_size"),
        (lambda: timm_backbone(""), "name must be a timm model name"),
        (lambda: build_backbone("resnet18", patch_size=4), "takes only width"),
    ],
)
def test_errors_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_without_timm_the_error_says_what_to_install():
    code = (
        "import sys\n"
        "sys.modules['timm'] = None\n"
        "from w2reg.adapters.backbones import timm_backbone\n"
        "try:\n"
        "    timm_backbone('vit_tiny_patch16_224')\n"
        "except ModuleNotFoundError as err:\n"
        "    print(err.name, '|', err)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("timm |"), proc.stdout
    assert "pip install timm" in proc.stdout and "w2reg[examples]" in proc.stdout


def test_cifar_lightly_fast_dev_run_with_a_vit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # --dataset fake: nothing on disk, nothing downloaded
    script = load_example("cifar_lightly")
    argv = ["--dataset", "fake", "--fast-dev-run", "--method", "byol", *TINY_VIT]
    argv += ["--proj-hidden-dim", "32", "--proj-output-dim", "16", "--out-dir", str(tmp_path)]
    results = script.main(argv)
    assert results["backbone"].startswith("vit_tiny_patch16_224 (depth=1, embed_dim=32")
    assert 0 < results["test_w2"] < 2 and len(results["test_spectrum"]) == 16
    saved = json.loads(
        (tmp_path / "fake_byol_w2_vit_tiny_patch16_224" / "results.json").read_text()
    )
    assert saved["backbone"] == results["backbone"]


def test_cifar_lightly_refuses_timm_arguments_for_the_resnet(tmp_path):
    script = load_example("cifar_lightly")
    with pytest.raises(SystemExit, match="are for timm backbones"):
        script.main(["--dataset", "fake", "--fast-dev-run", "--backbone-args", "depth=2"])
    with pytest.raises(SystemExit, match="expected KEY=VALUE"):
        script.main(
            ["--dataset", "fake", "--backbone", "vit_tiny_patch16_224", "--backbone-args", "4"]
        )


STUDY_TINY = [
    "--dataset", "fake", "--methods", "byol", "--epochs", "1", "--proj-hidden-dim", "16",
    "--proj-output-dim", "8", "--batch-size", "16", "--train-subset", "32", "--test-subset",
    "16", "--probe-epochs", "2", "--threads", "1", "--no-progress",
]  # fmt: skip


def test_study_tiny_fixture_with_a_vit(tmp_path):
    study = load_example("study")
    out = tmp_path / "study"
    summary = study.main([*STUDY_TINY, *TINY_VIT, "--out-dir", str(out)])
    runs = {r["run"]: r for r in summary["runs"]}
    assert set(runs) == {"byol_plain_s0", "byol_w2_s0"}
    for run in runs.values():
        assert run["run_config"]["backbone"] == "vit_tiny_patch16_224"
        assert run["run_config"]["backbone_args"] == {
            "depth": 1,
            "embed_dim": 32,
            "num_heads": 2,
            "patch_size": 4,
        }
        assert 0 < run["test_w2"] < 2 and run["steps"] == 2
    md = (out / "study.md").read_text()
    assert "timm `vit_tiny_patch16_224(depth=1, embed_dim=32, num_heads=2, patch_size=4)`" in md
    # the same runs with another ViT are another configuration
    with pytest.raises(SystemExit, match="backbone_args"):
        other = [*TINY_VIT[:-1], "num_heads=4"]
        study.main([*STUDY_TINY, *other, "--out-dir", str(out)])


def test_study_fingerprint_of_resnet_runs_is_unchanged():
    """The committed ResNet runs (benchmarks/results/study_cpu) keep their fingerprint: the new
    keys at their defaults are left out of it, so those runs are reused, not refused."""
    study = load_example("study")
    runs = sorted((ROOT / "benchmarks" / "results" / "study_cpu" / "runs").glob("*.json"))
    assert runs
    for path in runs:
        saved = json.loads(path.read_text())
        config = {**saved["run_config"], "backbone": "resnet18", "backbone_args": {}}
        assert study.fingerprint(config) == saved["fingerprint"], path.name
        assert study.run_keys(config) == saved["run_config"]


def test_bench_floor_embeds_a_study_run(tmp_path):
    """benchmarks/bench_floor.py's part 2: one study run (the study's own code) pre-trained on
    the tiny fixture, its test projections measured against the floor at each N."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_bench_floor", ROOT / "benchmarks/bench_floor.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    study_args = " ".join([*STUDY_TINY, "--test-subset", "40", "--width", "4"])
    argv = ["--sizes", "16", "32", "--dims", "8", "--draws", "2", "--out-dir", str(tmp_path)]
    runs = ["--study-run", "byol:w2", "byol:plain", "--study-args", study_args]
    result = bench.main([*argv, *runs])
    emb, plain = result["embeddings"]
    assert (emb["name"], emb["n_total"], emb["m"]) == ("byol_w2_s0_fake", 40, 8)
    assert (plain["name"], plain["n_total"]) == ("byol_plain_s0_fake", 40)
    assert [r["n"] for r in emb["rows"]] == [16, 32, 40]
    assert all(r["floor"] == pytest.approx(bench.w2reg.w2_floor(r["n"], 8)) for r in emb["rows"])
    saved = tmp_path / "embeddings_byol_w2_s0_fake.pt"
    again = bench.main([*argv, "--embeddings", str(saved), "--out-dir", str(tmp_path / "again")])
    assert again["embeddings"][0]["n_total"] == 40
