"""examples/study.py end to end on tiny data: runs, resume, the budget, the honest summary.

Tiny widths on generated images (``--dataset fake``) and on a tiny Fashion-MNIST in its idx
format; the real lightly models, Lightning Trainer, evaluation and figure. The summary's
arithmetic (paired W2 effects, seed spread, which effects exceed it) is checked on made-up
rows against hand-computed numbers.
"""

from __future__ import annotations

import json

import fashion_mnist_fixture
import pytest
import torch
from example_scripts import load_example

pytest.importorskip("lightly")
pytest.importorskip("torchvision")

TINY = [
    "--width", "4", "--proj-hidden-dim", "16", "--proj-output-dim", "8",
    "--batch-size", "16", "--train-subset", "48", "--test-subset", "24",
    "--probe-epochs", "2", "--threads", "1", "--no-progress",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def study():
    return load_example("study")


@pytest.fixture(scope="module")
def report():
    return load_example("_study_report")


def test_end_to_end_then_resume_then_refuse_other_settings(study, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["--dataset", "fake", "--methods", "simclr", "byol", "--epochs", "1"]
    argv += ["--seeds", "0", "1", "--spread-methods", "simclr", "--out-dir", str(out), *TINY]
    summary = study.main(argv)

    names = sorted(p.stem for p in (out / "runs").glob("*.json"))
    assert names == sorted(
        ["simclr_plain_s0", "simclr_w2_s0", "simclr_plain_s1", "simclr_w2_s1"]
        + ["byol_plain_s0", "byol_w2_s0"]
    )
    runs = {r["run"]: r for r in summary["runs"]}
    for run in runs.values():
        for key in ("knn_top1", "linear_top1", "test_w2", "test_lu", "test_effective_rank"):
            assert isinstance(run[key], float), key
        assert 0 < run["test_w2"] < 2 and run["test_alignment"] >= 0
        assert run["n_test"] == 24 and len(run["test_spectrum"]) == 8
        assert run["steps"] == 3 and len(run["epoch_seconds"]) == 1  # 48 // 16 per epoch
        assert (run["train_w2"] is not None) == run["w2"]
    assert runs["byol_w2_s0"]["w2_weight"] == "Constant(0.2)"
    effects = summary["effects"]
    assert effects["simclr"]["spread_from"] == "own seeds" and effects["simclr"]["seeds"] == [0, 1]
    assert effects["byol"]["spread_from"] == "other methods"
    assert set(summary["seed_spread"]) == {"simclr"}

    md = (out / "study.md").read_text()
    assert "python examples/study.py --dataset fake" in md
    assert "48 of 1024 training images" in md and "24 of 256 test" in md
    assert "width 4 (4-8-16-32 channels" in md and "| byol | yes | 0 |" in md
    assert (out / "study.png").stat().st_size > 10_000
    saved = json.loads((out / "study.json").read_text())
    assert saved["config"]["epochs"] == 1 and len(saved["runs"]) == 6
    assert "Δ test W2" in capsys.readouterr().out

    # a second call finds every run finished and only rebuilds the summary
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    again = study.main(argv)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == stamps
    assert again["effects"] == summary["effects"]

    # other settings must not be mixed with these runs
    with pytest.raises(SystemExit, match="epochs: 1 there, 2 now"):
        study.main([*argv[:6], "2", *argv[7:]])


def test_fashion_mnist_fixture_and_the_time_budget(study, tmp_path, monkeypatch):
    data = load_example("_datasets")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    folder = fashion_mnist_fixture.write(tmp_path / "fmnist", n_train=48, n_test=24)
    out = tmp_path / "study"
    argv = ["--dataset", "fashion-mnist", "--data-dir", str(folder), "--methods", "simsiam"]
    argv += ["--budget-minutes", "0.1", "--out-dir", str(out), *TINY]
    summary = study.main(argv)
    calibration = summary["calibration"]
    assert set(calibration["seconds_per_step"]) == {"simsiam"} and calibration["epochs"] >= 1
    assert calibration["estimated_seconds"] > calibration["calibration_seconds"] > 0
    assert summary["config"]["epochs"] == calibration["epochs"]
    assert summary["runs"][0]["epochs"] == calibration["epochs"]
    assert "Epochs chosen to fit 0.1 min" in (out / "study.md").read_text()
    plan = json.loads((out / "plan.json").read_text())
    assert plan["calibration"] == calibration  # a resumed study keeps these epochs
    assert "fashion-mnist: 48 of 48 training images" in summary["data"]


def test_plan_runs_spread_methods_at_every_seed(study):
    runs = study.plan(["simclr", "byol"], [0, 1, 2], ["byol"])
    assert [r.name for r in runs] == [
        "simclr_plain_s0",
        "simclr_w2_s0",
        "byol_plain_s0",
        "byol_w2_s0",
        "byol_plain_s1",
        "byol_w2_s1",
        "byol_plain_s2",
        "byol_w2_s2",
    ]
    assert len(study.plan(["simclr"], [0, 1], None)) == 4  # default: every method


def test_bad_arguments_are_named(study, tmp_path):
    base = ["--dataset", "fake", "--out-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match="give --epochs N or --budget-minutes M"):
        study.main(base)
    with pytest.raises(SystemExit, match=r"--spread-methods \['byol'\] are not in --methods"):
        study.main([*base, "--epochs", "1", "--methods", "simclr", "--spread-methods", "byol"])
    with pytest.raises(SystemExit, match="--width must be >= 1, got 0"):
        study.main([*base, "--epochs", "1", "--width", "0"])


def _row(method, w2, seed, **metrics):
    row = {"method": method, "w2": w2, "seed": seed, "seconds_per_epoch": 10.0}
    row.update({k: 0.0 for k in ("knn_top1", "test_lu", "test_effective_rank", "test_alignment")})
    row.update(metrics)
    row["pretrain_cpu_seconds"] = 2 * row["seconds_per_epoch"]
    return row


def test_effects_against_the_seed_spread(report):
    rows = [
        # a: two seeds; its linear top-1 moves 1.0 and 3.0 with W2, seeds differ by up to 2.0
        _row("a", False, 0, linear_top1=80.0, test_w2=1.0),
        _row("a", True, 0, linear_top1=81.0, test_w2=0.4, seconds_per_epoch=12.0),
        _row("a", False, 1, linear_top1=82.0, test_w2=1.1),
        _row("a", True, 1, linear_top1=85.0, test_w2=0.5, seconds_per_epoch=12.0),
        # b: one seed; held against a's spread
        _row("b", False, 0, linear_top1=70.0, test_w2=0.9),
        _row("b", True, 0, linear_top1=73.0, test_w2=0.85),
    ]
    spread = report.seed_spread(rows)
    assert spread["a"]["linear_top1"] == pytest.approx(4.0)  # W2 arm: 81 vs 85
    assert spread["a"]["test_w2"] == pytest.approx(0.1)
    eff = report.effects(rows)
    a, b = eff["a"], eff["b"]
    assert a["linear_top1"]["delta"] == pytest.approx(2.0)  # mean of +1 and +3
    assert a["linear_top1"]["beyond_spread"] is False  # 2.0 <= 4.0: within the spread
    assert a["test_w2"]["delta"] == pytest.approx(-0.6) and a["test_w2"]["beyond_spread"]
    assert a["time_ratio"] == pytest.approx(1.2) and a["spread_from"] == "own seeds"
    assert a["cpu_time_ratio"] == pytest.approx(1.2)
    assert b["spread_from"] == "other methods"
    assert b["linear_top1"]["delta"] == pytest.approx(3.0) and not b["linear_top1"]["beyond_spread"]
    assert b["test_w2"]["delta"] == pytest.approx(-0.05) and not b["test_w2"]["beyond_spread"]
    # one seed everywhere: no spread, no verdict
    single = report.effects([r for r in rows if r["seed"] == 0])
    assert single["a"]["spread_from"] is None and single["a"]["test_w2"]["beyond_spread"] is None


def test_plan_only_trains_nothing(study, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["--dataset", "fake", "--methods", "simclr", "--seeds", "0", "1", "--epochs", "2"]
    info = study.main([*argv, "--plan-only", "--out-dir", str(out), *TINY])
    assert info["runs"] == ["simclr_plain_s0", "simclr_w2_s0", "simclr_plain_s1", "simclr_w2_s1"]
    assert info["epochs"] == 2 and info["steps_per_epoch"] == 3
    assert not list(out.rglob("*.json")) and '"calibration": null' in capsys.readouterr().out
    # with a budget the calibration is kept for the real run, which then skips its own
    argv = ["--dataset", "fake", "--methods", "simclr", "--budget-minutes", "0.1"]
    first = study.main([*argv, "--plan-only", "--out-dir", str(out), *TINY])
    assert json.loads((out / "plan.json").read_text())["calibration"] == first["calibration"]
    summary = study.main([*argv, "--out-dir", str(out), *TINY])
    assert summary["calibration"] == first["calibration"]
    assert summary["config"]["epochs"] == first["epochs"]


def test_a_budget_too_small_stops_before_training(study, tmp_path):
    argv = ["--dataset", "fake", "--methods", "simclr", "--budget-minutes", "0.001"]
    with pytest.raises(SystemExit, match="--budget-minutes 0.001 is too small: even one epoch"):
        study.main([*argv, "--out-dir", str(tmp_path / "s"), *TINY])
    assert not list((tmp_path / "s").rglob("*.json"))
