"""From a data config to checked train / validation / test splits: which source reads the images (IDX, CIFAR,
image folder), whether they are held in memory or streamed (``data.stream``), and the configured subsets.
The checks and the split are the same for every source (:mod:`.raw`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .cifar import read_cifar
from .datasets import channel_stats, val_size_check
from .folder import index_image_folder, read_image_folder
from .idx import DataFileError
from .mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, read_idx_folder
from .raw import LabelSet, RawData, checked, every_class_left
from .splits import DataSplits, finish_splits
from .stream import STATS_SAMPLE, FolderImages, StreamedSet, TensorImages, default_workers

if TYPE_CHECKING:
    from ..config import DataConfig

__all__ = ["DataPath", "load_splits", "data_path"]


@dataclass
class DataPath:
    """Which input path a config takes, and the estimate behind the choice (``fspladder check`` prints it)."""

    stream: bool
    train_images: int
    bytes: int  # the decoded training set, uint8
    free: int | None  # free memory on the training device (and host), bytes
    share: float
    setting: object

    def __str__(self) -> str:
        mib = self.bytes / 2**20
        room = f"{self.free / 2**20:,.0f} MiB free, share {self.share:g}" if self.free is not None else \
            "free memory unknown"
        path = "streamed from disk batch by batch" if self.stream else "held in memory on the training device"
        return (f"data: {self.train_images:,} training images = {mib:,.1f} MiB decoded; {room} -> {path} "
                f"(data.stream: {str(self.setting).lower()})")


def _free(device) -> int | None:
    import torch as _t

    from ..memory import free_bytes

    dev = _t.device(device) if device is not None else _t.device("cpu")
    frees = [f for f in (free_bytes(dev), free_bytes(_t.device("cpu")) if dev.type != "cpu" else None) if f is not None]
    return min(frees) if frees else None


def data_path(d: "DataConfig", n_train: int, shape: tuple[int, int, int], device=None) -> DataPath:
    """``data.stream`` resolved: true/false as set; auto streams when the decoded training set would take more than
    ``data.memory_share`` of the free memory of the training device (and of the host)."""
    need = n_train * shape[0] * shape[1] * shape[2]
    free = _free(device)
    if d.stream == "auto":
        stream = free is not None and need > d.memory_share * free
    else:
        stream = bool(d.stream)
    return DataPath(stream, n_train, need, free, d.memory_share, d.stream)


def _streamed(splits: DataSplits, workers: int) -> DataSplits:
    """In-memory splits served through the streaming path (IDX and CIFAR are decoded by their readers anyway)."""
    def wrap(s):
        return StreamedSet(TensorImages(s.x, s.y), torch.arange(len(s)), s.y, s.shape, workers, origin=s.origin)

    return DataSplits(wrap(splits.train), wrap(splits.val), wrap(splits.test), splits.num_classes, splits.mean,
                      splits.std, splits.name, splits.class_names, splits.source)


def _streamed_folder(d: "DataConfig", seed: int, workers: int, ix) -> DataSplits:
    """An image folder on the streaming path: files indexed, labels checked, nothing decoded but a sample for
    the statistics (all training images when there are at most ``STATS_SAMPLE``, as the in-memory path)."""
    shape = (d.channels, d.image_size, d.image_size)
    ytr, yte = torch.tensor(ix.train_labels, dtype=torch.int64), torch.tensor(ix.test_labels, dtype=torch.int64)
    # The same label checks and class selection as the in-memory path, on labels alone.
    raw = checked(RawData(LabelSet(ytr, torch.arange(len(ytr))), LabelSet(yte, torch.arange(len(yte))),  # type: ignore[arg-type]
                          len(ix.classes), ix.classes, f"folder:{ix.root.name}", {}), d.classes)
    keep_tr, keep_te = raw.train.origin, raw.test.origin  # positions in ix's lists that the classes kept
    train_ds = FolderImages([ix.train_files[i] for i in keep_tr], raw.train.y.tolist(), d.image_size, d.channels)
    test_ds = FolderImages([ix.test_files[i] for i in keep_te], raw.test.y.tolist(), d.image_size, d.channels)
    n = len(train_ds)
    val_size_check(d.val_size, n, f"{raw.name} (its kept classes)" if d.classes else raw.name)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # as split_train_val
    full = StreamedSet(train_ds, torch.arange(n), raw.train.y, shape, workers)
    train, val = full.subset(perm[d.val_size:]), full.subset(perm[: d.val_size])
    every_class_left(train.y, raw.num_classes, d.val_size, raw.class_names)
    test = StreamedSet(test_ds, torch.arange(len(test_ds)), raw.test.y, shape, workers)
    sample = torch.arange(min(STATS_SAMPLE, len(train)))
    xs = torch.cat(list(train.stream(list(torch.split(sample, 1000)))))
    mean, std = channel_stats(xs)
    return DataSplits(train, val, test, raw.num_classes, mean, std, raw.name, raw.class_names,
                      {"kind": "folder", "root": str(ix.root), "image_size": d.image_size, "channels": d.channels,
                       "stats_images": len(sample)})


def load_splits(d: "DataConfig", seed: int, device=None, path: list[DataPath] | None = None) -> DataSplits:
    """The splits a data config describes, on the path ``data.stream`` chooses (``path`` receives the choice).

    In-memory splits are on the CPU (``.to(device)`` moves them); streamed ones stay where they are read from.
    """
    workers = d.workers if d.workers is not None else default_workers()
    if d.name == "folder":
        ix = index_image_folder(d.root, seed)
        # Before the path's estimate: a val_size beyond the folder's images would estimate a negative size.
        val_size_check(d.val_size, len(ix.train_files), f"folder:{ix.root.name}")
        choice = data_path(d, len(ix.train_files) - d.val_size, (d.channels, d.image_size, d.image_size), device)
        if path is not None:
            path.append(choice)
        if choice.stream:
            return _subsets(_streamed_folder(d, seed, workers, ix), d)
        raw = read_image_folder(d.root, d.image_size, d.channels, seed, index=ix)
    elif d.name == "fashion-mnist":
        raw = read_idx_folder(d.root or FASHION_MNIST_DIR, "fashion-mnist", FASHION_MNIST_CLASSES)
    elif d.name == "idx":
        raw = read_idx_folder(d.root, "idx")
    else:
        raw = read_cifar(d.root, 10 if d.name == "cifar10" else 100)
    splits = _subsets(finish_splits(raw, d.val_size, seed, d.classes), d)
    if d.name != "folder":
        choice = data_path(d, len(splits.train), splits.train.shape, device)
        if path is not None:
            path.append(choice)
        if choice.stream:
            return _streamed(splits, workers)
    return splits


def _subsets(splits: DataSplits, d: "DataConfig") -> DataSplits:
    if d.train_subset:
        keep = min(d.train_subset, len(splits.train))
        y = splits.train.y.cpu()
        missing = [k for k in range(splits.num_classes) if not (y[:keep] == k).any()]
        if missing:  # the full split holds every class (checked); the first N images may not
            need = max(int((y == k).nonzero()[0]) for k in range(splits.num_classes)) + 1
            names = splits.class_names or [str(k) for k in range(splits.num_classes)]
            raise DataFileError(
                f"data.train_subset={d.train_subset} keeps the first {keep} training images, which hold no image of "
                f"class(es) {', '.join(f'{k} ({names[k]!r})' for k in missing[:5])}{' ...' if len(missing) > 5 else ''}"
                f"; a class without training images cannot be learned: set data.train_subset to at least {need} (the "
                "first that hold every class), or keep fewer classes with data.classes")
        splits.train = splits.train.subset(torch.arange(keep))
    if d.test_subset:
        splits.test = splits.test.subset(torch.arange(min(d.test_subset, len(splits.test))))
    return splits
