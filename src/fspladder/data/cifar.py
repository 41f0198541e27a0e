"""CIFAR-10 / CIFAR-100 from the unpacked python-version archives on local disk.

``cifar-10-batches-py/``: ``data_batch_1..5`` and ``test_batch`` (pickled dicts
with ``b"data"``: ``(N, 3072)`` uint8 in CHW order and ``b"labels"``), class
names in ``batches.meta``. ``cifar-100-python/``: ``train`` and ``test`` with
``b"fine_labels"``, names in ``meta``. Nothing is downloaded.

The files are pickles, and a pickle can name any callable to run while it
loads. They are read with a restricted unpickler that admits only what a
CIFAR batch holds (numpy arrays, dtypes and scalars; dicts, lists, bytes and
numbers need no import), so a crafted ``data_batch_1`` is refused before it
can run anything.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .datasets import ImageSet
from .idx import DataFileError
from .raw import RawData
from .splits import DataSplits, finish_splits

__all__ = ["load_cifar", "read_cifar", "safe_unpickle"]

# The only globals a CIFAR pickle needs: numpy's array reconstruction (numpy 1.x and 2.x module names).
_ALLOWED = {(mod, name) for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype")}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR batch never holds")


def safe_unpickle(path: Path) -> Any:
    """Unpickle a CIFAR batch file admitting only numpy arrays and plain containers."""
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        if "CIFAR batch never holds" in str(e):
            raise DataFileError(f"CIFAR batch file {path} was refused: {e}. A pickle that names other code can "
                                "run it while loading; replace the file with one from the official archive") from e
        raise DataFileError(f"CIFAR batch file {path} is truncated or not a CIFAR pickle ({e})") from e
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DataFileError(f"CIFAR batch file {path} is truncated or not a CIFAR pickle ({e})") from e


def _batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataFileError(f"missing CIFAR batch file {path}; point data.root at the unpacked python-version "
                            "archive folder (cifar-10-batches-py or cifar-100-python)")
    d = safe_unpickle(path)
    if not isinstance(d, dict) or b"data" not in d or label_key not in d:
        raise DataFileError(f"CIFAR batch file {path} lacks the keys b'data' and {label_key!r}")
    try:
        data, labels = np.asarray(d[b"data"]), np.asarray(d[label_key], dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataFileError(f"CIFAR batch file {path}: unreadable data or labels ({e})") from e
    if (data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8
            or labels.ndim != 1 or len(labels) != len(data)):
        raise DataFileError(f"CIFAR batch file {path}: expected uint8 data of shape (N, 3072) and N labels, "
                            f"got {data.dtype} {data.shape} and {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _names(root: Path, meta: str, key: bytes, n: int) -> list[str]:
    if (root / meta).is_file():
        try:
            d = safe_unpickle(root / meta)
            names = [x.decode() if isinstance(x, bytes) else str(x) for x in d[key]]
            if len(names) == n:
                return names
        except (DataFileError, KeyError, TypeError):
            pass  # names are a convenience; the numbers still train
    return [str(k) for k in range(n)]


def read_cifar(root: str | Path, num_classes: int = 10) -> RawData:
    """CIFAR-10 (``num_classes=10``) or CIFAR-100 (``100``, fine labels) from ``root``."""
    root = Path(root).expanduser()
    if num_classes == 10:
        names, label_key = [f"data_batch_{i}" for i in range(1, 6)], b"labels"
        test_name, sub, meta, meta_key = "test_batch", "cifar-10-batches-py", "batches.meta", b"label_names"
    elif num_classes == 100:
        names, label_key, test_name, sub = ["train"], b"fine_labels", "test", "cifar-100-python"
        meta, meta_key = "meta", b"fine_label_names"
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
    train = ImageSet(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y))
    test = ImageSet(torch.from_numpy(np.ascontiguousarray(xt)), torch.from_numpy(yt))
    return RawData(train, test, num_classes, _names(root, meta, meta_key, num_classes), f"cifar{num_classes}",
                   {"kind": f"cifar{num_classes}", "root": str(root)})


def load_cifar(root: str | Path, num_classes: int = 10, val_size: int = 5000, seed: int = 0) -> DataSplits:
    """CIFAR-10 or CIFAR-100 from ``root``, split and checked."""
    return finish_splits(read_cifar(root, num_classes), val_size, seed)
