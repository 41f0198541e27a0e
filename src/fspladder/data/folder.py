"""Image folders: one sub-folder per class, read with Pillow.

Layout: ``root/train/<class>/*.png|jpg|...`` and ``root/test/<class>/...``.
Without ``train``/``test`` sub-folders, ``root/<class>/...`` is split into a
test set of ``test_fraction`` per class (seeded). Images are converted to
``channels`` (1 = grey, 3 = RGB) and resized to ``image_size`` squares.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .datasets import DataSplits, ImageSet, channel_stats, split_train_val
from .idx import DataFileError

__all__ = ["load_image_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def _classes(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataFileError(f"image folder {folder} needs one sub-folder per class (at least two), found {classes}")
    return classes


def _read(folder: Path, classes: list[str], size: int, channels: int) -> ImageSet:
    from PIL import Image, UnidentifiedImageError

    mode = {1: "L", 3: "RGB"}[channels]
    xs, ys = [], []
    for k, c in enumerate(classes):
        d = folder / c
        if not d.is_dir():
            raise DataFileError(f"class folder {d} is missing; train and test need the same class sub-folders")
        for f in sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                with Image.open(f) as im:
                    im = im.convert(mode).resize((size, size), Image.BILINEAR)
                    arr = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as e:
                raise DataFileError(f"image {f} cannot be read ({e}); remove it or replace it with a valid image") from e
            xs.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
            ys.append(k)
    if not xs:
        raise DataFileError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    return ImageSet(torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.int64))


def load_image_folder(root: str | Path, image_size: int = 32, channels: int = 3, val_size: int = 5000,
                      seed: int = 0, test_fraction: float = 0.2) -> DataSplits:
    root = Path(root)
    if not root.is_dir():
        raise DataFileError(f"image folder {root} does not exist; set data.root to it")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = _classes(root / "train")
        full, test = _read(root / "train", classes, image_size, channels), _read(root / "test", classes, image_size, channels)
    else:
        classes = _classes(root)
        every = _read(root, classes, image_size, channels)
        g = torch.Generator().manual_seed(seed)
        test_idx = []
        for k in range(len(classes)):  # per-class test split
            idx = (every.y == k).nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            test_idx.append(idx[: max(1, round(test_fraction * len(idx)))])
        t = torch.cat(test_idx)
        keep = torch.ones(len(every), dtype=torch.bool)
        keep[t] = False
        full, test = every.subset(keep.nonzero().flatten()), every.subset(t)
    if val_size >= len(full):
        raise DataFileError(f"image folder {root}: val_size {val_size} leaves no training images "
                            f"({len(full)} in all); lower data.val_size")
    train, val = split_train_val(full, val_size, seed)
    mean, std = channel_stats(train.x)
    return DataSplits(train, val, test, len(classes), mean, std, f"folder:{root.name}")
