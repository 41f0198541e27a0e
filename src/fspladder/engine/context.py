"""What every stage needs besides its own settings: device, data, batching, precision, logging."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..data import DataSplits, ImageSet, apply_augment, draw_augment, normalize
from ..distributed import DistInfo, shard
from ..precision import autocast_for

__all__ = ["TrainContext", "MetricsSink", "count_params"]

MetricsSink = Callable[[dict[str, Any]], None]


@dataclass
class TrainContext:
    """The device, the data splits and the engine settings shared by every stage of a run.

    Seeds are not part of it: each stage takes its own (``seed=``), so one
    context serves every rung and arm of a process without being mutated.
    """

    device: torch.device
    data: DataSplits
    channels_last: bool = True
    eval_batch_size: int = 1000
    progress: bool = True
    crop_pad: int = 2
    flip: bool = True
    # Every record of the stages (epochs, events) goes to ``log``. The one callback protocol (issue 35): a sink
    # that also has ``on_step(rung name, stage, steps done, stage's steps) -> str | None`` hears every step too
    # (what it returns joins the progress bar's text), and one with ``on_stage(key)`` the start of every stage
    # the chain executor runs (fspladder.chain.stage_key); a MetricsLog passes all three to its listeners
    # (trackers, the run's clock), so one registration (``MetricsLog.listen``) serves them all.
    log: MetricsSink = field(default=lambda rec: None)
    dist: DistInfo = field(default_factory=DistInfo)
    amp: str = "off"  # off | bf16 | fp16: autocast of the trained network's forward (FSP matrices stay float32)
    # off | bf16 | fp16: autocast of the frozen previous network's forward when it makes training
    # targets (stage 1, its cache, stage 2's guidance); held-out FSP losses use ``amp``. See precision.py.
    teacher_amp: str = "off"
    compile: bool = False  # torch.compile the student in stage 2
    max_bad_steps: int = 20  # consecutive non-finite steps before an epoch counts as diverged
    max_rollbacks: int = 2  # diverged epochs retried from the last good one at half the learning rate
    _norm: tuple | None = field(default=None, init=False, repr=False, compare=False)  # cached mean/std tensors

    def __post_init__(self) -> None:
        if not isinstance(self.data, DataSplits):
            from ..data import DataFileError

            raise DataFileError(
                f"the engine's data must be DataSplits, got {type(self.data).__name__}: build them from tensors with "
                "DataSplits.from_tensors((x, y), (x_test, y_test)) or from torch Datasets with "
                "DataSplits.from_datasets(train_ds, test_ds) (README, Python API)")

    def autocast(self) -> torch.autocast:
        return autocast_for(self.device, self.amp)

    def teacher_autocast(self) -> torch.autocast:
        return autocast_for(self.device, self.teacher_amp)

    def scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 (a no-op otherwise)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")

    def augment_batch(self, x_uint8: torch.Tensor, global_n: int, augment: bool,
                      gen: torch.Generator) -> torch.Tensor:
        """This rank's share ``x_uint8`` of a global batch of ``global_n`` images, augmented and normalised.

        Augmentation parameters are drawn for the whole global batch, so the
        random stream (and each image's augmentation) does not depend on the
        number of ranks, nor on which input path read the images.
        """
        params = draw_augment(global_n, self.crop_pad, self.flip, gen) if augment else {}
        if self.dist.enabled:
            sl = shard(global_n, self.dist)
            params = {k: v[sl] for k, v in params.items()}
        return self._finish(apply_augment(x_uint8.to(self.device, non_blocking=True), params, self.crop_pad))

    def batch(self, data: ImageSet, idx: torch.Tensor, augment: bool,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the global batch ``idx``: prepared images ``(b, C, H, W)`` and labels ``(b,)``."""
        local = self.local(idx)
        return (self.augment_batch(data.read(local), len(idx), augment, gen),
                data.y[local.to(data.y.device)].to(self.device))

    def local(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's slice of the global batch ``idx`` (all of it without torchrun)."""
        return idx[shard(len(idx), self.dist)] if self.dist.enabled else idx

    def prepare(self, x_uint8: torch.Tensor, augment: bool, gen: torch.Generator | None) -> torch.Tensor:
        """uint8 batch -> augmented, normalised float batch in the right memory format."""
        if augment:
            x_uint8 = apply_augment(x_uint8, draw_augment(x_uint8.shape[0], self.crop_pad, self.flip, gen),
                                    self.crop_pad)
        return self._finish(x_uint8)

    def _finish(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """Normalise and set the memory format. The mean/std tensors are made once per device and
        data set, not in every step (on a GPU each would be a host-to-device copy)."""
        key = (self.data.mean, self.data.std, self.device)
        if self._norm is None or self._norm[0] != key:
            self._norm = (key, torch.tensor(self.data.mean, device=self.device, dtype=torch.float32),
                          torch.tensor(self.data.std, device=self.device, dtype=torch.float32))
        x = normalize(x_uint8.to(self.device, non_blocking=True), self._norm[1], self._norm[2])
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def with_data(self, data: DataSplits) -> "TrainContext":
        """The same settings over other data (the planner's probes train on a subset)."""
        import copy

        new = copy.copy(self)
        new.data = data
        new._norm = None
        return new


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
