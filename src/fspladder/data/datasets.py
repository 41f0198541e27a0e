"""Image classification data held as tensors.

A :class:`ImageSet` keeps the whole data set as one uint8 tensor ``(N, C, H, W)``
plus int64 labels, so it can live on the training device (airbench-style) and
be batched with index tensors instead of a DataLoader.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .idx import DataFileError

__all__ = ["ImageSet", "split_train_val", "channel_stats", "val_size_check"]


@dataclass
class ImageSet:
    """Images ``x`` (uint8, ``(N, C, H, W)``), labels ``y`` (int64, ``(N,)``) and, optionally, ``origin``: each
    image's index in its source's training or test files (int64, ``(N,)``), for fingerprints."""

    x: torch.Tensor
    y: torch.Tensor
    origin: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.x.dim() != 4 or self.x.dtype != torch.uint8:
            raise ValueError("ImageSet.x must be a uint8 (N, C, H, W) tensor, "
                             f"got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.shape != (self.x.shape[0],):
            raise ValueError(f"ImageSet: {self.x.shape[0]} images but labels of shape {tuple(self.y.shape)}")
        if self.origin is None:
            self.origin = torch.arange(self.x.shape[0])

    streamed = False  # the in-memory path (see data/stream.py for the other)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def read(self, idx: torch.Tensor) -> torch.Tensor:
        """The images at positions ``idx``: uint8 ``(b, C, H, W)`` on the set's device."""
        return self.x[idx.to(self.x.device)]

    def stream(self, batches):
        """uint8 batches for each index tensor of ``batches`` (the streaming path's interface; here a lookup)."""
        return (self.read(b) for b in batches)

    def subset(self, idx: torch.Tensor) -> "ImageSet":
        idx = idx.to(self.x.device)
        return ImageSet(self.x[idx], self.y[idx], self.origin[idx.to(self.origin.device)])  # type: ignore[index]

    def to(self, device: torch.device | str) -> "ImageSet":
        return ImageSet(self.x.to(device), self.y.to(device), self.origin)

    def fingerprint(self, source: str = "") -> str:
        """SHA-256 of the images' source indices (in order) and the source's name: equal fingerprints, same images."""
        import hashlib

        h = hashlib.sha256(source.encode() + b"|")
        h.update(self.origin.to("cpu", torch.int64).numpy().tobytes())  # type: ignore[union-attr]
        return h.hexdigest()


def val_size_check(val_size: int, n: int, where: str = "the data") -> None:
    """:class:`DataFileError` unless ``val_size`` leaves training images of the ``n``, naming the real size."""
    if not 0 < val_size < n:
        default = " (the default when the key is not set)" if val_size == 5000 else ""
        raise DataFileError(f"data.val_size is {val_size:,}{default}, but {where} has {n:,} training images; set "
                            f"data.val_size between 1 and {n - 1:,} (e.g. {max(1, n // 10):,}, a tenth)")


def split_train_val(full: ImageSet, val_size: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """Hold out ``val_size`` random training images for validation (never tune on test)."""
    val_size_check(val_size, len(full))
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
    return full.subset(perm[val_size:]), full.subset(perm[:val_size])


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    xf = x.contiguous().float().div_(255)  # one memory layout, one summation order
    return tuple(xf.mean(dim=(0, 2, 3)).tolist()), tuple(xf.std(dim=(0, 2, 3)).tolist())
