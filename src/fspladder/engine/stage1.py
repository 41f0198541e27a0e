"""Stage 1 (patent eq. 3, [0058-0064]): the student minimises the FSP loss against the frozen previous network.

    W_s = argmin_W  (1/N) sum_x sum_i lambda_i || G_i^prev(x) - G_i^student(x; W) ||_F^2

Only the layers up to the student's last tap receive gradients: its forward
pass stops there (:class:`FlowRecorder` with ``stop_early``) and the optimiser
skips parameters without a gradient. The frozen network runs with its
BatchNorms folded into its convolutions (same function, cheaper) under
``ctx.teacher_autocast()``; the FSP matrices are always float32.

Cheaper variants (not in the patent; off by default): ``cfg.images`` trains
on a seeded subset; ``cfg.cache_teacher`` computes the previous network's
FSP matrices once (inputs are then fixed, so ``augment`` must be off) and
drops its forward pass from every step; ``cfg.plateau`` ends the stage once
a window of ``max(5, steps // 10)`` steps lowers the mean training loss by
less than that fraction of the previous window's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..align import ChannelAligner
from ..config import ConfigError, Stage1Config
from ..data import ImageSet
from ..flow import FlowRecorder, FsPair, flow_of, taps_of
from ..fold import fold_batchnorm
from ..losses import fsp_loss
from ..memory import free_bytes
from .context import TrainContext
from .evaluation import fsp_eval_loss
from .loop import Objective, StateSink, fit
from .results import Stage1Result

__all__ = ["FspObjective", "train_stage1"]


class FspObjective(Objective):
    """The patent's eq. 3 as a loss of one batch, plus stage 1's logging and plateau criterion."""

    stage = 1
    label = "stage 1 (FSP)"
    sync_gradients = True

    def __init__(self, student: nn.Module, student_pairs: Sequence[FsPair], prev: nn.Module,
                 prev_pairs: Sequence[FsPair], cfg: Stage1Config, ctx: TrainContext, name: str,
                 result: Stage1Result, aligner: ChannelAligner | None = None) -> None:
        self.student, self.student_pairs, self.prev_pairs = student, list(student_pairs), list(prev_pairs)
        self.cfg, self.ctx, self.name, self.result, self.aligner = cfg, ctx, name, result, aligner
        self.augment, self.grad_clip = cfg.augment, cfg.grad_clip
        # The frozen network's BatchNorms folded into its convolutions: same function, a cheaper forward.
        self.prev_fast, result.teacher_bn_folded = fold_batchnorm(prev, taps_of(prev_pairs))
        self.rs = FlowRecorder(student, taps_of(student_pairs), stop_early=True)
        self.rp = FlowRecorder(self.prev_fast, taps_of(prev_pairs), stop_early=True)
        self.cache: list[torch.Tensor] | None = None  # n x (N, m_i, n_i): the previous network's matrices
        self.window = max(5, result.steps // 10)  # plateau criterion: steps per window
        self.win_sum = torch.zeros((), device=ctx.device)
        self.win_n = 0
        self.log_every = max(1, result.steps // 25)

    def modules(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {"student": self.student}
        if self.aligner is not None:
            mods["aligner"] = self.aligner
        return mods

    def __enter__(self) -> "FspObjective":
        self.student.train()
        if self.aligner is not None:
            self.aligner.train()
        self.rs.__enter__()
        self.rp.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rs.remove()
        self.rp.remove()

    def loss(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, step: int) -> torch.Tensor:
        if self.cache is None:
            with torch.no_grad(), self.ctx.teacher_autocast():  # fsp_matrix itself runs in float32
                g_prev = flow_of(self.rp.run(x), self.prev_pairs)  # n x (B, m_i, n_i)
        else:
            li = self.ctx.local(idx).to(self.ctx.device)
            g_prev = [c[li] for c in self.cache]
        with self.ctx.autocast():
            feats = self.rs.run(x)
            g_student = (self.aligner.flows(feats, self.student_pairs) if self.aligner is not None
                         else flow_of(feats, self.student_pairs))
        self.last_flows = ([g.detach() for g in g_student], g_prev)  # views: the per-pair losses of a logged step
        return fsp_loss(g_student, g_prev, self.cfg.pair_weights, self.cfg.loss_norm)

    def pair_losses(self) -> list[float]:
        """The last step's FSP loss of each pair (lambda_i included; they sum to the step's loss)."""
        g_student, g_prev = self.last_flows
        weights = self.cfg.pair_weights or [1.0] * len(g_student)
        return [fsp_loss([s], [p], [w], self.cfg.loss_norm).item() for s, p, w in zip(g_student, g_prev, weights)]

    def start_epoch(self) -> None:
        self.loss_sum = torch.zeros((), device=self.ctx.device)
        self.n = 0
        self.t0 = time.perf_counter()

    def took_step(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss.detach()
        self.n += 1

    def after_step(self, step: int, total: int, loss: torch.Tensor, bad: bool, bar: tqdm) -> bool:
        if step % self.log_every == 0 or step == total:
            lv = loss.item()  # one host sync every log_every steps, for the report's curve
            bar.set_postfix(fsp=f"{lv:.3g}")
            self.ctx.log({"event": "stage1_step", "rung": self.name, "step": step, "fsp_loss": lv,
                          "fsp_loss_pairs": self.pair_losses(),
                          "seconds": self.result.train_seconds + time.perf_counter() - self.t0})
        return self.cfg.plateau is not None and self._plateaued(loss, step, bad)

    def restored(self) -> None:
        self.win_sum.zero_()
        self.win_n = 0

    def _plateaued(self, loss: torch.Tensor, step: int, bad: bool) -> bool:
        if not bad:  # a skipped (non-finite) step adds nothing, but the window still ends on time
            self.win_sum += loss.detach()
            self.win_n += 1
        if step % self.window or self.win_n == 0:
            return False
        cur = (self.win_sum / max(1, self.win_n)).item()  # one host sync per window
        self.win_sum.zero_()
        self.win_n = 0
        last, self.result.plateau_last = self.result.plateau_last, cur
        if last is None or last - cur >= self.cfg.plateau * last:
            return False
        self.result.stopped_at_step = step
        self.ctx.log({"event": "stage1_plateau", "rung": self.name, "step": step, "window_loss": cur,
                      "previous_window_loss": last, "threshold": self.cfg.plateau})
        return True

    def end_epoch(self, epoch: int, step: int, lr: float) -> None:
        rec = {"rung": self.name, "stage": 1, "epoch": epoch, "steps": step,
               "fsp_loss_train": (self.loss_sum / max(1, self.n)).item(), "lr": lr,
               "seconds": self.result.seconds + time.perf_counter() - self.t0}
        self.result.history.append(rec)
        self.ctx.log(rec)

    @torch.no_grad()
    def build_cache(self, train: ImageSet) -> None:
        """The previous network's FSP matrices for every image of ``train`` (un-augmented, eval mode):
        ``n`` tensors ``(N, m_i, n_i)`` float32 on the training device, ``4 * sum_i m_i * n_i`` bytes per image.
        Refused before anything is built when it would take more than half the free memory."""
        ctx = self.ctx
        if train.streamed:
            raise ConfigError(["stage1.cache_teacher keeps the previous network's FSP matrices of every training image "
                               "in memory and needs the in-memory data path; set stage1.cache_teacher: false, or "
                               "data.stream: false"])
        with self.rp:
            _check_cache_fits(self.rp, self.prev_pairs, train, ctx)
            t0 = time.perf_counter()
            parts: list[list[torch.Tensor]] = []
            for i in range(0, len(train), ctx.eval_batch_size):
                x = ctx.prepare(train.x[i : i + ctx.eval_batch_size], False, None)
                with ctx.teacher_autocast():
                    parts.append(flow_of(self.rp.run(x), self.prev_pairs))
        self.cache = [torch.cat(p) for p in zip(*parts)]
        spent = time.perf_counter() - t0
        per_image = sum(c[0].numel() * c.element_size() for c in self.cache)
        r = self.result
        r.train_seconds += spent
        r.seconds += spent
        r.cache_seconds, r.cache_bytes_per_image = spent, per_image
        ctx.log({"event": "teacher_cache", "rung": self.name, "images": len(train), "seconds": spent,
                 "bytes_per_image": per_image, "mib": per_image * len(train) / 2**20})


@torch.no_grad()
def _check_cache_fits(rec: FlowRecorder, pairs: Sequence[FsPair], data: ImageSet, ctx: TrainContext) -> None:
    free = free_bytes(ctx.device)
    if free is None:
        return
    probe = flow_of(rec.run(ctx.prepare(data.read(torch.arange(1)), False, None)), pairs)  # n x (1, m_i, n_i)
    per_image = sum(g.numel() * 4 for g in probe)  # stored as float32
    need = per_image * len(data)
    if need > free // 2:
        fit_ = max(0, free // 2 // per_image)
        raise ConfigError([
            f"stage1.cache_teacher: the previous network's FSP matrices for {len(data)} images need "
            f"{need / 2**20:.0f} MiB ({per_image} bytes per image), more than half of the "
            f"{free / 2**20:.0f} MiB free on {ctx.device}; set stage1.images to at most {fit_}, "
            "or stage1.cache_teacher: false"])


def train_stage1(
    student: nn.Module, student_pairs: Sequence[FsPair], prev: nn.Module, prev_pairs: Sequence[FsPair],
    cfg: Stage1Config, ctx: TrainContext, name: str = "student", *, seed: int = 0,
    aligner: ChannelAligner | None = None, resume: dict[str, Any] | None = None,
    on_epoch_end: StateSink | None = None,
) -> Stage1Result:
    """Stage 1: minimise the FSP loss against the frozen previous network (patent eq. 3).

    ``aligner`` (width growth) maps the student's taps to the previous
    network's channel counts; it trains with the student and is the caller's
    to discard. ``seed`` seeds the image subset, batch order and augmentation.
    ``resume`` is a state handed to ``on_epoch_end`` earlier. Returns the
    epochs, seconds and the held-out FSP loss before and after.
    """
    train = ctx.data.train
    if cfg.images is not None and cfg.images < len(train):
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed * 1000 + 3))
        train = train.subset(pick[: cfg.images])
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    result = Stage1Result(epochs=cfg.epochs, steps=math.ceil(cfg.epochs * steps_per_epoch), images=len(train))
    if resume is None:
        t0 = time.perf_counter()
        result.fsp_loss_start = fsp_eval_loss(student, student_pairs, prev, prev_pairs, ctx.data.val, ctx,
                                              cfg.pair_weights, aligner=aligner)
        result.seconds = time.perf_counter() - t0
    if result.steps == 0:
        result.fsp_loss_end = result.fsp_loss_start
        return result
    prev.eval()
    for p in prev.parameters():
        p.requires_grad_(False)
    obj = FspObjective(student, student_pairs, prev, prev_pairs, cfg, ctx, name, result, aligner)
    if cfg.cache_teacher:
        obj.build_cache(train)
    fit(obj, cfg, train, ctx, name=name, seed=seed * 1000 + 1, epochs=cfg.epochs, result=result, resume=resume,
        on_epoch_end=on_epoch_end)
    t0 = time.perf_counter()
    result.fsp_loss_end = fsp_eval_loss(student, student_pairs, prev, prev_pairs, ctx.data.val, ctx,
                                        cfg.pair_weights, aligner=aligner)
    result.seconds += time.perf_counter() - t0
    return result
