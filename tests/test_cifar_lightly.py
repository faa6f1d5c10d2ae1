"""examples/cifar_lightly.py on tiny CIFAR and Fashion-MNIST written in their own formats.

The real torchvision loaders read the fixtures (only their expected CIFAR MD5s point at the
fixture's files); the real lightly adapter models take one training step per method; runs go
the whole way (kNN, uniformity monitor, linear probe, results JSON, summary table) on CIFAR,
on Fashion-MNIST's gzipped idx files and on generated images (``--dataset fake``, in a folder
with nothing in it). Nothing is downloaded: a missing dataset ends in a message, not a
traceback.
"""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import cifar_fixture
import fashion_mnist_fixture
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
def data():
    return load_example("_datasets")


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
def test_fixture_through_torchvision_and_lightly_transforms(data, cifar, dataset):
    train = data.load(dataset, cifar, train=True, download=True)  # present: no download
    test = data.load(dataset, cifar, train=False, download=False)
    assert (len(train), len(test)) == ((100, 40) if dataset == "cifar10" else (200, 100))
    assert len(train.classes) == data.DATASETS[dataset].num_classes
    assert data.num_classes(dataset, train) == data.DATASETS[dataset].num_classes
    views, target = data.Transformed(train, data.ssl_transform("byol", dataset))[0]
    assert len(views) == 2 and all(v.shape == (3, 32, 32) for v in views)
    assert isinstance(target, int)
    image, _ = data.Transformed(test, data.eval_transform(dataset))[0]
    assert image.shape == (3, 32, 32) and abs(float(image.mean())) < 3
    assert len(data.subset(train, 16, seed=0)) == 16


def test_missing_data_exits_with_a_message(script, tmp_path, capsys):
    empty = tmp_path / "nothing-here"
    with pytest.raises(SystemExit) as exc:
        script.main(["--data-dir", str(empty), "--no-download", "--out-dir", str(tmp_path)])
    message = str(exc.value.code)
    assert "CIFAR10 is not in" in message and str(empty.resolve()) in message
    assert "cifar-10-python.tar.gz" in message and "cifar-10-batches-py" in message
    assert "--download was not given" in message


def test_no_flags_stays_offline_and_says_what_to_pass(script, tmp_path, monkeypatch):
    """A first run with no flags: the 500-epoch CIFAR-10 recipe, but no download attempt
    (it used to try the network) and a message naming --download and the offline smoke run."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        script.main([])
    message = str(exc.value.code)
    assert "CIFAR10 is not in" in message and "not downloaded" in message
    assert "pass --download" in message
    assert "python examples/cifar_lightly.py --dataset fake --fast-dev-run" in message
    assert not list(tmp_path.rglob("*.tar.gz"))
    args = script.build_parser().parse_args([])
    assert args.download is False and args.epochs is None and args.num_workers is None


def test_download_failure_exits_with_a_message(script, tmp_path, monkeypatch):
    from torchvision import datasets

    def offline(self):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets.CIFAR100, "download", offline)
    with pytest.raises(SystemExit) as exc:
        script.main(["--dataset", "cifar100", "--data-dir", str(tmp_path / "d"), "--download"])
    message = str(exc.value.code)
    assert "could not be downloaded" in message and "name resolution" in message
    assert "cifar-100-python.tar.gz" in message


def _lightly_version() -> tuple[int, ...]:
    import lightly

    return tuple(int(p) for p in lightly.__version__.split(".")[:3] if p.isdigit())


needs_probe = pytest.mark.skipif(
    _lightly_version() < (1, 5, 20),
    reason="the example's linear probe subclasses lightly's LinearClassifier with lr= "
    "(lightly >= 1.5.20)",
)


@needs_probe
def test_fast_dev_run_end_to_end(script, cifar, tmp_path, capsys):
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


@needs_probe
def test_fake_dataset_fast_dev_run_with_nothing_on_disk(script, tmp_path, monkeypatch, capsys):
    """The offline smoke run, exactly as documented, in an empty folder."""
    monkeypatch.chdir(tmp_path)
    results = script.main(["--dataset", "fake", "--fast-dev-run"])
    assert results["dataset"] == "fake" and results["n_test"] == 32
    assert 0 <= results["knn_top1"] <= 100 and 0 < results["test_w2"] < 2
    assert not (tmp_path / "data").exists()  # nothing was downloaded or written there
    assert (tmp_path / "runs" / "fake_simclr_w2" / "results.json").is_file()
    printed = capsys.readouterr()
    assert "fake" in printed.out
    assert "evaluation: kNN top-1" in printed.err and "linear probe: epoch 1/1" in printed.err


@needs_probe
def test_budget_minutes_plans_the_epochs_and_the_evaluation_reports_progress(
    script, tmp_path, monkeypatch, capsys
):
    """--budget-minutes: a timed calibration picks the epochs, the whole run keeps to the
    budget (a guard stops pre-training, the probe stops at what is left), and the evaluation,
    which takes longer than pre-training on real data, prints its progress."""
    monkeypatch.chdir(tmp_path)
    budget = 0.75
    argv = ["--dataset", "fake", "--subset", "64", "--batch-size", "16", "--width", "4"]
    argv += ["--proj-hidden-dim", "16", "--proj-output-dim", "8", "--probe-epochs", "3"]
    argv += ["--num-workers", "0", "--threads", "1", "--budget-minutes", str(budget)]
    results = script.main(argv)
    calibration = results["calibration"]
    assert calibration["epochs"] >= 1 and results["epochs"] == calibration["epochs"]
    assert calibration["seconds_per_step"] > 0 and calibration["evaluation_seconds"] > 0
    assert 1 <= results["epochs_done"] <= results["epochs"]
    assert 1 <= results["probe_epochs_done"] <= 3
    # the script's clock starts after its imports; 15 % for the guard's granularity (a step)
    assert results["seconds"] < 1.15 * 60 * budget, results["seconds"]
    err = capsys.readouterr().err
    assert "calibrated:" in err and f"{results['epochs']} epochs x 4 steps" in err
    assert "evaluation: kNN top-1" in err and "linear probe: epoch 1/3" in err


def test_budget_too_small_says_what_to_change(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--dataset", "fake", "--subset", "32", "--batch-size", "8", "--width", "4"]
    argv += ["--num-workers", "0", "--budget-minutes", "0.01"]
    with pytest.raises(SystemExit) as exc:
        script.main(argv)
    message = str(exc.value.code)
    assert "--budget-minutes 0.01 is too small" in message and "--probe-epochs" in message
    with pytest.raises(SystemExit):
        script.main(["--dataset", "fake", "--budget-minutes", "5", "--epochs", "3"])


@needs_probe
def test_fashion_mnist_from_gzipped_idx_files(script, tmp_path):
    """Fashion-MNIST read in place from its gzipped idx files (Debian's layout)."""
    folder = fashion_mnist_fixture.write(tmp_path / "fmnist", n_train=40, n_test=20)
    argv = ["--dataset", "fashion-mnist", "--data-dir", str(folder), "--no-download"]
    argv += ["--fast-dev-run", "--width", "8", "--method", "byol", "--out-dir", str(tmp_path)]
    results = script.main(argv)
    assert results["dataset"] == "fashion-mnist" and results["width"] == 8
    assert results["n_test"] == 20 and 0 < results["test_w2"] < 2
    assert not list(folder.glob("FashionMNIST"))  # read in place, nothing extracted


def test_missing_fashion_mnist_says_how_to_install(script, data, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    argv = ["--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "d"), "--no-download"]
    with pytest.raises(SystemExit) as exc:
        script.main([*argv, "--out-dir", str(tmp_path)])
    message = str(exc.value.code)
    assert "fashion-mnist is not in" in message and "--download was not given" in message
    assert "apt-get install dataset-fashion-mnist" in message


#: the script's own --method choices
METHODS = list(load_example("_reporting").METHOD_NAMES)


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
    for flag in ("--budget-minutes", "--download", "--threads", "--num-workers"):
        assert flag in text
    for choice in ("fashion-mnist", "imagefolder", "fake", "--width"):
        assert choice in text
