"""The one training loop both stages run: an :class:`Objective` states the loss of a batch, the loop does the rest.

The loop owns the mechanics shared by stage 1 and stage 2: the optimiser and
its warm-up-then-cosine schedule, seeded batch order and augmentation, the
optimiser step (fp16 loss scaling, gradient averaging across ranks, clipping),
the progress bar, the divergence guard with rollback, and a snapshot after
every completed epoch that ``--resume`` continues from. An objective only says
what is trained and what its loss is (:mod:`.stage1`: patent eq. 3,
:mod:`.stage2`: eq. 4 and the recipe's guidance).
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, Protocol

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..data import ImageSet
from ..distributed import all_reduce_sum, average_gradients
from ..errors import FspladderError
from ..faults import kill_point, nan_steps
from .context import TrainContext
from .results import StageResult

__all__ = ["Objective", "OptimConfig", "fit", "DivergenceError", "StateSink", "batches", "lr_schedule",
           "lr_factor",
           "make_optimizer"]

StateSink = Callable[[dict[str, Any]], None]


class DivergenceError(FspladderError, RuntimeError):
    """Training produced non-finite losses too many steps in a row, even after rolling back."""


class OptimConfig(Protocol):
    """The optimiser settings a stage config carries (Stage1Config and Stage2Config both do)."""

    optimizer: str
    lr: float
    min_lr: float
    momentum: float
    weight_decay: float
    batch_size: int


class Objective:
    """What one stage trains and its loss of a batch. Subclasses override what they need.

    ``modules`` are saved in every snapshot (and restored on resume and rollback);
    ``parameters`` are what the optimiser updates.
    """

    stage: int = 0
    label: str = ""  # progress bar text, e.g. "stage 1 (FSP)"
    augment: bool = True
    sync_gradients: bool = False  # average gradients across ranks by hand (stage 1; stage 2's DDP does it)
    grad_clip: float | None = None

    def modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def parameters(self) -> list[torch.Tensor]:
        return [p for m in self.modules().values() for p in m.parameters() if p.requires_grad]

    def loss(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, step: int) -> torch.Tensor:
        """The scalar loss of one batch: ``x`` ``(b, C, H, W)`` prepared images, ``y`` ``(b,)`` labels, ``idx``
        their global indices in the training set, ``step`` the optimiser steps completed so far."""
        raise NotImplementedError

    def start_epoch(self) -> None:
        """Reset per-epoch sums."""

    def took_step(self, loss: torch.Tensor) -> None:
        """A finite loss was applied (accumulate what the epoch record reports)."""

    def after_step(self, step: int, total: int, loss: torch.Tensor, bad: bool, bar: tqdm) -> bool:
        """Logging after every step; return True to end the stage early (stage 1's plateau criterion)."""
        return False

    def end_epoch(self, epoch: int, step: int, lr: float) -> None:
        """Evaluate and record the finished epoch."""

    def restored(self) -> None:
        """The loop went back to a snapshot (resume or rollback): drop what was accumulated since."""

    def __enter__(self) -> "Objective":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches over one shuffled epoch; the last short batch is dropped when another exists."""
    perm = torch.randperm(n, generator=gen)
    stop = n - n % batch_size if n >= batch_size else n
    for i in range(0, stop, batch_size):
        yield perm[i : i + batch_size]


def lr_factor(step: int, total: int, warmup: int, floor: float, shape: str = "cosine",
              decay_fraction: float | None = None) -> float:
    """The learning rate at ``step`` (0-based) as a fraction of the peak; ``floor`` is ``min_lr / lr``.

    Linear warm-up for ``warmup`` steps, then ``cosine`` decay to the floor, or ``wsd`` (warm-up-stable-decay:
    the peak held, then a linear decay to the floor over the last ``decay_fraction`` of the steps after warm-up;
    Hu et al. 2024, "MiniCPM"). ``decay_fraction`` is wsd's and required by it: its default is the stage-2
    config's (``recipes.schedule_defaults``), not the engine's.
    """
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))  # progress through the post-warm-up steps, [0, 1]
    if shape == "wsd":
        if decay_fraction is None:
            raise ValueError("lr_factor: schedule wsd needs decay_fraction (the resolved stage2.decay_fraction)")
        start = 1.0 - decay_fraction
        return 1.0 if t <= start else max(floor, 1.0 - (1.0 - floor) * (t - start) / decay_fraction)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def lr_schedule(opt: torch.optim.Optimizer, total: int, warmup: int, lr: float, min_lr: float,
                shape: str = "cosine", decay_fraction: float | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """The stage's learning-rate schedule: :func:`lr_factor` of the peak ``lr`` at every step."""
    floor = min_lr / lr
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, total, warmup, floor, shape, decay_fraction))


def make_optimizer(params: list[torch.Tensor], cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=getattr(cfg, "nesterov", False) and cfg.momentum > 0)


def _cpu_copy(obj: Any) -> Any:
    """Deep copy of a (nested) state dict with every tensor cloned to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


def check_divisible(batch_size: int, ctx: TrainContext) -> None:
    if ctx.dist.enabled and batch_size % ctx.dist.world:
        from ..config import ConfigError

        raise ConfigError([f"batch_size {batch_size} is the global batch and must divide evenly over "
                           f"{ctx.dist.world} processes; pick a multiple of {ctx.dist.world}"])


def show_progress(ctx: TrainContext) -> bool:
    """Bars only on a terminal: piped into a log file they would write hundreds of carriage-return lines."""
    return ctx.progress and sys.stderr.isatty()


class _Loop:
    """Epoch mechanics: steps, snapshots, resume, divergence rollback.

    After every completed epoch the loop snapshots the objective's modules,
    optimiser, scheduler, data-order generator and results. That snapshot is
    (a) handed to ``on_epoch_end`` so the runner can write it to disk for
    ``--resume`` and (b) kept in memory as the last good state: when an epoch
    diverges (``ctx.max_bad_steps`` non-finite losses in a row, or all of
    it) the loop restores it, halves the learning rate and retries the epoch,
    at most ``ctx.max_rollbacks`` times, then stops with :class:`DivergenceError`.
    """

    def __init__(self, obj: Objective, cfg: OptimConfig, train: ImageSet, ctx: TrainContext, *, name: str,
                 seed: int, total: int, steps_per_epoch: int, warmup: int, result: StageResult,
                 on_epoch_end: StateSink | None, shape: str = "cosine", decay_fraction: float | None = None) -> None:
        self.obj, self.train, self.ctx, self.name = obj, train, ctx, name
        self.batch_size, self.total, self.steps_per_epoch = cfg.batch_size, total, steps_per_epoch
        self.result, self.on_epoch_end = result, on_epoch_end
        self.params = obj.parameters()
        self.opt = make_optimizer(self.params, cfg)
        self.scaler = ctx.scaler()  # fp16 loss scale: part of the state, so a resumed run continues with it
        self.sched = lr_schedule(self.opt, total, warmup, cfg.lr, cfg.min_lr, shape, decay_fraction)
        self.gen = torch.Generator().manual_seed(seed)
        # An epoch diverged after max_bad non-finite losses in a row, or when all of it was.
        self.max_bad = max(1, min(ctx.max_bad_steps, steps_per_epoch, total))
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimiser steps (skipped ones included)
        self.lr_scale = 1.0
        self.stopped = False
        self.poison = nan_steps(obj.stage, name)  # fault injection, tests only

    def snapshot(self) -> dict[str, Any]:
        return _cpu_copy({"stage": self.obj.stage, "epoch": self.epoch, "step": self.step, "lr_scale": self.lr_scale,
                          "stopped": self.stopped,
                          "modules": {k: m.state_dict() for k, m in self.obj.modules().items()},
                          "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                          "gen": self.gen.get_state(), "result": self.result.to_dict(),
                          "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {}})

    def restore(self, snap: dict[str, Any]) -> None:
        for k, m in self.obj.modules().items():
            m.load_state_dict(snap["modules"][k])
        self.opt.load_state_dict(snap["opt"])
        self.sched.load_state_dict(snap["sched"])
        self.gen.set_state(snap["gen"])
        if self.scaler.is_enabled() and snap.get("scaler"):
            self.scaler.load_state_dict(snap["scaler"])
        self.epoch, self.step, self.lr_scale = snap["epoch"], snap["step"], snap["lr_scale"]
        self.stopped = bool(snap.get("stopped", False))
        fresh = type(self.result).from_dict(_cpu_copy(snap["result"]))
        for f, v in vars(fresh).items():  # in place: the objective holds the same result object
            setattr(self.result, f, v)
        self.obj.restored()

    def finite(self, loss: torch.Tensor, bad: int, limit: int) -> int:
        """Consecutive non-finite losses so far (0 if this one is finite); raise at ``limit``."""
        if self.poison > 0:
            self.poison -= 1
            loss = loss * float("nan")
        not_finite = (~torch.isfinite(loss.detach())).to(torch.int32)
        if self.ctx.dist.enabled:  # every rank must take the same decision, or collectives would hang
            all_reduce_sum(not_finite, self.ctx.dist)
        if not not_finite.item():  # one host sync per step: a skipped step must be known before it is taken
            return 0
        bad += 1
        self.ctx.log({"event": "nonfinite_loss", "rung": self.name, "stage": self.obj.stage, "step": self.step,
                      "consecutive": bad})
        if bad >= limit:
            raise DivergenceError(
                f"{self.name} stage {self.obj.stage}: the loss was not finite for {bad} steps in a row. Lower the "
                f"learning rate (stage{self.obj.stage}.lr) or set stage1.grad_clip.")
        return bad

    def update(self, loss: torch.Tensor) -> None:
        """Backward; cross-rank gradient averaging and clipping where the objective asks; the update."""
        opt, scaler = self.opt, self.scaler
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.obj.sync_gradients:
            average_gradients(self.params, self.ctx.dist)
        if self.obj.grad_clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(self.params, self.obj.grad_clip)
        scaler.step(opt)
        scaler.update()

    def advance(self, skipped: bool) -> None:
        """Step the schedule; a skipped (non-finite) step advances it too, so it stays aligned with steps."""
        if not skipped:
            self.sched.step()
            return
        with warnings.catch_warnings():  # torch warns when no optimiser step came first
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            self.sched.step()

    def tick(self, bar: tqdm) -> None:
        """Tell the run's clock where this stage is; show its whole-run time left beside the stage's own bar."""
        hear = getattr(self.ctx.log, "on_step", None)  # the context's one callback protocol (context.py)
        if hear is None:
            return
        note = hear(self.name, self.obj.stage, self.step, self.total)
        if note and not bar.disable:
            bar.set_description_str(f"{self.name} {self.obj.label} | {note}", refresh=False)

    def run_epoch(self, epoch: int, bar: tqdm) -> None:
        obj, ctx, res = self.obj, self.ctx, self.result
        te = time.perf_counter()
        bar.n = self.step
        obj.start_epoch()
        bad = 0
        steps = min(self.steps_per_epoch, self.total - self.step)
        order = list(islice(batches(len(self.train), self.batch_size, self.gen), steps))  # the epoch's permutation
        mine = [ctx.local(idx) for idx in order]  # this rank's share of each global batch
        for i, (idx, x_uint8) in enumerate(zip(order, self.train.stream(mine))):
            if i == steps // 2:
                kill_point(f"stage{obj.stage}:{self.name}:{epoch}")
            # Augmentation is drawn here, batch by batch from the same generator, whichever path read the images.
            x = ctx.augment_batch(x_uint8, len(idx), obj.augment, self.gen)
            y = self.train.y[mine[i].to(self.train.y.device)].to(ctx.device)
            loss = obj.loss(x, y, idx, self.step)
            bad = self.finite(loss, bad, min(self.max_bad, steps))  # a short last epoch: all of it at most
            if bad:
                res.skipped_steps += 1
            else:
                self.update(loss)
                obj.took_step(loss)
            self.advance(skipped=bool(bad))
            self.step += 1
            bar.update(1)
            self.tick(bar)
            if obj.after_step(self.step, self.total, loss, bool(bad), bar):
                self.stopped = True
                break
        res.train_seconds += time.perf_counter() - te
        obj.end_epoch(epoch, self.step, self.sched.get_last_lr()[0])
        res.seconds += time.perf_counter() - te

    def run(self, n_epochs: int, resume: dict[str, Any] | None, label: str) -> None:
        if resume is not None:
            self.restore(resume)
            self.ctx.log({"event": "resumed", "rung": self.name, "stage": self.obj.stage,
                          "from_epoch": self.epoch, "step": self.step})
        good = self.snapshot()
        rollbacks = since_good = 0
        bar = tqdm(total=self.total, desc=f"{self.name} {label}", disable=not show_progress(self.ctx), leave=False)
        self.tick(bar)
        try:
            while self.epoch < n_epochs and not self.stopped:
                try:
                    self.run_epoch(self.epoch + 1, bar)
                except DivergenceError as e:
                    if rollbacks >= self.ctx.max_rollbacks:
                        raise DivergenceError(
                            f"{e} Rolled back {rollbacks} time(s) to the last good epoch ({good['epoch']}) with a "
                            "halved learning rate each time; giving up. The last good epoch's state and every "
                            "finished rung's checkpoint are kept.") from None
                    rollbacks += 1
                    since_good += 1
                    self.restore(good)
                    factor = 0.5**since_good  # halve again for each retry of the same epoch
                    self.lr_scale *= factor
                    self.sched.base_lrs = [b * factor for b in self.sched.base_lrs]
                    for g, b in zip(self.opt.param_groups, self.sched.base_lrs):
                        g["lr"] = b * self.sched.lr_lambdas[0](self.sched.last_epoch)
                    self.ctx.log({"event": "rollback", "rung": self.name, "stage": self.obj.stage,
                                  "to_epoch": self.epoch, "lr_scale": self.lr_scale, "rollbacks": rollbacks})
                    continue
                self.epoch += 1
                since_good = 0
                good = self.snapshot()
                if self.on_epoch_end is not None:
                    self.on_epoch_end(good)
        finally:
            bar.close()


def fit(obj: Objective, cfg: OptimConfig, train: ImageSet, ctx: TrainContext, *, name: str, seed: int,
        epochs: float, result: StageResult, warmup_epochs: float = 0.0, resume: dict[str, Any] | None = None,
        on_epoch_end: StateSink | None = None, schedule: str = "cosine", decay_fraction: float | None = None) -> None:
    """Train ``obj`` for ``epochs`` passes over ``train`` (fractions allowed: the last epoch is cut short).

    ``seed`` seeds the batch order and augmentation; ``resume`` is a snapshot
    handed to ``on_epoch_end`` earlier. ``result`` is updated in place.
    ``schedule`` and ``decay_fraction``: the learning-rate curve after warm-up (:func:`lr_factor`; stage 1
    always decays by a cosine).
    """
    check_divisible(cfg.batch_size, ctx)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total = math.ceil(epochs * steps_per_epoch)
    if total == 0:
        return
    loop = _Loop(obj, cfg, train, ctx, name=name, seed=seed, total=total, steps_per_epoch=steps_per_epoch,
                 warmup=round(warmup_epochs * steps_per_epoch), result=result, on_epoch_end=on_epoch_end,
                 shape=schedule, decay_fraction=decay_fraction)
    with obj:
        loop.run(math.ceil(total / steps_per_epoch), resume, obj.label)
