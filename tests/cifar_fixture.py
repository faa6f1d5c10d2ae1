"""A tiny CIFAR-10 / CIFAR-100 written in the datasets' own on-disk python-pickle format.

torchvision's real loaders (``torchvision.datasets.CIFAR10`` / ``CIFAR100``) read it offline:
the files are the ones the official archives extract to,

* ``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``
  (dicts with ``data``: ``(n, 3072)`` uint8 rows, channel-major 32x32, and ``labels``;
  the meta file has ``label_names``), and
* ``cifar-100-python/train``, ``test``, ``meta`` (``fine_labels`` / ``coarse_labels``;
  ``fine_label_names`` / ``coarse_label_names``).

torchvision also checks every file's MD5 against the official archive's, which a tiny file
cannot match: :func:`use_fixture_checksums` points the loader classes' checksum lists at the
files written here (with pytest's ``monkeypatch``, so only for the test), leaving the loading
code itself untouched.

Images are class-dependent (a per-class colour plus noise), so a kNN on raw pixels is
better than chance - enough for smoke tests of the evaluation code.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _images(n: int, num_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    labels = (np.arange(n) % num_classes).astype(np.int64)
    rng.shuffle(labels)
    colours = np.random.default_rng(1234).integers(30, 226, size=(num_classes, 3))
    base = colours[labels][:, :, None].repeat(1024, axis=2).astype(np.float64)
    noise = rng.normal(0, 25, size=(n, 3, 1024))
    data = np.clip(base + noise, 0, 255).astype(np.uint8).reshape(n, 3072)
    return data, [int(v) for v in labels]


def _dump(path: Path, obj: dict[str, Any]) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(
    root: str | Path, *, per_batch: int = 20, n_test: int = 40, seed: int = 0
) -> dict[str, Any]:
    """Write a tiny CIFAR-10 under ``root``; return the checksums torchvision should expect."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR10_DIR
    folder.mkdir(parents=True, exist_ok=True)
    train_list = []
    for i in range(1, 6):
        data, labels = _images(per_batch, 10, rng)
        name = f"data_batch_{i}"
        _dump(
            folder / name,
            {
                "batch_label": f"training batch {i} of 5",
                "labels": labels,
                "data": data,
                "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)],
            },
        )
        train_list.append([name, _md5(folder / name)])
    data, labels = _images(n_test, 10, rng)
    _dump(
        folder / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": labels,
            "data": data,
            "filenames": [f"test_{j}.png" for j in range(n_test)],
        },
    )
    names = ["airplane", "automobile", "bird", "cat", "deer"]
    names += ["dog", "frog", "horse", "ship", "truck"]
    _dump(
        folder / "batches.meta",
        {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072},
    )
    return {
        "train_list": train_list,
        "test_list": [["test_batch", _md5(folder / "test_batch")]],
        "meta": {
            "filename": "batches.meta",
            "key": "label_names",
            "md5": _md5(folder / "batches.meta"),
        },
    }


def write_cifar100(
    root: str | Path, *, n_train: int = 200, n_test: int = 100, seed: int = 0
) -> dict[str, Any]:
    """Write a tiny CIFAR-100 under ``root``; return the checksums torchvision should expect."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR100_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        data, fine = _images(n, 100, rng)
        _dump(
            folder / name,
            {
                "filenames": [f"{name}_{j}.png" for j in range(n)],
                "batch_label": f"{name} batch 1 of 1",
                "fine_labels": fine,
                "coarse_labels": [f // 5 for f in fine],
                "data": data,
            },
        )
    _dump(
        folder / "meta",
        {
            "fine_label_names": [f"class_{i}" for i in range(100)],
            "coarse_label_names": [f"superclass_{i}" for i in range(20)],
        },
    )
    return {
        "train_list": [["train", _md5(folder / "train")]],
        "test_list": [["test", _md5(folder / "test")]],
        "meta": {"filename": "meta", "key": "fine_label_names", "md5": _md5(folder / "meta")},
    }


def use_fixture_checksums(monkeypatch: Any, dataset: str, checksums: dict[str, Any]) -> None:
    """Make torchvision's ``CIFAR10``/``CIFAR100`` expect the fixture's MD5s (test only)."""
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[dataset]
    for attr in ("train_list", "test_list", "meta"):
        monkeypatch.setattr(cls, attr, checksums[attr])


def write(root: str | Path, dataset: str, **kwargs: Any) -> dict[str, Any]:
    """``write_cifar10`` or ``write_cifar100`` by name (``"cifar10"`` / ``"cifar100"``)."""
    if dataset == "cifar10":
        return write_cifar10(root, **kwargs)
    if dataset == "cifar100":
        return write_cifar100(root, **kwargs)
    raise ValueError(f"dataset must be 'cifar10' or 'cifar100', got {dataset!r}")
