"""One image file decoded with Pillow: the in-memory folder path and the streaming path decode alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .idx import DataFileError

__all__ = ["decode_image"]


def decode_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image file as a uint8 ``(C, size, size)`` array (bilinear resize)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert({1: "L", 3: "RGB"}[channels]).resize((size, size), Image.BILINEAR),
                             dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataFileError(f"image {path} cannot be read ({e}); remove it or replace it with a valid image") from e
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)
