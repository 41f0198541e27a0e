"""The streaming input path: images read batch by batch from disk (or host memory), for data larger than memory.

A :class:`StreamedSet` stands where an in-memory :class:`ImageSet` would: it
knows its labels and the dataset indices of its images, and hands the engine
uint8 batches ``(b, C, H, W)``. A torch ``DataLoader`` with worker processes
decodes and resizes the images (Pillow, in the workers) for the batches the
engine asks for, a few batches ahead; pinned memory and non-blocking copies on
CUDA. The engine then applies the same batched augmentation and normalisation
as on the in-memory path, with the same random stream.

Order and determinism: the engine draws each epoch's permutation and every
batch's augmentation from its own seeded generator in the main process, as on
the in-memory path, and hands the loader the index batches to fetch; workers
only decode, which is deterministic. So for a seed both paths see the same
images in the same order with the same augmentation (``tests/test_stream.py``
trains on both and compares the weights bit for bit). Under torchrun each rank
fetches only its share of every global batch. ``--resume`` works at epoch
granularity, as on the in-memory path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .decode import decode_image
from .idx import DataFileError

__all__ = ["StreamedSet", "FolderImages", "TensorImages", "default_workers", "STATS_SAMPLE"]

STATS_SAMPLE = 10_000  # training images the streaming path computes the normalisation statistics from


def default_workers() -> int:
    """Decoding workers when ``data.workers`` is null: one per core but one, at most 4, at least 1."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class FolderImages(Dataset):
    """Image files decoded with Pillow to uint8 ``(C, size, size)`` (the in-memory path's decoding, exactly)."""

    def __init__(self, files: list[Path], labels: list[int], size: int, channels: int) -> None:
        self.files, self.labels, self.size, self.channels = list(files), list(labels), size, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        # Contiguous (C, H, W), as the in-memory path stacks them: a transposed view would make batches
        # channels-last in memory and change the float summation order of the statistics.
        return torch.from_numpy(np.ascontiguousarray(decode_image(self.files[i], self.size, self.channels))), \
            self.labels[i]


class TensorImages(Dataset):
    """Images already decoded in host memory (IDX, CIFAR), served through the streaming path."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def _collate(items: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
    shapes = {(tuple(x.shape), x.dtype) for x, _ in items}
    if len(shapes) != 1 or next(iter(shapes))[1] != torch.uint8:
        raise DataFileError(f"a batch holds images of several shapes or types {sorted(map(str, shapes))}; every "
                            "image must be uint8 of one (C, H, W): resize them to one size")
    return torch.stack([x for x, _ in items])


class _Batches:
    """A batch sampler whose batches the engine sets before each pass (so persistent workers stay alive)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class StreamedSet:
    """A split whose images stay on disk (or in host memory) until a batch needs them.

    Args:
        dataset: items ``(uint8 (C, H, W) tensor, label)``.
        indices: the dataset indices of this split's images, ``(N,)`` int64.
        y: their labels, ``(N,)`` int64 (known without decoding).
        shape: ``(C, H, W)`` of every image.
        workers: decoding worker processes (0 decodes in the main process).
    """

    def __init__(self, dataset: Dataset, indices: torch.Tensor, y: torch.Tensor, shape: tuple[int, int, int],
                 workers: int = 0, pin: bool = False, origin: torch.Tensor | None = None) -> None:
        self.dataset, self.indices, self.y = dataset, indices.to(torch.int64), y.to(torch.int64)
        self._origin = (origin if origin is not None else self.indices).to("cpu", torch.int64)
        self.shape, self.workers, self.pin = tuple(shape), workers, pin
        self._loader: DataLoader | None = None
        self._sampler = _Batches()

    streamed = True

    @property
    def origin(self) -> torch.Tensor:
        """Each image's index in its source's files (for fingerprints)."""
        return self._origin

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, idx: torch.Tensor) -> "StreamedSet":
        idx = idx.to("cpu")
        return StreamedSet(self.dataset, self.indices[idx], self.y[idx], self.shape, self.workers, self.pin,
                           self._origin[idx])

    def to(self, device: torch.device | str) -> "StreamedSet":
        """Images stay where they are; batches are copied to the device as they are used (pinned for CUDA)."""
        pin = torch.device(device).type == "cuda"
        if pin != self.pin:
            self.pin, self._loader = pin, None  # a loader made before knew nothing of the device
        return self

    def fingerprint(self, source: str = "") -> str:
        import hashlib

        h = hashlib.sha256(source.encode() + b"|")
        h.update(self._origin.numpy().astype(np.int64).tobytes())
        return h.hexdigest()

    def read(self, idx: torch.Tensor) -> torch.Tensor:
        """Images at positions ``idx`` of this split, decoded in this process: uint8 ``(b, C, H, W)``."""
        if len(idx) == 0:
            return torch.zeros((0, *self.shape), dtype=torch.uint8)
        return torch.stack([self._item(int(self.indices[int(i)])) for i in idx.to("cpu")])

    def _item(self, j: int) -> torch.Tensor:
        try:
            x = self.dataset[j][0]
        except DataFileError:
            raise
        except Exception as e:  # a user's Dataset: say which item, keep the cause
            raise DataFileError(f"reading item {j} of the data set failed: {type(e).__name__}: {e}") from e
        if tuple(x.shape) != self.shape or x.dtype != torch.uint8:
            raise DataFileError(f"item {j} of the data set is {x.dtype} {tuple(x.shape)}, but every image must be "
                                f"uint8 {self.shape} (resize them to one size)")
        return x

    def stream(self, batches: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """uint8 batches for ``batches`` (positions in this split), decoded by the workers a few batches ahead."""
        pos = [b.to("cpu") for b in batches]
        if not pos:
            return iter(())
        if self.workers == 0:
            return (self.read(b) for b in pos)
        if self._loader is None:
            self._loader = DataLoader(self.dataset, batch_sampler=self._sampler, num_workers=self.workers,
                                      collate_fn=_collate, pin_memory=self.pin, persistent_workers=True,
                                      prefetch_factor=4)
        self._sampler.batches = [self.indices[b].tolist() for b in pos]
        return iter(self._loader)

    def __getstate__(self) -> dict[str, Any]:  # a loader (and its workers) never travels to another process
        state = dict(self.__dict__)
        state["_loader"] = None
        return state
