"""What a stage returns: typed records, written into summary.json and bench.json as plain mappings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StageResult", "Stage1Result", "Stage2Result"]


@dataclass
class StageResult:
    """What both stages record. Seconds are wall clock; ``train_seconds`` leave evaluation out."""

    epochs: float  # the configured length (stage 1 allows fractions)
    steps: int  # the planned optimiser steps
    seconds: float = 0.0
    train_seconds: float = 0.0
    skipped_steps: int = 0  # non-finite losses, not applied

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StageResult":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Stage1Result(StageResult):
    """Stage 1 (patent eq. 3): the held-out FSP loss before and after, and what ran."""

    images: int = 0
    fsp_loss_start: float | None = None  # held-out FSP loss (patent eq. 2) against the previous network
    fsp_loss_end: float | None = None
    stopped_at_step: int | None = None  # the plateau criterion ended the stage there
    plateau_last: float | None = None  # the last plateau window's mean loss (resume continues from it)
    teacher_bn_folded: int = 0  # BatchNorms of the frozen network folded into its convolutions
    trained_parts: str = "all"  # "all", or "new blocks" when growth froze the copied parts
    cache_seconds: float | None = None
    cache_bytes_per_image: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch

    @property
    def steps_run(self) -> int:
        return self.stopped_at_step if self.stopped_at_step is not None else self.steps


@dataclass
class Stage2Result(StageResult):
    """Stage 2 (patent eq. 4, plus the recipe's guidance): accuracy after every epoch."""

    guidance: str = "ce"
    val_acc: list[float] = field(default_factory=list)
    test_acc: list[float | None] = field(default_factory=list)  # None where the test set was not scored
    train_loss: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)  # cumulative seconds at each epoch's end
    train_acc: float | None = None  # un-augmented, on up to 10,000 training images, after the last epoch
    fsp_weight: float | None = None  # guidance joint
    previous_val_acc: float | None = None  # guidance kd-early: the accuracy the student must pass
    kd_off: dict[str, Any] | None = None  # guidance kd-early: where the soft targets were switched off, and why
    ema: float | None = None  # the weight average's per-step decay (None: none), recorded from the stage's start
    schedule: dict[str, Any] = field(default_factory=dict)  # the learning-rate curve: peak, shape, warm-up, decay
    val_acc_raw: list[float] = field(default_factory=list)  # with ema: the raw weights' accuracy per epoch
