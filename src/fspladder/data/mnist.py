"""MNIST-format data: a folder of ``train-*`` and ``t10k-*`` IDX files (gzip or plain), and Fashion-MNIST from
Debian's ``dataset-fashion-mnist``, the offline default."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .datasets import ImageSet
from .idx import DataFileError, read_idx
from .raw import RawData
from .splits import DataSplits, finish_splits

__all__ = ["FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES", "read_idx_folder", "load_idx_folder", "load_fashion_mnist"]

FASHION_MNIST_DIR = Path(os.environ.get("FSPLADDER_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]


def _idx_pair(folder: Path, prefix: str) -> ImageSet:
    def find(stem: str) -> Path:
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
        raise DataFileError(
            f"missing {stem}(.gz) in {folder}; expected MNIST-format IDX files "
            f"({prefix}-images-idx3-ubyte.gz, {prefix}-labels-idx1-ubyte.gz). "
            "For Fashion-MNIST on Debian: apt-get install dataset-fashion-mnist"
        )

    ipath, lpath = find(f"{prefix}-images-idx3-ubyte"), find(f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(ipath), read_idx(lpath)
    if images.ndim != 3:
        raise DataFileError(f"{ipath}: expected a 3-d image array (N, H, W), got shape {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataFileError(f"{lpath}: expected {images.shape[0]} labels, got shape {labels.shape}")
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).unsqueeze(1)  # copy: frombuffer is read-only
    return ImageSet(x, torch.from_numpy(labels.astype(np.int64)))


def read_idx_folder(folder: str | Path, name: str = "idx", class_names: list[str] | None = None) -> RawData:
    """MNIST-format data: ``train-*`` and ``t10k-*`` IDX files (gzip or plain) in ``folder``."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataFileError(f"data folder {folder} does not exist; set data.root to the folder holding the IDX files")
    train, test = _idx_pair(folder, "train"), _idx_pair(folder, "t10k")
    num_classes = max(int(train.y.max()), int(test.y.max())) + 1
    names = class_names if class_names is not None and len(class_names) == num_classes else None
    return RawData(train, test, num_classes, names or [str(k) for k in range(num_classes)], name,
                   {"kind": "idx", "root": str(folder)})


def load_idx_folder(
    folder: str | Path, val_size: int = 5000, seed: int = 0, name: str = "idx",
    classes: list[int] | None = None,
) -> DataSplits:
    """MNIST-format data in ``folder``, split and checked. ``classes`` keeps only those labels,
    renumbered 0..k-1 in the given order (used for the transfer-learning split)."""
    return finish_splits(read_idx_folder(folder, name), val_size, seed, classes)


def load_fashion_mnist(root: str | Path | None = None, val_size: int = 5000, seed: int = 0,
                       classes: list[int] | None = None) -> DataSplits:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (or any folder of its IDX files)."""
    return finish_splits(read_idx_folder(root or FASHION_MNIST_DIR, "fashion-mnist", FASHION_MNIST_CLASSES),
                         val_size, seed, classes)
