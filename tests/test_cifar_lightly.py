"""examples/cifar_lightly.py on a tiny CIFAR written in CIFAR's own on-disk format.

The real torchvision loaders read the fixture (only their expected MD5s point at the fixture's
files); the real lightly adapter models take one training step per method; one run goes the
whole way (kNN, uniformity monitor, linear probe, results JSON, summary table). Nothing is
downloaded: a missing dataset ends in a message, not a traceback.
"""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import cifar_fixture
import pytest
import torch
from example_scripts import load_example

pytest.importorskip("lightly")
pytest.importorskip("torchvision")


@pytest.fixture(autouse=True)
def _one_thread():
    # On the shared 2-core CI machine, intra-op threads fighting other processes cost far
    # more than they give for these tiny batches.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def script():
    return load_example("cifar_lightly")


@pytest.fixture(scope="module")
def common():
    return load_example("_cifar_common")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    sums = {ds: cifar_fixture.write(root, ds) for ds in ("cifar10", "cifar100")}
    return root, sums


@pytest.fixture
def cifar(data_root, monkeypatch):
    root, sums = data_root
    for ds, checksums in sums.items():
        cifar_fixture.use_fixture_checksums(monkeypatch, ds, checksums)
    return root


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_fixture_through_torchvision_and_lightly_transforms(common, cifar, dataset):
    train = common.load_cifar(dataset, cifar, train=True, download=True)  # present: no download
    test = common.load_cifar(dataset, cifar, train=False, download=False)
    assert (len(train), len(test)) == ((100, 40) if dataset == "cifar10" else (200, 100))
    assert len(train.classes) == common.CIFAR[dataset]["classes"]
    views, target = common.Transformed(train, common.ssl_transform("byol", dataset))[0]
    assert len(views) == 2 and all(v.shape == (3, 32, 32) for v in views)
    assert isinstance(target, int)
    image, _ = common.Transformed(test, common.eval_transform(dataset))[0]
    assert image.shape == (3, 32, 32) and abs(float(image.mean())) < 3
    assert len(common.subset(train, 16, seed=0)) == 16


def test_missing_data_exits_with_a_message(script, tmp_path, capsys):
    empty = tmp_path / "nothing-here"
    with pytest.raises(SystemExit) as exc:
        script.main(["--data-dir", str(empty), "--no-download", "--out-dir", str(tmp_path)])
    message = str(exc.value.code)
    assert "CIFAR10 is not in" in message and str(empty.resolve()) in message
    assert "cifar-10-python.tar.gz" in message and "cifar-10-batches-py" in message
    assert "--no-download" in message


def test_download_failure_exits_with_a_message(script, tmp_path, monkeypatch):
    from torchvision import datasets

    def offline(self):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets.CIFAR100, "download", offline)
    with pytest.raises(SystemExit) as exc:
        script.main(["--dataset", "cifar100", "--data-dir", str(tmp_path / "d")])
    message = str(exc.value.code)
    assert "could not be downloaded" in message and "name resolution" in message
    assert "cifar-100-python.tar.gz" in message


def _lightly_version() -> tuple[int, ...]:
    import lightly

    return tuple(int(p) for p in lightly.__version__.split(".")[:3] if p.isdigit())


@pytest.mark.skipif(
    _lightly_version() < (1, 5, 20),
    reason="the example's linear probe subclasses lightly's LinearClassifier with lr= "
    "(lightly >= 1.5.20)",
)
def test_fast_dev_run_end_to_end(script, common, cifar, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["--method", "simclr", "--data-dir", str(cifar), "--out-dir", str(out)]
    results = script.main([*argv, "--fast-dev-run", "--no-download"])
    for key in ("linear_top1", "knn_top1", "test_w2", "test_lu", "test_effective_rank"):
        assert isinstance(results[key], float), key
    assert 0 <= results["knn_top1"] <= 100 and 0 <= results["linear_top1"] <= 100
    assert 0 < results["test_w2"] < 2 and -8 <= results["test_lu"] <= 0
    assert results["test_alignment"] >= 0 and results["n_test"] == 32
    assert results["w2"] is True and "Constant" in results["w2_weight"]
    saved = json.loads(Path(results["results_json"]).read_text())
    assert saved["test_w2"] == pytest.approx(results["test_w2"])
    assert (out / "cifar10_simclr_w2" / "spectrum.png").is_file()
    printed = capsys.readouterr().out
    assert "paper acc" in printed and "simclr" in printed


#: the script's own --method choices
METHODS = list(load_example("_cifar_common").METHOD_NAMES)


@pytest.mark.parametrize("method", METHODS)
def test_one_training_step_per_method(script, cifar, tmp_path, method):
    w2 = METHODS.index(method) % 2 == 0
    dataset = "cifar100" if method in ("byol", "zero_cl") else "cifar10"
    argv = ["--method", method, "--dataset", dataset, "--data-dir", str(cifar)]
    argv += ["--out-dir", str(tmp_path), "--fast-dev-run", "--no-eval", "--no-download"]
    argv += ["--batch-size", "4", "--w2" if w2 else "--no-w2"]
    torch.manual_seed(0)
    results = script.main(argv)
    assert results["global_step"] == 1
    metrics = results["train_metrics"]
    assert "train_loss_step" in metrics or "train_loss" in metrics
    assert ("train_w2_uniformity_step" in metrics) == w2


def test_help(script, capsys):
    with pytest.raises(SystemExit) as exc:
        script.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--method", "--dataset", "--w2", "--epochs", "--batch-size", "--data-dir"):
        assert flag in text
    for flag in ("--devices", "--precision", "--fast-dev-run", "--subset", "--out-dir"):
        assert flag in text
