"""What a source read, checked the same way for every source, and split.

Each source (IDX, CIFAR, image folder, your own tensors or Datasets) reads its
training and test images and labels into a :class:`RawData`; :func:`checked`
then keeps the configured classes (renumbered 0..k-1), refuses labels outside
the class range, classes without training images and a missing test set, and
:func:`fspladder.data.splits.finish_splits` holds out the validation images (seeded) and computes the
normalisation statistics on the training images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .datasets import ImageSet
from .idx import DataFileError

__all__ = ["RawData", "LabelSet", "checked", "every_class_left"]


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


@dataclass
class LabelSet:
    """Labels and source positions without images: what the streaming path checks and selects classes on."""

    y: torch.Tensor
    origin: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: torch.Tensor) -> "LabelSet":
        return LabelSet(self.y[idx], self.origin[idx])


def _keep(s, classes: list[int]):
    """The images of ``classes`` only, relabelled 0..k-1 in the given order."""
    lut = torch.full((int(s.y.max()) + 1 if len(s) else 1,), -1, dtype=torch.int64)
    for new, old in enumerate(classes):
        if old < len(lut):
            lut[old] = new
    sub = s.subset((lut[s.y] >= 0).nonzero().flatten())
    if isinstance(sub, LabelSet):
        return LabelSet(lut[sub.y], sub.origin)
    return ImageSet(sub.x, lut[sub.y], sub.origin)


def checked(raw: RawData, classes: list[int] | None = None) -> RawData:
    """Labels in range, the configured classes kept (renumbered), every class with training images, a test set."""
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
    return raw


def every_class_left(train_y: torch.Tensor, num_classes: int, val_size: int, names: list[str]) -> None:
    """:class:`DataFileError` when holding out ``val_size`` images left a class without training images (a
    validation set nearly as large as the training set): nothing would learn it."""
    counts = torch.bincount(train_y.cpu(), minlength=num_classes)
    empty = [k for k in range(num_classes) if counts[k] == 0]
    if empty:
        n = len(train_y) + val_size
        raise DataFileError(
            f"data.val_size={val_size:,} holds out {val_size:,} of the {n:,} training images, and the {len(train_y):,} "
            f"left hold no image of class(es) {', '.join(f'{k} ({names[k]!r})' for k in empty[:5])}"
            f"{' ...' if len(empty) > 5 else ''}; lower data.val_size (e.g. {max(1, n // 10):,}, a tenth)")
