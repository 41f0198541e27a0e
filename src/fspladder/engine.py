"""Training engine: the two stages of the transfer and evaluation.

Stage 1 (patent eq. 3, [0058-0064]): the student minimises the FSP loss
against the frozen previous network. Only the layers up to the student's last
tap receive gradients: the forward pass stops there (:class:`FlowRecorder`
with ``stop_early``) and optimisers skip parameters without a gradient.

Stage 2 (patent eq. 4): the whole student trains on softmax cross-entropy from
the stage-1 weights.

Data stays on the training device as tensors; each step indexes a batch,
augments it in one batched op and normalises it (airbench-style).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .align import ChannelAligner
from .config import ConfigError, Stage1Config, Stage2Config
from .data import DataSplits, ImageSet, apply_augment, draw_augment, normalize
from .distributed import DistInfo, all_reduce_sum, average_gradients, shard
from .faults import kill_point, nan_steps
from .flow import FlowRecorder, FsPair, flow_of, taps_of
from .fold import fold_batchnorm
from .losses import fsp_loss
from .precision import autocast_for

__all__ = ["TrainContext", "DivergenceError", "FlowTarget", "train_stage1", "train_stage2", "evaluate",
           "fsp_eval_loss", "mean_flows", "count_params"]

MetricsSink = Callable[[dict[str, Any]], None]


class DivergenceError(RuntimeError):
    """Training produced non-finite losses too many steps in a row."""


@dataclass
class TrainContext:
    """What every stage needs besides its own settings."""

    device: torch.device
    data: DataSplits
    seed: int = 0
    channels_last: bool = True
    eval_batch_size: int = 1000
    progress: bool = True
    crop_pad: int = 2
    flip: bool = True
    log: MetricsSink = field(default=lambda rec: None)
    dist: DistInfo = field(default_factory=DistInfo)
    amp: str = "off"  # off | bf16 | fp16: autocast of forward passes (FSP matrices stay float32)
    # off | bf16 | fp16: autocast of the frozen previous network's forward pass when it makes training
    # targets (stage 1, its cache, stage 2's fsp_weight); held-out FSP losses use ``amp``. See precision.py.
    teacher_amp: str = "off"
    compile: bool = False  # torch.compile the student in stage 2

    def autocast(self) -> torch.autocast:
        return autocast_for(self.device, self.amp)

    def teacher_autocast(self) -> torch.autocast:
        return autocast_for(self.device, self.teacher_amp)

    def scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 (a no-op otherwise)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
    max_bad_steps: int = 20  # consecutive non-finite steps before an epoch counts as diverged
    max_rollbacks: int = 2  # diverged epochs retried from the last good one at half the learning rate
    _norm: tuple | None = field(default=None, init=False, repr=False, compare=False)  # cached mean/std tensors

    def batch(self, data: ImageSet, idx: torch.Tensor, augment: bool,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the global batch ``idx``: prepared images and labels.

        Augmentation parameters are drawn for the whole global batch, so the
        random stream (and each image's augmentation) does not depend on the
        number of ranks.
        """
        params = draw_augment(len(idx), self.crop_pad, self.flip, gen) if augment else {}
        if self.dist.enabled:
            sl = shard(len(idx), self.dist)
            idx, params = idx[sl], {k: v[sl] for k, v in params.items()}
        idx = idx.to(self.device)
        return self._finish(apply_augment(data.x[idx], params, self.crop_pad)), data.y[idx]

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
        x = normalize(x_uint8, self._norm[1], self._norm[2])
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches over one shuffled epoch; the last short batch is dropped when another exists."""
    perm = torch.randperm(n, generator=gen)
    stop = n - n % batch_size if n >= batch_size else n
    for i in range(0, stop, batch_size):
        yield perm[i : i + batch_size]


def _schedule(opt: torch.optim.Optimizer, total: int, warmup: int, lr: float, min_lr: float):
    """Linear warm-up for ``warmup`` steps, then cosine decay from ``lr`` to ``min_lr``."""
    floor = min_lr / lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _optimizer(params, cfg: Stage1Config | Stage2Config) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=getattr(cfg, "nesterov", False) and cfg.momentum > 0)


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, ctx: TrainContext) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on ``data``."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=ctx.device)
    lo, hi = 0, len(data)
    if ctx.dist.enabled:  # each rank scores a contiguous share; counts are summed
        per = -(-len(data) // ctx.dist.world)
        lo, hi = min(len(data), ctx.dist.rank * per), min(len(data), (ctx.dist.rank + 1) * per)
    for i in range(lo, hi, ctx.eval_batch_size):
        j = min(hi, i + ctx.eval_batch_size)
        with ctx.autocast():
            logits = model(ctx.prepare(data.x[i:j], False, None))
        correct += (logits.argmax(1) == data.y[i:j]).sum()
    model.train(was_training)
    return all_reduce_sum(correct, ctx.dist).item() / max(1, len(data))


class _BatchStats:
    """Run a model in train mode (batch statistics) and restore its BN running stats on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> nn.Module:
        self.saved = {k: v.clone() for k, v in self.model.state_dict().items()
                      if "running" in k or "num_batches" in k}
        self.was_training = self.model.training
        self.model.train()
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.load_state_dict(self.saved, strict=False)
        self.model.train(self.was_training)


@torch.no_grad()
def mean_flows(model: nn.Module, pairs: Sequence[FsPair], x: torch.Tensor, batch_stats: bool,
               aligner: ChannelAligner | None = None) -> list[torch.Tensor]:
    """Mean FSP matrix per pair over the batch ``x``: ``n`` tensors ``(m_i, n_i)`` on the CPU.

    ``batch_stats`` runs the model as stage 1 sees a student (train-mode
    BatchNorm, running stats left untouched); otherwise in eval mode.
    """
    taps = taps_of(pairs)
    flows = aligner.flows if aligner is not None else flow_of
    if batch_stats:
        with _BatchStats(model), FlowRecorder(model, taps, stop_early=True) as rec:
            return [g.mean(0).cpu() for g in flows(rec.run(x), pairs)]
    was_training = model.training
    model.eval()
    with FlowRecorder(model, taps, stop_early=True) as rec:
        out = [g.mean(0).cpu() for g in flows(rec.run(x), pairs)]
    model.train(was_training)
    return out


@torch.no_grad()
def fsp_eval_loss(
    student: nn.Module, student_pairs: Sequence[FsPair], prev: nn.Module, prev_pairs: Sequence[FsPair],
    data: ImageSet, ctx: TrainContext, weights: Sequence[float] | None = None, limit: int = 1000,
    aligner: ChannelAligner | None = None,
) -> float:
    """FSP loss on up to ``limit`` held-out images, the student as it trains.

    The student runs in train mode (batch statistics, as in stage 1) with its
    BatchNorm running statistics restored afterwards, so measuring changes
    nothing; the previous network runs in eval mode.
    """
    prev.eval()
    total, n = 0.0, 0
    taps_s = taps_of(student_pairs)
    taps_p = taps_of(prev_pairs)
    with _BatchStats(student), FlowRecorder(student, taps_s, stop_early=True) as rs, \
            FlowRecorder(prev, taps_p, stop_early=True) as rp:
        for i in range(0, min(limit, len(data)), 250):
            x = ctx.prepare(data.x[i : min(i + 250, limit)], False, None)
            feats = rs.run(x)
            gs = aligner.flows(feats, student_pairs) if aligner is not None else flow_of(feats, student_pairs)
            gp = flow_of(rp.run(x), prev_pairs)
            total += fsp_loss(gs, gp, weights).item() * x.shape[0]
            n += x.shape[0]
    return total / max(1, n)


StateSink = Callable[[dict[str, Any]], None]


def _cpu_copy(obj: Any) -> Any:
    """Deep copy of a (nested) state dict with every tensor cloned to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


def _check_divisible(batch_size: int, ctx: TrainContext) -> None:
    if ctx.dist.enabled and batch_size % ctx.dist.world:
        raise ValueError(f"batch_size {batch_size} is the global batch and must divide evenly over "
                         f"{ctx.dist.world} processes; pick a multiple of {ctx.dist.world}")


def _optimiser_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    params: list[torch.Tensor] | None = None, dist: DistInfo | None = None,
                    grad_clip: float | None = None) -> None:
    """Backward; then, for ``params`` (stage 1), cross-rank gradient averaging and clipping; update."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if params is not None:
        if dist is not None:
            average_gradients(params, dist)
        if grad_clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(opt)
    scaler.update()


def _advance(sched: torch.optim.lr_scheduler.LRScheduler, skipped: bool) -> None:
    """Step the schedule; a skipped (non-finite) step advances it too, so it stays aligned with steps."""
    if not skipped:
        sched.step()
        return
    with warnings.catch_warnings():  # torch warns when no optimiser step came first
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
        sched.step()


class _EpochLoop:
    """Epoch mechanics shared by both stages: snapshots, resume, divergence rollback.

    After every completed epoch the loop snapshots the model (and projections),
    optimiser, scheduler, data-order generator and results. That snapshot is
    (a) handed to ``on_epoch_end`` so the runner can write it to disk for
    ``--resume`` and (b) kept in memory as the last good state: when an epoch
    diverges (``ctx.max_bad_steps`` non-finite losses in a row) the loop
    restores it, halves the learning rate and retries the epoch, at most
    ``ctx.max_rollbacks`` times, then stops with :class:`DivergenceError`.
    """

    def __init__(self, stage: int, name: str, modules: dict[str, nn.Module], opt: torch.optim.Optimizer,
                 sched: torch.optim.lr_scheduler.LambdaLR, gen: torch.Generator, result: dict[str, Any],
                 ctx: TrainContext, on_epoch_end: StateSink | None, steps_per_epoch: int,
                 scaler: torch.amp.GradScaler | None = None) -> None:
        # An epoch diverged after max_bad_steps non-finite losses in a row, or when all of it was.
        self.max_bad = max(1, min(ctx.max_bad_steps, steps_per_epoch))
        self.stage, self.name, self.modules, self.opt, self.sched, self.gen = stage, name, modules, opt, sched, gen
        self.result, self.ctx, self.on_epoch_end = result, ctx, on_epoch_end
        self.scaler = scaler  # fp16 loss scale: part of the state, so a resumed run continues with it
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimiser steps (skipped ones included)
        self.lr_scale = 1.0
        self.poison = nan_steps(stage, name)  # fault injection, tests only

    def snapshot(self) -> dict[str, Any]:
        return _cpu_copy({"stage": self.stage, "epoch": self.epoch, "step": self.step, "lr_scale": self.lr_scale,
                          "modules": {k: m.state_dict() for k, m in self.modules.items()},
                          "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                          "gen": self.gen.get_state(), "result": self.result,
                          "scaler": self.scaler.state_dict() if self.scaler is not None and self.scaler.is_enabled()
                          else {}})

    def restore(self, snap: dict[str, Any]) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(snap["modules"][k])
        self.opt.load_state_dict(snap["opt"])
        self.sched.load_state_dict(snap["sched"])
        self.gen.set_state(snap["gen"])
        if self.scaler is not None and self.scaler.is_enabled() and snap.get("scaler"):
            self.scaler.load_state_dict(snap["scaler"])
        self.epoch, self.step, self.lr_scale = snap["epoch"], snap["step"], snap["lr_scale"]
        self.result.clear()
        self.result.update(_cpu_copy(snap["result"]))

    def run(self, n_epochs: int, run_epoch: Callable[[int], None], resume: dict[str, Any] | None) -> None:
        if resume is not None:
            self.restore(resume)
            self.ctx.log({"event": "resumed", "rung": self.name, "stage": self.stage,
                          "from_epoch": self.epoch, "step": self.step})
        good = self.snapshot()
        rollbacks = since_good = 0
        while self.epoch < n_epochs and not self.stopped:
            try:
                run_epoch(self.epoch + 1)
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
                self.ctx.log({"event": "rollback", "rung": self.name, "stage": self.stage, "to_epoch": self.epoch,
                              "lr_scale": self.lr_scale, "rollbacks": rollbacks})
                continue
            self.epoch += 1
            since_good = 0
            good = self.snapshot()
            if self.on_epoch_end is not None:
                self.on_epoch_end(good)
            if self.stopped:
                break

    @property
    def stopped(self) -> bool:
        """The stage ended early (stage 1's plateau criterion); kept in the results, so a resume sees it."""
        return self.result.get("stopped_at_step") is not None

    def finite(self, loss: torch.Tensor, bad: int) -> int:
        """Consecutive non-finite losses so far (0 if this one is finite); raise past the limit."""
        if self.poison > 0:
            self.poison -= 1
            loss = loss * float("nan")
        not_finite = (~torch.isfinite(loss.detach())).to(torch.int32)
        if self.ctx.dist.enabled:  # every rank must take the same decision, or collectives would hang
            all_reduce_sum(not_finite, self.ctx.dist)
        if not not_finite.item():  # one host sync per step: a skipped step must be known before it is taken
            return 0
        bad += 1
        self.ctx.log({"event": "nonfinite_loss", "rung": self.name, "stage": self.stage, "step": self.step,
                      "consecutive": bad})
        if bad >= self.max_bad:
            raise DivergenceError(
                f"{self.name} stage {self.stage}: the loss was not finite for {bad} steps in a row. Lower the "
                f"learning rate (stage{self.stage}.lr) or set stage1.grad_clip.")
        return bad


def train_stage1(
    student: nn.Module, student_pairs: Sequence[FsPair], prev: nn.Module, prev_pairs: Sequence[FsPair],
    cfg: Stage1Config, ctx: TrainContext, name: str = "student", aligner: ChannelAligner | None = None,
    resume: dict[str, Any] | None = None, on_epoch_end: StateSink | None = None,
) -> dict[str, Any]:
    """Stage 1: minimise the FSP loss against the frozen previous network (patent eq. 3).

    ``aligner`` (width growth) maps the student's taps to the previous
    network's channel counts; it trains with the student and is the caller's
    to discard. ``resume`` is a state handed to ``on_epoch_end`` earlier.
    Returns a record with epochs, seconds and the held-out FSP loss before and after.

    Cheaper variants (not in the patent; off by default): ``cfg.images`` trains
    on a seeded subset; ``cfg.cache_teacher`` computes the previous network's
    FSP matrices once (inputs are then fixed, so ``augment`` must be off) and
    drops its forward pass from every step; ``cfg.plateau`` ends the stage once
    a window of ``max(5, steps // 10)`` steps lowers the mean training loss by
    less than that fraction of the previous window's (``epochs`` is then the
    maximum; the cosine schedule is still planned over it).
    """
    train = ctx.data.train
    if cfg.images is not None and cfg.images < len(train):
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(ctx.seed * 1000 + 3))
        train = train.subset(pick[: cfg.images].to(train.x.device))
    _check_divisible(cfg.batch_size, ctx)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total = math.ceil(cfg.epochs * steps_per_epoch)
    n_epochs = math.ceil(total / steps_per_epoch)
    result: dict[str, Any] = {"epochs": cfg.epochs, "steps": total, "seconds": 0.0, "train_seconds": 0.0,
                              "skipped_steps": 0, "images": len(train), "history": []}
    if resume is None:
        t0 = time.perf_counter()
        result["fsp_loss_start"] = fsp_eval_loss(student, student_pairs, prev, prev_pairs, ctx.data.val, ctx,
                                                 cfg.pair_weights, aligner=aligner)
        result["seconds"] = time.perf_counter() - t0
    if total == 0:
        result["fsp_loss_end"] = result["fsp_loss_start"]
        return result
    prev.eval()
    for p in prev.parameters():
        p.requires_grad_(False)
    student.train()
    params = [p for p in student.parameters() if p.requires_grad]
    modules: dict[str, nn.Module] = {"student": student}
    if aligner is not None:
        aligner.train()
        params += list(aligner.parameters())
        modules["aligner"] = aligner
    opt = _optimizer(params, cfg)
    scaler = ctx.scaler()
    sched = _schedule(opt, total, 0, cfg.lr, cfg.min_lr)
    gen = torch.Generator().manual_seed(ctx.seed * 1000 + 1)
    loop = _EpochLoop(1, name, modules, opt, sched, gen, result, ctx, on_epoch_end,
                      min(steps_per_epoch, total), scaler)
    taps_s = taps_of(student_pairs)
    taps_p = taps_of(prev_pairs)
    log_every = max(1, total // 25)
    window = max(5, total // 10)  # plateau criterion: steps per window
    win = {"sum": torch.zeros((), device=ctx.device), "n": 0}
    cache: list[torch.Tensor] | None = None
    bar = tqdm(total=total, desc=f"{name} stage 1 (FSP)", disable=not ctx.progress, leave=False)

    def plateaued(loss: torch.Tensor) -> bool:
        win["sum"] += loss.detach()
        win["n"] += 1
        if loop.step % window:
            return False
        cur = (win["sum"] / max(1, win["n"])).item()  # one host sync per window
        win["sum"].zero_()
        win["n"] = 0
        last, result["plateau_last"] = result.get("plateau_last"), cur
        if last is None or last - cur >= cfg.plateau * last:
            return False
        result["stopped_at_step"] = loop.step
        ctx.log({"event": "stage1_plateau", "rung": name, "step": loop.step, "window_loss": cur,
                 "previous_window_loss": last, "threshold": cfg.plateau})
        return True

    def run_epoch(epoch: int) -> None:
        te = time.perf_counter()
        bar.n = loop.step
        loss_sum = torch.zeros((), device=ctx.device)
        n = bad = 0
        steps = min(steps_per_epoch, total - loop.step)
        for i, idx in enumerate(_batches(len(train), cfg.batch_size, gen)):
            if i >= steps:
                break
            if i == steps // 2:
                kill_point(f"stage1:{name}:{epoch}")
            x, _ = ctx.batch(train, idx, cfg.augment, gen)
            if cache is None:
                with torch.no_grad(), ctx.teacher_autocast():  # fsp_matrix itself runs in float32
                    g_prev = flow_of(rp.run(x), prev_pairs)  # n x (B, m_i, n_i)
            else:
                li = ctx.local(idx).to(ctx.device)
                g_prev = [c[li] for c in cache]
            with ctx.autocast():
                feats = rs.run(x)
                g_student = aligner.flows(feats, student_pairs) if aligner is not None else flow_of(feats, student_pairs)
            loss = fsp_loss(g_student, g_prev, cfg.pair_weights, cfg.loss_norm)
            bad = loop.finite(loss, bad)
            if bad:
                result["skipped_steps"] += 1
            else:
                _optimiser_step(loss, opt, scaler, params, ctx.dist, cfg.grad_clip)
                loss_sum += loss.detach()
                n += 1
            _advance(sched, skipped=bool(bad))
            loop.step += 1
            bar.update(1)
            if loop.step % log_every == 0 or loop.step == total:
                lv = loss.item()  # one host sync every log_every steps, for the report's curve
                bar.set_postfix(fsp=f"{lv:.3g}")
                ctx.log({"event": "stage1_step", "rung": name, "step": loop.step, "fsp_loss": lv,
                         "seconds": result["train_seconds"] + time.perf_counter() - te})
            if cfg.plateau is not None and not bad and plateaued(loss):
                break
        result["train_seconds"] += time.perf_counter() - te
        result["seconds"] += time.perf_counter() - te
        rec = {"rung": name, "stage": 1, "epoch": epoch, "steps": loop.step,
               "fsp_loss_train": (loss_sum / max(1, n)).item(), "lr": sched.get_last_lr()[0],
               "seconds": result["seconds"]}
        result["history"].append(rec)
        ctx.log(rec)

    # The frozen network's BatchNorms folded into its convolutions: same function, a cheaper forward.
    prev_fast, result["teacher_bn_folded"] = fold_batchnorm(prev, taps_p)
    with FlowRecorder(student, taps_s, stop_early=True) as rs, FlowRecorder(prev_fast, taps_p, stop_early=True) as rp:
        if cfg.cache_teacher:
            _check_cache_fits(rp, prev_pairs, train, ctx)
            t0 = time.perf_counter()
            cache = _flows_of_set(rp, prev_pairs, train, ctx)
            spent = time.perf_counter() - t0
            per_image = sum(c[0].numel() * c.element_size() for c in cache)
            result.update(train_seconds=result["train_seconds"] + spent, seconds=result["seconds"] + spent,
                          cache_seconds=spent, cache_bytes_per_image=per_image)
            ctx.log({"event": "teacher_cache", "rung": name, "images": len(train), "seconds": spent,
                     "bytes_per_image": per_image, "mib": per_image * len(train) / 2**20})
        loop.run(n_epochs, run_epoch, resume)
    bar.close()
    t0 = time.perf_counter()
    result["fsp_loss_end"] = fsp_eval_loss(student, student_pairs, prev, prev_pairs, ctx.data.val, ctx,
                                           cfg.pair_weights, aligner=aligner)
    result["seconds"] += time.perf_counter() - t0
    return result


def _free_bytes(device: torch.device) -> int | None:
    """Free memory where ``device``'s tensors live, in bytes; None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
        except (OSError, ValueError, IndexError):
            return None
    return None


@torch.no_grad()
def _check_cache_fits(rec: FlowRecorder, pairs: Sequence[FsPair], data: ImageSet, ctx: TrainContext) -> None:
    """Refuse ``stage1.cache_teacher`` before building a cache that would take more than half the free
    memory, with the image count that would fit (nothing is trained yet, earlier rungs are saved)."""
    free = _free_bytes(ctx.device)
    if free is None:
        return
    probe = flow_of(rec.run(ctx.prepare(data.x[:1], False, None)), pairs)  # n x (1, m_i, n_i)
    per_image = sum(g.numel() * 4 for g in probe)  # stored as float32
    need = per_image * len(data)
    if need > free // 2:
        fit = max(0, free // 2 // per_image)
        raise ConfigError([
            f"stage1.cache_teacher: the previous network's FSP matrices for {len(data)} images need "
            f"{need / 2**20:.0f} MiB ({per_image} bytes per image), more than half of the "
            f"{free / 2**20:.0f} MiB free on {ctx.device}; set stage1.images to at most {fit}, "
            "or stage1.cache_teacher: false"])


@torch.no_grad()
def _flows_of_set(rec: FlowRecorder, pairs: Sequence[FsPair], data: ImageSet, ctx: TrainContext) -> list[torch.Tensor]:
    """The previous network's FSP matrices for every image of ``data`` (un-augmented, eval mode):
    ``n`` tensors ``(N, m_i, n_i)`` float32 on the training device, ``4 * sum_i m_i * n_i`` bytes per image."""
    parts: list[list[torch.Tensor]] = []
    for i in range(0, len(data), ctx.eval_batch_size):
        x = ctx.prepare(data.x[i : i + ctx.eval_batch_size], False, None)
        with ctx.teacher_autocast():
            parts.append(flow_of(rec.run(x), pairs))
    return [torch.cat(p) for p in zip(*parts)]


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, x, y) -> loss


@dataclass(frozen=True)
class FlowTarget:
    """Joint CE + FSP in stage 2 (not in the patent, which trains stage 2 on cross-entropy alone).

    ``weight`` times the FSP loss between the student and the frozen network
    ``prev`` (the one stage 1 learned from) is added to every step's loss,
    so the student keeps the previous network's information flow while it
    learns the task. ``norm`` and ``pair_weights`` are stage 1's.
    """

    student_pairs: Sequence[FsPair]
    prev: nn.Module
    prev_pairs: Sequence[FsPair]
    weight: float
    norm: str = "patent"
    pair_weights: Sequence[float] | None = None


def train_stage2(model: nn.Module, cfg: Stage2Config, ctx: TrainContext, name: str = "student",
                 eval_test: bool | Literal["last"] = True, loss_fn: LossFn | None = None,
                 resume: dict[str, Any] | None = None, on_epoch_end: StateSink | None = None,
                 joint: FlowTarget | None = None) -> dict[str, Any]:
    """Stage 2: train on softmax cross-entropy (patent eq. 4), evaluating after every epoch.

    ``loss_fn`` replaces the cross-entropy (the bench's soft-target baseline
    uses it). ``joint`` adds a weighted FSP term against a frozen network
    (``stage2.fsp_weight``; a non-patent variant, see :class:`FlowTarget`).
    ``eval_test="last"`` scores the test set only after the final epoch
    (earlier entries are None), which the bench uses to save time. Returns
    per-epoch validation and test accuracy, the final train accuracy
    (un-augmented, on up to 10k training images) and the seconds spent.
    """
    train = ctx.data.train
    _check_divisible(cfg.batch_size, ctx)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    model.train()
    opt = _optimizer(model.parameters(), cfg)
    sched = _schedule(opt, total, round(cfg.warmup_epochs * steps_per_epoch), cfg.lr, cfg.min_lr)
    gen = torch.Generator().manual_seed(ctx.seed * 1000 + 2)
    result: dict[str, Any] = {"epochs": cfg.epochs, "val_acc": [], "test_acc": [], "train_loss": [],
                              "epoch_seconds": [], "skipped_steps": 0, "train_seconds": 0.0, "seconds": 0.0}
    scaler = ctx.scaler()
    loop = _EpochLoop(2, name, {"model": model}, opt, sched, gen, result, ctx, on_epoch_end, steps_per_epoch, scaler)
    net: nn.Module = model
    if ctx.dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if ctx.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    bar = tqdm(total=total, desc=f"{name} stage 2 (CE)", disable=not ctx.progress, leave=False)
    if joint is not None:
        result["fsp_weight"] = joint.weight
        # The student's taps are read by hooks during its full forward; the frozen network is folded and cut.
        prev_fast, _ = fold_batchnorm(joint.prev, taps_of(joint.prev_pairs))
        rec_s = FlowRecorder(model, taps_of(joint.student_pairs))
        rec_p = FlowRecorder(prev_fast, taps_of(joint.prev_pairs), stop_early=True)

    def fsp_term(x: torch.Tensor) -> torch.Tensor:  # only called when joint is set
        with torch.no_grad(), ctx.teacher_autocast():
            g_prev = flow_of(rec_p.run(x), joint.prev_pairs)
        g_student = flow_of(rec_s.features, joint.student_pairs)
        return fsp_loss(g_student, g_prev, joint.pair_weights, joint.norm)

    def run_epoch(epoch: int) -> None:
        te = time.perf_counter()
        bar.n = loop.step
        loss_sum = torch.zeros((), device=ctx.device)
        fsp_sum = torch.zeros((), device=ctx.device)
        n = bad = 0
        for i, idx in enumerate(_batches(len(train), cfg.batch_size, gen)):
            if i == steps_per_epoch // 2:
                kill_point(f"stage2:{name}:{epoch}")
            x, y = ctx.batch(train, idx, True, gen)
            with ctx.autocast():
                logits = net(x)
                if loss_fn is None:
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                else:
                    loss = loss_fn(logits, x, y)
            if joint is not None:
                term = fsp_term(x)  # float32 (FSP matrices are made outside autocast)
                loss = loss + joint.weight * term
            bad = loop.finite(loss, bad)
            if bad:
                result["skipped_steps"] += 1
            else:  # DDP averages the gradients itself in stage 2
                _optimiser_step(loss, opt, scaler)
                loss_sum += loss.detach().float()
                if joint is not None:
                    fsp_sum += term.detach()
                n += 1
            _advance(sched, skipped=bool(bad))
            loop.step += 1
            bar.update(1)
            if loop.step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", epoch=epoch)
        result["train_seconds"] += time.perf_counter() - te
        val_acc = evaluate(model, ctx.data.val, ctx)
        last = epoch == cfg.epochs
        test_acc = evaluate(model, ctx.data.test, ctx) if eval_test is True or (eval_test == "last" and last) else None
        result["seconds"] += time.perf_counter() - te
        rec = {"rung": name, "stage": 2, "epoch": epoch, "train_loss": (loss_sum / max(1, n)).item(),
               "val_acc": val_acc, "test_acc": test_acc, "lr": sched.get_last_lr()[0], "seconds": result["seconds"]}
        if joint is not None:
            rec["fsp_loss_train"] = (fsp_sum / max(1, n)).item()
        ctx.log(rec)
        result["val_acc"].append(val_acc)
        result["test_acc"].append(test_acc)
        result["train_loss"].append(rec["train_loss"])
        result["epoch_seconds"].append(result["seconds"])
        bar.set_postfix(val=f"{val_acc:.4f}", epoch=epoch)

    if joint is None:
        loop.run(cfg.epochs, run_epoch, resume)
    else:
        with rec_s, rec_p:
            loop.run(cfg.epochs, run_epoch, resume)
    bar.close()
    result["train_acc"] = evaluate(model, ctx.data.train.subset(torch.arange(min(10000, len(train)))), ctx)
    return result
