"""Image folders: one sub-folder per class, read with Pillow.

Layout: ``root/train/<class>/*.png|jpg|...`` and ``root/test/<class>/...``.
Without ``train``/``test`` sub-folders, ``root/<class>/...`` is split into a
test set of ``test_fraction`` per class (seeded). Images are converted to
``channels`` (1 = grey, 3 = RGB) and resized to ``image_size`` squares.

:func:`index_image_folder` lists the files without decoding them (the
streaming path reads them batch by batch); :func:`read_image_folder` decodes
them all into one uint8 tensor (the in-memory path).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .datasets import ImageSet
from .decode import decode_image
from .idx import DataFileError
from .raw import RawData
from .splits import DataSplits, finish_splits

__all__ = ["load_image_folder", "read_image_folder", "index_image_folder", "FolderIndex", "decode_image",
           "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


@dataclass
class FolderIndex:
    """Image files and their labels, before any decoding."""

    root: Path
    classes: list[str]
    train_files: list[Path]
    train_labels: list[int]
    test_files: list[Path]
    test_labels: list[int]


def _classes(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataFileError(f"image folder {folder} needs one sub-folder per class (at least two), found {classes}")
    return classes


def _files(folder: Path, classes: list[str], need_all: bool) -> tuple[list[Path], list[int]]:
    files, labels = [], []
    for k, c in enumerate(classes):
        d = folder / c
        if not d.is_dir():
            raise DataFileError(f"class folder {d} is missing; train and test need the same class sub-folders")
        found = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found and need_all:
            raise DataFileError(f"class folder {d} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); add images "
                                "or remove the folder (an empty class cannot be learned)")
        files += found
        labels += [k] * len(found)
    return files, labels


def index_image_folder(root: str | Path, seed: int = 0, test_fraction: float = 0.2) -> FolderIndex:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataFileError(f"image folder {root} does not exist; set data.root to it")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = _classes(root / "train")
        extra = sorted(set(_classes(root / "test")) - set(classes))
        if extra:
            raise DataFileError(f"image folder {root}: test has class folders {extra} that train lacks; a class "
                                "without training images cannot be learned: add them to train or remove them")
        tr, ytr = _files(root / "train", classes, need_all=True)
        te, yte = _files(root / "test", classes, need_all=False)
        return FolderIndex(root, classes, tr, ytr, te, yte)
    classes = _classes(root)
    files, labels = _files(root, classes, need_all=True)
    y = torch.tensor(labels)
    g = torch.Generator().manual_seed(seed)
    test_idx = []
    for k in range(len(classes)):  # per-class test split
        idx = (y == k).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        test_idx += idx[: max(1, round(test_fraction * len(idx)))].tolist()
    is_test = set(test_idx)
    keep = [i for i in range(len(files)) if i not in is_test]
    return FolderIndex(root, classes, [files[i] for i in keep], [labels[i] for i in keep],
                       [files[i] for i in sorted(is_test, key=test_idx.index)],
                       [labels[i] for i in sorted(is_test, key=test_idx.index)])


def _decode_all(files: list[Path], labels: list[int], size: int, channels: int) -> ImageSet:
    if not files:
        return ImageSet(torch.zeros((0, channels, size, size), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    # np.stack of transposed (C, H, W) views keeps their channels-last layout; make it the standard one, as
    # the streaming path's batches are (so both paths compute bit-identical statistics).
    return ImageSet(torch.from_numpy(np.ascontiguousarray(np.stack([decode_image(f, size, channels) for f in files]))),
                    torch.tensor(labels, dtype=torch.int64))


def read_image_folder(root: str | Path, image_size: int = 32, channels: int = 3, seed: int = 0,
                      test_fraction: float = 0.2, index: FolderIndex | None = None) -> RawData:
    """Every image of the folder decoded (``index``: the folder's listing, when already made)."""
    if channels not in (1, 3):
        raise DataFileError(f"channels must be 1 or 3, got {channels}")
    ix = index if index is not None else index_image_folder(root, seed, test_fraction)
    train = _decode_all(ix.train_files, ix.train_labels, image_size, channels)
    test = _decode_all(ix.test_files, ix.test_labels, image_size, channels)
    return RawData(train, test, len(ix.classes), ix.classes, f"folder:{ix.root.name}",
                   {"kind": "folder", "root": str(ix.root), "image_size": image_size, "channels": channels})


def load_image_folder(root: str | Path, image_size: int = 32, channels: int = 3, val_size: int = 5000,
                      seed: int = 0, test_fraction: float = 0.2) -> DataSplits:
    """An image folder, decoded, split and checked."""
    return finish_splits(read_image_folder(root, image_size, channels, seed, test_fraction), val_size, seed)
