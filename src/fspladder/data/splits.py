"""Checked train / validation / test splits (:class:`DataSplits`), and how every source makes them.

:func:`finish_splits` turns what a built-in source read (:class:`RawData`) into splits: classes kept and
checked, validation held out, statistics computed. Your own data comes in through the Python API: tensors
or torch Datasets into checked splits, as the class's constructors ``from_tensors``/``from_datasets``.

The engine keeps images as uint8 ``(N, C, H, W)`` tensors (0..255) and
normalises them with the training split's per-channel statistics, so both
helpers convert to that form: uint8 images are kept as they are, float images
in [0, 1] are scaled by 255 and rounded, ``(N, H, W)`` gets a channel axis,
and channels-last ``(N, H, W, C)`` batches (numpy, PIL, TensorFlow; C of 1 to
4, H above 4) are permuted to channels first. A batch with no axis of 1 to 4
channels is refused, naming both layouts.
Labels are class indices 0..K-1. The same checks as for the built-in sources
apply (labels in range, every class with training images).

    splits = DataSplits.from_tensors(train=(x_train, y_train), test=(x_test, y_test), val_size=5000)
    splits = DataSplits.from_datasets(train_ds, test_ds)          # any map-style Dataset of (image, label)
    run_ladder(cfg, "runs/mine", data=splits)

A data set too large for memory goes through the streaming path instead
(``data.stream``, docs/data.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .datasets import ImageSet, channel_stats, split_train_val
from .idx import DataFileError
from .raw import LabelSet, RawData, checked, every_class_left
from .stream import STATS_SAMPLE, StreamedSet, default_workers

__all__ = ["DataSplits", "finish_splits", "as_uint8_images", "item_image", "splits_from_tensors",
           "splits_from_datasets"]


@dataclass
class DataSplits:
    """Train / validation / test sets plus what a model needs to know about them."""

    train: ImageSet  # or a StreamedSet (data/stream.py): the same interface, images read batch by batch
    val: ImageSet
    test: ImageSet
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = ""
    class_names: list[str] | None = None  # None: "0", "1", ...
    source: dict | None = None  # where the images came from (kind, root, image size), for checkpoints

    def __post_init__(self) -> None:
        if self.class_names is None:
            self.class_names = [str(k) for k in range(self.num_classes)]

    def describe(self) -> dict:
        """What a trained network needs to be used on its own: preprocessing, input shape, classes, source."""
        return {"name": self.name, "input_shape": [self.in_chans, *self.image_size], "mean": list(self.mean),
                "std": list(self.std), "num_classes": self.num_classes, "class_names": list(self.class_names or []),
                "source": self.source or {}}

    @property
    def in_chans(self) -> int:
        return self.train.shape[0]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.shape[1:])  # type: ignore[return-value]

    @property
    def streamed(self) -> bool:
        return bool(self.train.streamed)

    @classmethod
    def from_tensors(cls, train, test, val=None, **kw) -> "DataSplits":
        """Your own ``(images, labels)`` tensors or arrays (:func:`splits_from_tensors`)."""
        return splits_from_tensors(train, test, val, **kw)

    @classmethod
    def from_datasets(cls, train, test, val=None, **kw) -> "DataSplits":
        """Your own map-style torch Datasets of ``(image, label)`` (:func:`splits_from_datasets`)."""
        return splits_from_datasets(train, test, val, **kw)

    def to(self, device: torch.device | str) -> "DataSplits":
        return DataSplits(self.train.to(device), self.val.to(device), self.test.to(device),
                          self.num_classes, self.mean, self.std, self.name, self.class_names, self.source)


def finish_splits(raw: RawData, val_size: int, seed: int, classes: list[int] | None = None) -> DataSplits:
    """Classes kept and checked, validation held out (every class keeps training images), statistics computed."""
    raw = checked(raw, classes)
    train, val = split_train_val(raw.train, val_size, seed)
    every_class_left(train.y, raw.num_classes, val_size, raw.class_names or [str(k) for k in range(raw.num_classes)])
    mean, std = channel_stats(train.x)
    return DataSplits(train, val, raw.test, raw.num_classes, mean, std, raw.name, raw.class_names, raw.source)


def as_uint8_images(x: Any, what: str = "images") -> torch.Tensor:
    """``x`` as uint8 ``(N, C, H, W)``: uint8 kept, float in [0, 1] scaled by 255, ``(N, H, W)`` given a channel,
    ``(N, H, W, C)`` permuted."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise DataFileError(f"{what} must be a tensor or numpy array of shape (N, C, H, W), got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise DataFileError(f"{what} must have shape (N, C, H, W) or (N, H, W), got {tuple(x.shape)}")
    x = _channels_first(x, what)
    x = x.cpu()
    if x.dtype == torch.uint8:
        return x.contiguous()
    if x.is_floating_point():
        if len(x) and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
            raise DataFileError(f"{what} are floats outside [0, 1] "
                                f"(min {float(x.min()):.3g}, max {float(x.max()):.3g}); "
                                "give uint8 images (0..255) or floats scaled to [0, 1], before normalisation "
                                "(fspladder normalises with the training images' own statistics)")
        return (x * 255).round().to(torch.uint8).contiguous()
    raise DataFileError(f"{what} have dtype {x.dtype}; give uint8 (0..255) or floats in [0, 1]")


MAX_CHANNELS = 4  # grey, grey + alpha, RGB, RGBA: more is no image layout fspladder reads


def _channels_first(x: torch.Tensor, what: str) -> torch.Tensor:
    """``(N, C, H, W)`` from a 4-d batch in either layout: channels first (torch's) whenever axis 1 can hold
    channels (1..4), else channels last ``(N, H, W, C)`` (numpy, PIL, TensorFlow) when axis 3 can; refused when
    neither can, naming the layouts."""
    if x.shape[1] <= MAX_CHANNELS:
        return x
    if x.shape[3] <= MAX_CHANNELS:
        return x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    raise DataFileError(f"{what} of shape {tuple(x.shape)} have no axis of 1 to {MAX_CHANNELS} channels; give "
                        "(N, C, H, W) (channels first) or (N, H, W, C) with C = 1 (grey) or 3 (RGB)")


def _labels(y: Any, n: int, what: str) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).cpu()
    if y.dim() != 1 or len(y) != n or y.is_floating_point() or y.dtype == torch.bool:
        raise DataFileError(f"{what} must be {n} integer class indices, got {y.dtype} of shape {tuple(y.shape)}")
    return y.to(torch.int64)


def splits_from_tensors(train: Sequence[Any], test: Sequence[Any], val: Sequence[Any] | None = None,
                        val_size: int = 5000, seed: int = 0, num_classes: int | None = None,
                        class_names: list[str] | None = None, name: str = "tensors") -> DataSplits:
    """``train``, ``test`` (and optionally ``val``) as ``(images, labels)`` pairs. Without ``val``,
    ``val_size`` training images are held out (seeded)."""
    _check_options(val_size, seed, num_classes, class_names, name)
    sets = {}
    for part, pair in (("train", train), ("test", test), ("val", val)):
        if pair is None:
            continue
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataFileError(f"{part} must be a pair (images, labels)")
        x = as_uint8_images(pair[0], f"{part} images")
        sets[part] = ImageSet(x, _labels(pair[1], len(x), f"{part} labels"))
    shapes = {p: tuple(s.x.shape[1:]) for p, s in sets.items()}
    if len(set(shapes.values())) != 1:
        raise DataFileError(f"every split needs images of one shape (C, H, W), got {shapes}")
    for part, st in sets.items():
        if len(st) == 0:
            raise DataFileError(f"the {part} split holds no images; give at least one (image, label) per class")
        if int(st.y.min()) < 0:
            raise DataFileError(f"{part} labels must be class indices 0..K-1, got {int(st.y.min())}")
    top = max(int(st.y.max()) for st in sets.values())
    if num_classes is not None and top >= num_classes:
        raise DataFileError(f"num_classes={num_classes}, but a label is {top}; labels must lie in 0..num_classes-1 "
                            "(or leave num_classes out: the largest label + 1)")
    k = num_classes or top + 1
    if class_names is not None and len(class_names) != k:
        raise DataFileError(f"class_names lists {len(class_names)} names for {k} classes; give one name per class")
    raw = RawData(sets["train"], sets["test"], k, class_names or [str(i) for i in range(k)], name,
                  {"kind": "python", "name": name})
    if val is None:
        return finish_splits(raw, val_size, seed)
    raw = checked(raw)
    if len(sets["val"]) == 0 or int(sets["val"].y.min()) < 0 or int(sets["val"].y.max()) >= k:
        raise DataFileError(f"val labels must be class indices 0..{k - 1}, and val must hold images")
    mean, std = channel_stats(raw.train.x)
    return DataSplits(raw.train, sets["val"], raw.test, k, mean, std, name, raw.class_names, raw.source)


def _check_options(val_size: Any, seed: Any, num_classes: Any, class_names: Any, name: Any) -> None:
    """The keyword arguments of the two helpers, each refused with what it must be."""
    def is_int(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not is_int(val_size) or val_size < 1:
        raise DataFileError(f"val_size must be an integer >= 1 (training images held out), got {val_size!r}")
    if not is_int(seed) or seed < 0:
        raise DataFileError(f"seed must be an integer >= 0, got {seed!r}")
    if num_classes is not None and (not is_int(num_classes) or num_classes < 1):
        raise DataFileError(f"num_classes must be an integer >= 1 or None (the largest label + 1), got {num_classes!r}")
    if class_names is not None and (isinstance(class_names, str) or
                                    not all(isinstance(c, str) for c in class_names)):
        raise DataFileError(f"class_names must be a list of strings, one per class, got {class_names!r}")
    if not isinstance(name, str) or not name:
        raise DataFileError(f"name must be a non-empty string (recorded with the run), got {name!r}")


def item_image(img: Any) -> torch.Tensor:
    if isinstance(img, torch.Tensor):
        return img
    if isinstance(img, np.ndarray):
        return torch.from_numpy(img)
    try:  # a PIL image
        arr = np.asarray(img)
    except Exception as e:  # noqa: BLE001 - anything that is not an image
        raise DataFileError(f"a dataset item's image is {type(img).__name__}, not a tensor, array or PIL image") from e
    return torch.from_numpy(arr.transpose(2, 0, 1).copy() if arr.ndim == 3 else arr[None].copy())


class UserImages(Dataset):
    """A user's map-style Dataset of ``(image, label)``, images converted to uint8 ``(C, H, W)``."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            img, label = self.ds[i][:2]
        except Exception as e:  # the user's own code: say which item, keep the cause's message
            raise DataFileError(f"reading item {i} of the data set failed: {type(e).__name__}: {e}") from e
        t = item_image(img)
        return as_uint8_images(t.unsqueeze(0) if t.dim() in (2, 3) else t, f"item {i}")[0], int(label)


def _materialise(ds: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        n = len(ds)
    except TypeError:
        raise DataFileError(f"{what} has no len(): give a map-style torch Dataset (an IterableDataset or a "
                            "DataLoader has no fixed order to hold out validation images from)") from None
    xs, ys = [], []
    for i in range(n):
        item = ds[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataFileError(f"{what}[{i}] is {type(item).__name__}; items must be (image, label)")
        img = item_image(item[0])
        xs.append(as_uint8_images(img.unsqueeze(0) if img.dim() in (2, 3) else img, f"{what}[{i}]"))
        ys.append(int(item[1]))
    if not xs:
        raise DataFileError(f"{what} is empty")
    return torch.cat(xs), torch.tensor(ys, dtype=torch.int64)


def _labels_of(ds: Any, what: str) -> torch.Tensor:
    """A dataset's labels without decoding its images where it says them (``targets``, torchvision's
    convention); otherwise every item is read once."""
    targets = getattr(ds, "targets", None)
    if targets is not None and len(targets) == len(ds):
        return _labels(targets, len(ds), f"{what}.targets")
    return torch.tensor([int(ds[i][1]) for i in range(len(ds))], dtype=torch.int64)


def _streamed_datasets(train: Any, test: Any, val: Any, val_size: int, seed: int, num_classes: int | None,
                       class_names: list[str] | None, name: str, workers: int | None) -> DataSplits:
    w = workers if workers is not None else default_workers()
    ytr, yte = _labels_of(train, "train"), _labels_of(test, "test")
    shape = tuple(UserImages(train)[0][0].shape)
    k = num_classes or int(max(int(ytr.max()), int(yte.max())) + 1)
    raw = checked(RawData(LabelSet(ytr, torch.arange(len(ytr))), LabelSet(yte, torch.arange(len(yte))),  # type: ignore[arg-type]
                          k, class_names or [str(i) for i in range(k)], name, {"kind": "python", "name": name}))
    full = StreamedSet(UserImages(train), torch.arange(len(ytr)), ytr, shape, w)  # type: ignore[arg-type]
    if val is None:
        if not 0 < val_size < len(full):
            raise DataFileError(f"val_size is {val_size}, but the training set has {len(full)} images")
        perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
        tr, va = full.subset(perm[val_size:]), full.subset(perm[:val_size])
    else:
        tr, yva = full, _labels_of(val, "val")
        if len(yva) == 0 or int(yva.min()) < 0 or int(yva.max()) >= k:
            raise DataFileError(f"val labels must be class indices 0..{k - 1}, and val must hold images")
        va = StreamedSet(UserImages(val), torch.arange(len(yva)), yva, shape, w)  # type: ignore[arg-type]
    te = StreamedSet(UserImages(test), torch.arange(len(yte)), yte, shape, w)  # type: ignore[arg-type]
    sample = torch.arange(min(STATS_SAMPLE, len(tr)))
    mean, std = channel_stats(torch.cat(list(tr.stream(list(torch.split(sample, 1000))))))
    return DataSplits(tr, va, te, k, mean, std, name, raw.class_names, {**raw.source, "stats_images": len(sample)})


def splits_from_datasets(train: Any, test: Any, val: Any = None, val_size: int = 5000, seed: int = 0,
                         num_classes: int | None = None, class_names: list[str] | None = None,
                         name: str = "dataset", stream: bool = False, workers: int | None = None) -> DataSplits:
    """Map-style torch Datasets of ``(image, label)`` items. Images: ``(C, H, W)`` tensors (uint8, or float in
    [0, 1]) or PIL images, all of one size.

    By default they are read into memory (uint8), then as :func:`splits_from_tensors`. With ``stream`` they
    stay where they are and are read batch by batch by ``workers`` processes (data larger than memory;
    statistics from up to 10,000 training images; labels from ``dataset.targets`` where it has them).
    """
    from torch.utils.data import DataLoader

    for what, ds in (("train", train), ("test", test), ("val", val)):
        if isinstance(ds, DataLoader):
            raise DataFileError(f"{what} is a DataLoader; pass its dataset (loader.dataset): fspladder batches, "
                                "shuffles and augments by itself")
    _check_options(val_size, seed, num_classes, class_names, name)
    names = class_names or getattr(train, "classes", None)
    if stream:
        return _streamed_datasets(train, test, val, val_size, seed, num_classes,
                                  list(names) if names is not None else None, name, workers)
    return splits_from_tensors(_materialise(train, "train"), _materialise(test, "test"),
                               _materialise(val, "val") if val is not None else None, val_size, seed, num_classes,
                               list(names) if names is not None else None, name)
