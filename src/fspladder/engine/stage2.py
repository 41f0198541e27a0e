"""Stage 2 (patent eq. 4): the whole student trains on the task from its stage-1 (or grown) weights.

The patent's stage 2 is softmax cross-entropy alone. A recipe may add guidance
from the frozen previous network (:mod:`fspladder.recipes`):

* :class:`SoftTargets` (``kd``, ``kd-early``): ``(1 - alpha) * CE + alpha * T^2 *
  KL(prev_T || student_T)`` (Hinton et al. 2015); with ``early`` the soft
  targets are switched off for good once the student's validation accuracy
  passes the previous network's (checked after every epoch), or once
  ``until`` of the schedule's steps have run, whichever comes first
  (Weak-to-Strong KD, Li, Chai and Heide 2026);
* :class:`FlowTarget` (``joint``, not in the patent): ``CE + weight * L_FSP``
  against the previous network in every step.

With ``cfg.ema`` > 0 an exponential moving average of the weights (and
BatchNorm statistics) follows every step, starting from the stage's first
weights (for a grown network: the previous network's function); it is what
every epoch evaluates and what the stage ends with (issue 23: it keeps what a
high learning-rate peak finds while smoothing the fall from a warm start).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import Stage2Config
from ..flow import FlowRecorder, FsPair, flow_of, taps_of
from ..fold import fold_batchnorm
from ..losses import fsp_loss, soft_target_loss
from ..models import logits_of
from .context import TrainContext
from .evaluation import evaluate
from .loop import Objective, StateSink, fit
from .results import Stage2Result

__all__ = ["FlowTarget", "SoftTargets", "EarlySwitch", "TaskObjective", "train_stage2", "Guidance", "schedule_record"]

TRAIN_ACC_IMAGES = 10000  # training images the final (un-augmented) training accuracy is measured on


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


@dataclass(frozen=True)
class SoftTargets:
    """Soft targets from the frozen previous network ``prev`` (guidance ``kd``, or ``kd-early`` with ``early``).

    ``until`` (``early`` only, then required) is the fraction of the
    schedule's steps after which the soft targets stop at the latest;
    ``previous_val_acc`` is the accuracy the student must pass to stop them
    sooner (measured on the validation set at the start of stage 2 when None).
    Temperature, weight and ``until`` have no defaults here: the recipe's are
    the resolved config's ``kd_temperature``, ``kd_alpha`` and ``kd_until``
    (``recipes.schedule_defaults``, their one definition).
    """

    prev: nn.Module
    temperature: float
    alpha: float
    early: bool = False
    until: float | None = None
    previous_val_acc: float | None = None


Guidance = FlowTarget | SoftTargets


class EarlySwitch:
    """When ``kd-early`` switches the soft targets off: the first epoch end whose validation accuracy passes
    the previous network's, or the step at ``until`` of the schedule, whichever comes first.

    The decision lives in ``result.kd_off`` (``{"step", "epoch", "reason", ...}``), so a resumed run keeps it.
    """

    def __init__(self, result: Stage2Result, previous_val_acc: float, total_steps: int, until: float) -> None:
        self.result, self.previous = result, previous_val_acc
        self.until_step = max(0, round(until * total_steps))

    @property
    def on(self) -> bool:
        return self.result.kd_off is None

    def at_step(self, step: int, epoch: int) -> bool:
        """Before step ``step`` (0-based) of epoch ``epoch``: True when the switch happened here."""
        if self.on and step >= self.until_step:
            self.result.kd_off = {"step": step, "epoch": epoch, "reason": f"reached {step} steps, the kd_until "
                                  f"fraction of the schedule", "val_acc": None, "previous_val_acc": self.previous}
            return True
        return False

    def at_epoch_end(self, epoch: int, step: int, val_acc: float) -> bool:
        """After epoch ``epoch`` with ``val_acc``: True when the switch happened here."""
        if self.on and val_acc > self.previous:
            self.result.kd_off = {"step": step, "epoch": epoch, "reason": "the student's validation accuracy "
                                  "passed the previous network's", "val_acc": val_acc,
                                  "previous_val_acc": self.previous}
            return True
        return False


class TaskObjective(Objective):
    """Patent eq. 4 (cross-entropy on the labels) as a loss of one batch, with the recipe's guidance."""

    stage = 2
    label = "stage 2 (CE)"

    def __init__(self, model: nn.Module, cfg: Stage2Config, ctx: TrainContext, name: str, result: Stage2Result,
                 guidance: Guidance | None, eval_test: bool | Literal["last"], total_steps: int,
                 steps_per_epoch: int) -> None:
        self.model, self.cfg, self.ctx, self.name, self.result = model, cfg, ctx, name, result
        self.guidance, self.eval_test, self.steps_per_epoch = guidance, eval_test, steps_per_epoch
        self.net: nn.Module = model
        if ctx.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        if ctx.compile:
            self.net = torch.compile(self.net)  # type: ignore[assignment]
        self.switch: EarlySwitch | None = None
        self.ema: nn.Module | None = None
        if cfg.ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
            # torch's first update copies the model; counting the start as averaged keeps it in the average.
            self.ema.n_averaged.fill_(1)  # type: ignore[operator]
        self.recorders: list[FlowRecorder] = []
        if isinstance(guidance, FlowTarget):
            self.label = "stage 2 (CE + FSP)"
            result.fsp_weight = guidance.weight
            # The student's taps are read by hooks during its full forward; the frozen network is folded and cut.
            prev_fast, _ = fold_batchnorm(guidance.prev, taps_of(guidance.prev_pairs))
            self.rec_s = FlowRecorder(model, taps_of(guidance.student_pairs))
            self.rec_p = FlowRecorder(prev_fast, taps_of(guidance.prev_pairs), stop_early=True)
            self.recorders = [self.rec_s, self.rec_p]
        elif isinstance(guidance, SoftTargets):
            self.label = "stage 2 (CE + soft targets)"
            self.prev_fast, _ = fold_batchnorm(guidance.prev)  # eval mode, frozen, BatchNorms folded
            if guidance.early:
                if guidance.until is None:
                    raise ValueError("SoftTargets(early=True) needs until (the resolved stage2.kd_until)")
                if result.previous_val_acc is None:
                    result.previous_val_acc = (guidance.previous_val_acc if guidance.previous_val_acc is not None
                                               else evaluate(guidance.prev, ctx.data.val, ctx))
                self.switch = EarlySwitch(result, result.previous_val_acc, total_steps, guidance.until)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model} if self.ema is None else {"model": self.model, "ema": self.ema}

    def parameters(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]  # the average is not optimised

    @property
    def scored(self) -> nn.Module:
        """The network each epoch evaluates and the stage ends with: the weight average when on."""
        return self.model if self.ema is None else self.ema.module  # type: ignore[return-value]

    def __enter__(self) -> "TaskObjective":
        self.model.train()
        for r in self.recorders:
            r.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for r in self.recorders:
            r.remove()

    def _kd_on(self, step: int) -> bool:
        if self.switch is None:
            return True
        if self.switch.at_step(step, step // self.steps_per_epoch + 1):
            self._log_switch()
        return self.switch.on

    def _log_switch(self) -> None:
        self.ctx.log({"event": "kd_off", "rung": self.name, **(self.result.kd_off or {})})

    def loss(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, step: int) -> torch.Tensor:
        g = self.guidance
        with self.ctx.autocast():
            logits = logits_of(self.net(x))
            if isinstance(g, SoftTargets) and self._kd_on(step):
                with torch.no_grad(), self.ctx.teacher_autocast():
                    t_logits = logits_of(self.prev_fast(x))
                loss = soft_target_loss(logits, t_logits, y, g.temperature, g.alpha, self.cfg.label_smoothing)
            else:
                loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        if isinstance(g, FlowTarget):
            with torch.no_grad(), self.ctx.teacher_autocast():
                g_prev = flow_of(self.rec_p.run(x), g.prev_pairs)
            g_student = flow_of(self.rec_s.features, g.student_pairs)  # float32 (made outside autocast)
            self.term = fsp_loss(g_student, g_prev, g.pair_weights, g.norm)
            loss = loss + g.weight * self.term
        return loss

    def start_epoch(self) -> None:
        self.loss_sum = torch.zeros((), device=self.ctx.device)
        self.fsp_sum = torch.zeros((), device=self.ctx.device)
        self.n = 0
        self.t0 = time.perf_counter()

    def took_step(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss.detach().float()
        if self.ema is not None:
            self.ema.update_parameters(self.model)  # type: ignore[operator]
        if isinstance(self.guidance, FlowTarget):
            self.fsp_sum += self.term.detach()
        self.n += 1

    def after_step(self, step: int, total: int, loss: torch.Tensor, bad: bool, bar: tqdm) -> bool:
        if step % 50 == 0 or step == total:  # one host sync per 50 steps: the trackers' loss curve
            lv = loss.item()
            if not bar.disable:
                bar.set_postfix(loss=f"{lv:.3f}")
            self.ctx.log({"event": "stage2_step", "rung": self.name, "step": step, "loss": lv})
        return False

    def end_epoch(self, epoch: int, step: int, lr: float) -> None:
        ctx, r = self.ctx, self.result
        val_acc = evaluate(self.scored, ctx.data.val, ctx)
        last = epoch == self.cfg.epochs
        test_acc = (evaluate(self.scored, ctx.data.test, ctx)
                    if self.eval_test is True or (self.eval_test == "last" and last) else None)
        rec = {"rung": self.name, "stage": 2, "epoch": epoch, "train_loss": (self.loss_sum / max(1, self.n)).item(),
               "val_acc": val_acc, "test_acc": test_acc, "lr": lr,
               "seconds": r.seconds + time.perf_counter() - self.t0}
        if self.ema is not None:  # the raw weights too, to see what the average adds
            rec["val_acc_raw"] = evaluate(self.model, ctx.data.val, ctx)
            r.val_acc_raw.append(rec["val_acc_raw"])
        if isinstance(self.guidance, FlowTarget):
            rec["fsp_loss_train"] = (self.fsp_sum / max(1, self.n)).item()
        if self.switch is not None:
            rec["soft_targets"] = self.switch.on
        ctx.log(rec)
        r.val_acc.append(val_acc)
        r.test_acc.append(test_acc)
        r.train_loss.append(rec["train_loss"])
        r.epoch_seconds.append(rec["seconds"])
        if self.switch is not None and self.switch.at_epoch_end(epoch, step, val_acc):
            self._log_switch()


def schedule_record(cfg: Stage2Config) -> dict[str, Any]:
    """The learning-rate curve of a resolved stage-2 config as a run records it (``Stage2Result.schedule``):
    peak, floor, shape, warm-up epochs, and wsd's decay fraction (None for cosine, which does not read it)."""
    return {"lr": cfg.lr, "min_lr": cfg.min_lr, "shape": cfg.schedule, "warmup_epochs": cfg.warmup_epochs,
            "decay_fraction": cfg.decay_fraction if cfg.schedule == "wsd" else None}


def train_stage2(model: nn.Module, cfg: Stage2Config, ctx: TrainContext, name: str = "student", *, seed: int = 0,
                 guidance: Guidance | None = None, eval_test: bool | Literal["last"] = True,
                 resume: dict[str, Any] | None = None, on_epoch_end: StateSink | None = None) -> Stage2Result:
    """Stage 2: train on softmax cross-entropy (patent eq. 4), evaluating after every epoch.

    ``guidance`` adds the previous network's soft targets (:class:`SoftTargets`)
    or a weighted FSP term (:class:`FlowTarget`). ``cfg`` must be resolved (its
    recipe keys set, as ``RunConfig.stage_for`` and ``Stage2Config.resolved`` do). ``eval_test="last"``
    scores the test set only after the final epoch (earlier entries are None),
    which the bench uses to save time. Returns per-epoch validation and test
    accuracy, the final train accuracy (un-augmented, on up to 10k training
    images) and the seconds spent.
    """
    # The recipe-dependent keys have their defaults in one place (recipes.schedule_defaults): the engine
    # invents none, so a config that was not resolved from a recipe is refused rather than guessed at.
    shape, decay_fraction = cfg.schedule, cfg.decay_fraction
    if cfg.lr is None or cfg.warmup_epochs is None or shape is None or decay_fraction is None or cfg.ema is None:
        unset = [k for k in ("lr", "warmup_epochs", "schedule", "decay_fraction", "ema") if getattr(cfg, k) is None]
        raise ValueError(f"train_stage2 needs a resolved Stage2Config ({', '.join(unset)} unset): "
                         "RunConfig.stage_for(rung, 'stage2') or Stage2Config.resolved(recipe) fills them from "
                         "the recipe")
    train = ctx.data.train
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    kind = ("kd-early" if guidance.early else "kd") if isinstance(guidance, SoftTargets) else \
        "joint" if isinstance(guidance, FlowTarget) else "ce"
    # the average's decay from the start (not only once the stage kept it): a state saved mid-stage says which
    # average it runs, which a resume must continue (runner's schedule guard)
    result = Stage2Result(epochs=cfg.epochs, steps=total, guidance=kind, schedule=schedule_record(cfg),
                          ema=cfg.ema or None)
    obj = TaskObjective(model, cfg, ctx, name, result, guidance, eval_test, total, steps_per_epoch)
    fit(obj, cfg, train, ctx, name=name, seed=seed * 1000 + 2, epochs=cfg.epochs, result=result,
        warmup_epochs=cfg.warmup_epochs, resume=resume, on_epoch_end=on_epoch_end,
        schedule=shape, decay_fraction=decay_fraction)
    if obj.ema is not None:  # the stage ends with the average: the network it scored
        model.load_state_dict(obj.scored.state_dict())
        result.ema = cfg.ema
    result.train_acc = evaluate(model, train.subset(torch.arange(min(TRAIN_ACC_IMAGES, len(train)))), ctx)
    return result
