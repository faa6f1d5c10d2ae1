"""A tiny Fashion-MNIST in the dataset's own idx format (gzipped, or as torchvision keeps it).

The idx format (MNIST's): two zero bytes, the type byte ``0x08`` (unsigned byte), the number
of dimensions, one big-endian 32-bit size per dimension, then the bytes row-major. The files
are ``train-images-idx3-ubyte`` ``(n, 28, 28)``, ``train-labels-idx1-ubyte`` ``(n,)`` and the
same with ``t10k`` for the test split; the official download (and Debian's
``dataset-fashion-mnist``) has them gzipped, torchvision keeps them uncompressed in
``<root>/FashionMNIST/raw/``.

Images are class-dependent (a per-class brightness and stripe plus noise), so a kNN on raw
pixels is better than chance.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

SPLITS = {"train": "train", "test": "t10k"}


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8, 1-3 dimensions) in the idx format."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    pictures = rng.normal(0, 20, size=(n, 28, 28))
    for i, label in enumerate(labels):
        pictures[i] += 40 + 18 * int(label)
        pictures[i, :, 2 * int(label) : 2 * int(label) + 4] += 80  # a class-dependent stripe
    return np.clip(pictures, 0, 255).astype(np.uint8), labels


def write(
    root: str | Path,
    *,
    n_train: int = 60,
    n_test: int = 20,
    layout: str = "gzip",
    seed: int = 0,
) -> Path:
    """Write the four files; return the folder they are in.

    ``layout="gzip"``: ``<root>/*-ubyte.gz`` (the official files, Debian's layout);
    ``layout="torchvision"``: uncompressed in ``<root>/FashionMNIST/raw/``.
    """
    if layout not in ("gzip", "torchvision"):
        raise ValueError(f"layout must be 'gzip' or 'torchvision', got {layout!r}")
    folder = Path(root) if layout == "gzip" else Path(root) / "FashionMNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for offset, (split, prefix) in enumerate(SPLITS.items()):
        x, y = images(n_train if split == "train" else n_test, seed + offset)
        for name, array in ((f"{prefix}-images-idx3-ubyte", x), (f"{prefix}-labels-idx1-ubyte", y)):
            payload = idx_bytes(array)
            if layout == "gzip":
                (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (folder / name).write_bytes(payload)
    return folder
