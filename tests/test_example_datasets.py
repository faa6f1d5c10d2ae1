"""examples/_datasets.py: every --dataset choice read by torchvision's real loaders, offline.

Fashion-MNIST from tiny idx files (gzipped in place, and torchvision's own uncompressed
layout), image folders of PNGs written here, CIFAR elsewhere (test_cifar_lightly.py),
FakeData in memory.
"""

from __future__ import annotations

import gzip

import fashion_mnist_fixture
import numpy as np
import pytest
import torch
from example_scripts import load_example

pytest.importorskip("torchvision")
pytest.importorskip("lightly")


@pytest.fixture(scope="module")
def data():
    return load_example("_datasets")


# -- Fashion-MNIST -------------------------------------------------------------------------------
def test_idx_reader_round_trip_and_errors(data, tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(fashion_mnist_fixture.idx_bytes(array)))
    out = data.read_idx_gz(path)
    assert out.dtype == torch.uint8 and out.tolist() == array.tolist()
    path.write_bytes(gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x01abcd"))  # float type
    with pytest.raises(ValueError, match="not an idx file of unsigned bytes"):
        data.read_idx_gz(path)
    path.write_bytes(gzip.compress(fashion_mnist_fixture.idx_bytes(array)[:-1]))
    with pytest.raises(ValueError, match=r"header says \[2, 3, 4\], file has 23 bytes"):
        data.read_idx_gz(path)


def test_fashion_mnist_found_in_every_layout(data, tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", debian)
    root = tmp_path / "root"
    assert data.fashion_mnist_source(root) is None
    fashion_mnist_fixture.write(debian)
    assert data.fashion_mnist_source(root) == ("gzip", debian)  # the Debian package's folder
    raw = root / "FashionMNIST" / "raw"
    fashion_mnist_fixture.write(raw)  # gzipped where torchvision downloads them
    assert data.fashion_mnist_source(root) == ("gzip", raw)
    fashion_mnist_fixture.write(root)  # gzipped in --data-dir itself
    assert data.fashion_mnist_source(root) == ("gzip", root)
    fashion_mnist_fixture.write(root, layout="torchvision")  # torchvision's own layout wins
    assert data.fashion_mnist_source(root) == ("torchvision", root)


def test_fashion_mnist_gzipped_equals_torchvisions_own_reading(data, tmp_path, monkeypatch):
    from torchvision import datasets

    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    gz = fashion_mnist_fixture.write(tmp_path / "gz", n_train=30, n_test=10)
    tv = tmp_path / "tv"
    fashion_mnist_fixture.write(tv, n_train=30, n_test=10, layout="torchvision")
    for train, n in ((True, 30), (False, 10)):
        a = data.load("fashion-mnist", gz, train=train, download=False)
        b = data.load("fashion-mnist", tv, train=train, download=False)
        assert isinstance(a.base, datasets.FashionMNIST)
        assert type(b.base) is datasets.FashionMNIST  # torchvision's class itself
        assert len(a) == len(b) == n
        assert torch.equal(a.base.data, b.base.data)
        assert torch.equal(a.base.targets, b.base.targets)
        image, target = a[3]
        assert image.mode == "RGB" and image.size == (32, 32)
        r, g, b_ = (np.asarray(image)[..., c] for c in range(3))
        assert (r == g).all() and (g == b_).all()  # grey used as three equal channels
        assert target == int(a.base.targets[3])
    assert a.classes[0] == "T-shirt/top" and data.num_classes("fashion-mnist", a) == 10


def test_missing_fashion_mnist_without_download(data, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    with pytest.raises(data.DataMissing, match="apt-get install dataset-fashion-mnist"):
        data.load("fashion-mnist", tmp_path / "empty", train=True, download=False)


# -- image folders -------------------------------------------------------------------------------
def _folder(root, classes=3, per_class=5, sizes=((40, 30), (28, 28), (64, 48))):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            mode = "L" if i % 2 else "RGB"
            shape = (h, w) if mode == "L" else (h, w, 3)
            Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(
                root / f"class_{c}" / f"{i}.png"
            )
    return root


def _paths(split):
    return {split.base.dataset.samples[i][0] for i in split.base.indices}


def test_imagefolder_seeded_per_class_split(data, tmp_path):
    root = _folder(tmp_path / "imgs", per_class=10)
    train = data.load("imagefolder", root, train=True, test_fraction=0.2, split_seed=1)
    test = data.load("imagefolder", root, train=False, test_fraction=0.2, split_seed=1)
    assert (len(train), len(test)) == (24, 6)  # 2 of every class's 10 held out
    assert not _paths(train) & _paths(test)
    assert sorted(t for _, t in (test[i] for i in range(len(test)))) == [0, 0, 1, 1, 2, 2]
    again = data.load("imagefolder", root, train=False, test_fraction=0.2, split_seed=1)
    assert _paths(again) == _paths(test)
    other = data.load("imagefolder", root, train=False, test_fraction=0.2, split_seed=2)
    assert _paths(other) != _paths(test)
    assert data.num_classes("imagefolder", train) == 3
    for i in range(len(train)):  # any size and mode -> 32x32 RGB
        image, _ = train[i]
        assert image.mode == "RGB" and image.size == (32, 32)


def test_imagefolder_train_and_test_folders(data, tmp_path):
    root = tmp_path / "imgs"
    _folder(root / "train", classes=2, per_class=4)
    _folder(root / "val", classes=2, per_class=2)
    train = data.load("imagefolder", root, train=True)
    test = data.load("imagefolder", root, train=False)
    assert (len(train), len(test)) == (8, 4)
    assert train.classes == test.classes == ["class_0", "class_1"]


def test_imagefolder_missing_or_empty(data, tmp_path):
    with pytest.raises(data.DataMissing, match="one sub-folder of images per class"):
        data.load("imagefolder", tmp_path / "nothing", train=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataMissing, match="imagefolder is not in"):
        data.load("imagefolder", tmp_path / "empty", train=True)


# -- FakeData and the transforms ---------------------------------------------------------------
def test_fake_needs_nothing_on_disk(data, tmp_path):
    train = data.load("fake", tmp_path / "never-created", train=True)
    test = data.load("fake", tmp_path / "never-created", train=False)
    assert (len(train), len(test)) == (1024, 256)
    image, target = train[5]
    assert image.mode == "RGB" and image.size == (32, 32) and 0 <= target < 10
    assert np.array_equal(np.asarray(train[5][0]), np.asarray(image))  # the same every time
    assert not np.array_equal(np.asarray(test[5][0]), np.asarray(image))  # other images
    assert not (tmp_path / "never-created").exists()


@pytest.mark.parametrize("dataset", ["fake", "fashion-mnist"])
def test_same_transforms_for_every_dataset(data, dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    fashion_mnist_fixture.write(tmp_path)
    base = data.load(dataset, tmp_path, train=True, download=False)
    for method in ("simclr", "byol"):
        views, _ = data.Transformed(base, data.ssl_transform(method, dataset))[0]
        assert len(views) == 2 and all(v.shape == (3, 32, 32) for v in views)
    image, _ = data.Transformed(base, data.eval_transform(dataset))[0]
    assert image.shape == (3, 32, 32)
    image, _ = data.Transformed(base, data.probe_transform(dataset))[0]
    assert image.shape == (3, 32, 32)


def test_unknown_dataset(data):
    with pytest.raises(ValueError, match="dataset must be one of"):
        data.load("mnist", "x", train=True)


def test_export_to_image_folders_and_read_back(data, tmp_path, monkeypatch):
    """examples/export_imagefolder.py: Fashion-MNIST -> PNG folders -> --dataset imagefolder."""
    export = load_example("export_imagefolder")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    source = fashion_mnist_fixture.write(tmp_path / "fmnist", n_train=40, n_test=20)
    out = tmp_path / "folders"
    counts = export.main(
        ["--dataset", "fashion-mnist", "--data-dir", str(source), "--out", str(out)]
    )
    assert counts == {"train": 40, "test": 20}
    assert (out / "train" / "T-shirt_top").is_dir()  # 'T-shirt/top' made a folder name
    train = data.load("imagefolder", out, train=True)
    test = data.load("imagefolder", out, train=False)
    assert (len(train), len(test)) == (40, 20) and data.num_classes("imagefolder", train) == 10
    original = data.load("fashion-mnist", source, train=False, download=False)
    # the file of the original test item 0: the same pixels (PNG is lossless), the same class
    index = next(i for i, (path, _) in enumerate(test.base.samples) if path.endswith("000000.png"))
    image, target = test[index]
    first, first_target = original[0]
    assert np.array_equal(np.asarray(image), np.asarray(first))
    assert test.classes[target] == export._safe(original.classes[first_target])
