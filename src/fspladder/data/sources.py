"""From a data config to checked train / validation / test splits, the same way for every source.

Each source (IDX, CIFAR, image folder) reads its training and test images and
labels; this module then keeps the configured classes (renumbered 0..k-1),
refuses labels outside the class range, classes without training images and
classes that only the test set has, holds out the validation images (seeded)
and computes the normalisation statistics on the training images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .datasets import DataSplits, ImageSet, channel_stats, split_train_val
from .idx import DataFileError

if TYPE_CHECKING:
    from ..config import DataConfig

__all__ = ["RawData", "finish_splits", "load_splits", "FASHION_MNIST_CLASSES"]

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]


@dataclass
class RawData:
    """What a source read: training and test images, how many classes it declares, their names."""

    train: ImageSet
    test: ImageSet
    num_classes: int
    class_names: list[str]
    name: str
    source: dict  # where it came from (kind, root, image size...), recorded in checkpoints


def _check_labels(raw: RawData) -> None:
    for part, s in (("training", raw.train), ("test", raw.test)):
        if len(s) and (int(s.y.min()) < 0 or int(s.y.max()) >= raw.num_classes):
            bad = s.y[(s.y < 0) | (s.y >= raw.num_classes)]
            raise DataFileError(f"{raw.name}: {len(bad)} {part} labels lie outside 0..{raw.num_classes - 1} "
                                f"(e.g. {int(bad[0])}); the files are damaged or of another data set")


def _keep(s: ImageSet, classes: list[int]) -> ImageSet:
    lut = torch.full((int(s.y.max()) + 1 if len(s) else 1,), -1, dtype=torch.int64)
    for new, old in enumerate(classes):
        if old < len(lut):
            lut[old] = new
    keep = lut[s.y] >= 0
    return ImageSet(s.x[keep], lut[s.y[keep]], s.origin[keep] if s.origin is not None else None)


def finish_splits(raw: RawData, val_size: int, seed: int, classes: list[int] | None = None) -> DataSplits:
    """Classes kept and checked, validation held out, statistics computed."""
    _check_labels(raw)
    names = raw.class_names
    if classes is not None:
        missing = [c for c in classes if c >= raw.num_classes]
        if missing:
            raise DataFileError(f"data.classes: {missing} do not exist in {raw.name}, whose labels are "
                                f"0..{raw.num_classes - 1}; list labels in that range")
        raw = RawData(_keep(raw.train, classes), _keep(raw.test, classes), len(classes),
                      [names[c] for c in classes], raw.name, raw.source)
        names = raw.class_names
    counts = torch.bincount(raw.train.y, minlength=raw.num_classes)
    empty = [k for k in range(raw.num_classes) if counts[k] == 0]
    if empty:
        with_test = [k for k in empty if (raw.test.y == k).any()]
        what = " (the test set has images of " + ", ".join(repr(names[k]) for k in with_test) + ")" if with_test else ""
        raise DataFileError(
            f"{raw.name}: class(es) {', '.join(f'{k} ({names[k]!r})' for k in empty)} have no training images{what}; "
            "a class without training images cannot be learned: add images, or keep only the classes that have "
            "them with data.classes")
    if len(raw.test) == 0:
        raise DataFileError(f"{raw.name}: the test set holds no images")
    train, val = split_train_val(raw.train, val_size, seed)
    mean, std = channel_stats(train.x)
    return DataSplits(train, val, raw.test, raw.num_classes, mean, std, raw.name, names, raw.source)


def load_splits(d: "DataConfig", seed: int) -> DataSplits:
    """The splits a data config describes (all on the CPU)."""
    from .cifar import read_cifar
    from .datasets import FASHION_MNIST_DIR, read_idx_folder
    from .folder import read_image_folder

    if d.name == "fashion-mnist":
        raw = read_idx_folder(d.root or FASHION_MNIST_DIR, "fashion-mnist", FASHION_MNIST_CLASSES)
    elif d.name == "idx":
        raw = read_idx_folder(d.root, "idx")
    elif d.name in ("cifar10", "cifar100"):
        raw = read_cifar(d.root, 10 if d.name == "cifar10" else 100)
    else:
        raw = read_image_folder(d.root, d.image_size, d.channels, seed)
    splits = finish_splits(raw, d.val_size, seed, d.classes)
    if d.train_subset:
        splits.train = splits.train.subset(torch.arange(min(d.train_subset, len(splits.train))))
    if d.test_subset:
        splits.test = splits.test.subset(torch.arange(min(d.test_subset, len(splits.test))))
    return splits
