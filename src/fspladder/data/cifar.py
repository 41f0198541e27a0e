"""CIFAR-10 / CIFAR-100 from their standard "python version" archive folders.

``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5``, ``test_batch``
(pickled dicts with ``b"data"``: ``(N, 3072)`` uint8 in CHW order and
``b"labels"``). ``cifar-100-python/``: ``train`` and ``test`` with
``b"fine_labels"``. The archive must already be unpacked on local disk;
nothing is downloaded. These files are pickles: only read archives you trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from .datasets import DataSplits, ImageSet, channel_stats, split_train_val
from .idx import DataFileError

__all__ = ["load_cifar"]


def _batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataFileError(f"missing CIFAR batch file {path}; point data.root at the unpacked python-version "
                            "archive folder (cifar-10-batches-py or cifar-100-python)")
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataFileError(f"CIFAR batch file {path} is truncated or not a CIFAR pickle ({e})") from e
    if not isinstance(d, dict) or b"data" not in d or label_key not in d:
        raise DataFileError(f"CIFAR batch file {path} lacks the keys b'data' and {label_key!r}")
    data, labels = np.asarray(d[b"data"]), np.asarray(d[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8 or len(labels) != len(data):
        raise DataFileError(f"CIFAR batch file {path}: expected uint8 data of shape (N, 3072) and N labels, "
                            f"got {data.dtype} {data.shape} and {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar(root: str | Path, num_classes: int = 10, val_size: int = 5000, seed: int = 0) -> DataSplits:
    """Load CIFAR-10 (``num_classes=10``) or CIFAR-100 (``100``, fine labels) from ``root``."""
    root = Path(root)
    if num_classes == 10:
        names, label_key = [f"data_batch_{i}" for i in range(1, 6)], b"labels"
        test_name, sub = "test_batch", "cifar-10-batches-py"
    elif num_classes == 100:
        names, label_key, test_name, sub = ["train"], b"fine_labels", "test", "cifar-100-python"
    else:
        raise ValueError(f"CIFAR has 10 or 100 classes, got {num_classes}")
    if not (root / names[0]).exists() and (root / sub).is_dir():
        root = root / sub  # accept the folder above the archive folder too
    if not root.is_dir():
        raise DataFileError(f"CIFAR folder {root} does not exist; set data.root to the unpacked {sub} folder")
    parts = [_batch(root / n, label_key) for n in names]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    xt, yt = _batch(root / test_name, label_key)
    full = ImageSet(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y))
    train, val = split_train_val(full, val_size, seed)
    test = ImageSet(torch.from_numpy(np.ascontiguousarray(xt)), torch.from_numpy(yt))
    mean, std = channel_stats(train.x)
    return DataSplits(train, val, test, num_classes, mean, std, f"cifar{num_classes}")
