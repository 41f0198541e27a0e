"""An honest clock: the whole job's wall time predicted before training, and the time left while it trains.

**Profile.** Every distinct stage of the job (a rung's stage 1 against the
network before it, its stage 2 with the recipe's guidance) runs for a few real
steps through the engine's own code (:func:`~fspladder.rung.stage1_of_rung`,
:func:`~fspladder.rung.stage2_of_rung`) on copies of the networks and a
training subset: the data read, augmentation, the frozen network's forward
under ``teacher_amp``, the loss, gradient clipping, the optimiser step and the
per-step checks are all in the timed step. The first ``WARMUP_STEPS`` steps
are dropped (first-call allocations, kernel selection) and the median of the
next ``TIMED_STEPS`` is the step cost. Evaluation is timed on the same path
(the stage's end-of-epoch validation and test passes and its training
accuracy), per image. The global random state is left as it was.

**Predict.** Stage 1: its steps times the step cost, plus its two held-out FSP
losses and the saved FSP matrices. Stage 2: its steps times the step cost,
plus every epoch's evaluation (validation, the test set when scored, the raw
weights too under ``ema``) and the final training accuracy. The job: the
teacher's evaluation, every rung (or every bench arm, seed and budget),
checkpoint and state writes (their serialisation timed per network).

**Clock.** While the job trains, :class:`RunClock` hears every step (through
the engine's one callback protocol: a listener of the run's metrics log hears every step and record) and every
epoch record, and puts the time left for
the whole job in the progress bar and in one line per epoch: the predicted
seconds of the work still to come, scaled by how the work done so far compared
with its prediction (shrunk towards 1 early on).

What it cannot see: ``torch.compile``'s compile time beyond the first step, a
plateau that ends stage 1 early or ``kd-early`` switching off soft targets
(the estimate assumes the whole schedule), other load on the machine.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .chain import FLOW_BATCH, RungTask, Stage2Run, build_student, run_stage1, run_stage2, stage_key
from .config import Stage2Config
from .distributed import DistInfo
from .engine import TrainContext, evaluate
from .engine.stage2 import TRAIN_ACC_IMAGES
from .ladder import Rung
from .models import logits_of

__all__ = ["ArmPlan", "Phase", "Estimate", "RunClock", "EpochLines", "StageProfiler", "format_seconds",
           "estimate_ladder", "estimate_bench", "chain_phases", "estimate_wanted", "stage1_phase", "stage2_phase",
           "forked_rng", "WARMUP_STEPS", "TIMED_STEPS"]

WARMUP_STEPS = 2  # dropped: first-call allocations and kernel choices
TIMED_STEPS = 5  # their median is the step cost
EVAL_PROBE_IMAGES = 256  # validation images the probe's evaluation passes use


def estimate_wanted() -> bool:
    """False when ``FSPLADDER_ESTIMATE=off`` (the test suite's tiny runs skip the profile's seconds)."""
    import os

    return os.environ.get("FSPLADDER_ESTIMATE", "on").lower() not in ("off", "0", "false", "no")


def format_seconds(s: float) -> str:
    """``15 min 30 s``, ``1 h 02 min``, ``42 s``, ``3.2 s``."""
    if s < 10:
        return f"{s:.1f} s"
    s = round(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass
class Phase:
    """One stage of the job as the engine runs it: the loop's name and stage, its steps and predicted seconds."""

    name: str
    stage: int
    steps: int
    epochs: int
    seconds: float  # steps, evaluation and writes of this stage together
    step_seconds: float  # one step (the profiled median)
    # Which stage of which task this is: the executor announces the same key as the stage starts
    # (fspladder.chain.stage_key), so the clock follows tasks by identity, never by their names.
    key: Any = None

    def __post_init__(self) -> None:
        if self.key is None:
            self.key = (self.name, self.stage)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "key"}


@dataclass
class Estimate:
    """The job's predicted seconds: ``before`` (measured: loading, checking, profiling) + ``fixed`` (the teacher's
    evaluation) + every phase."""

    phases: list[Phase] = field(default_factory=list)
    before: float = 0.0
    fixed: float = 0.0
    profile_seconds: float = 0.0
    step_costs: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def rest(self) -> float:
        """Predicted seconds from now (after profiling) to the end."""
        return self.fixed + sum(p.seconds for p in self.phases)

    @property
    def total(self) -> float:
        return self.before + self.rest

    def line(self) -> str:
        return (f"estimated total: {format_seconds(self.total)} on this machine (profiled in "
                f"{self.profile_seconds:.1f} s)")

    def to_dict(self) -> dict[str, Any]:
        return {"predicted_seconds": self.total, "predicted_training_seconds": self.rest,
                "seconds_before_training": self.before, "profile_seconds": self.profile_seconds,
                "phases": [p.to_dict() for p in self.phases], "step_costs": self.step_costs,
                "method": f"median of {TIMED_STEPS} engine steps after {WARMUP_STEPS} warm-up steps per stage; "
                          "evaluation timed per image"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _StepTimer:
    """A probe's metrics sink: it drops the records and times every step (the loop's ``on_step``)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.times = device, []

    def __call__(self, rec: dict[str, Any]) -> None:
        pass

    def on_step(self, name: str, stage: int, step: int, total: int) -> None:
        _sync(self.device)
        self.times.append(time.perf_counter())

    def step_cost(self) -> float:
        gaps = [b - a for a, b in zip(self.times, self.times[1:])]  # the first call is the loop's start
        timed = gaps[min(WARMUP_STEPS, len(gaps) - 1):]
        return statistics.median(timed) if timed else 0.0


def _net(r: Any) -> str:
    """What makes two networks cost the same: their architecture and taps."""
    return repr((r.spec.get("name"), r.spec.get("kwargs"), [str(p) for p in r.pairs]))


def _copy(r: Any) -> Any:
    return dataclasses.replace(r, model=copy.deepcopy(r.model))


def _save_seconds(model: torch.nn.Module) -> float:
    """Seconds to serialise ``model``'s weights (a checkpoint; a state file holds about three times that)."""
    t = time.perf_counter()
    torch.save(model.state_dict(), io.BytesIO())
    return time.perf_counter() - t


class StageProfiler:
    """Times stages of the job through the engine on copies of the networks, each distinct one once."""

    def __init__(self, ctx: TrainContext, steps: int = WARMUP_STEPS + TIMED_STEPS,
                 cache: dict[tuple, dict[str, float]] | None = None) -> None:
        self.ctx, self.steps, self.device = ctx, steps, ctx.device
        self.cache = cache if cache is not None else {}  # shared by the profilers of one job (bench arms)
        self.settings = (ctx.amp, ctx.teacher_amp, ctx.channels_last, ctx.compile)
        self.t_start = time.perf_counter()
        self.world = ctx.dist.world if ctx.dist.enabled else 1
        self.local = dataclasses.replace(ctx, dist=DistInfo(), progress=False, log=lambda rec: None)
        self.warmed = False

    def probe_steps(self, stage_steps: int) -> int:
        """Steps to profile a stage of ``stage_steps`` steps with: all of WARMUP_STEPS + TIMED_STEPS for a stage of
        70 steps or more, fewer (at least 2) for a tiny one, whose estimate matters less than its profile's cost."""
        return max(2, min(self.steps, stage_steps // 10))

    def _probe_ctx(self, batch: int, steps: int, timer: _StepTimer) -> tuple[Any, int, int]:
        """A context over a training subset of ``steps`` batches (or all there is) and a small evaluation set;
        returns it, its steps per epoch and its evaluation images."""
        data = self.ctx.data
        n_train = min(len(data.train), steps * batch)
        probe = copy.copy(data)
        probe.train = data.train.subset(torch.arange(n_train))
        n_eval = min(len(data.val), EVAL_PROBE_IMAGES)
        probe.val = probe.test = data.val.subset(torch.arange(n_eval))
        pctx = self.local.with_data(probe)
        pctx.log = timer
        return pctx, max(1, n_train // batch), n_eval

    def eval_per_image(self, model: torch.nn.Module) -> float:
        """Seconds per image of an evaluation pass of ``model`` (after one pass to warm up)."""
        key = ("eval", id(model), self.settings)
        if key not in self.cache:
            n = min(len(self.ctx.data.val), EVAL_PROBE_IMAGES)
            ev = self.ctx.data.val.subset(torch.arange(n))
            evaluate(model, ev, self.local)
            _sync(self.device)
            t = time.perf_counter()
            evaluate(model, ev, self.local)
            _sync(self.device)
            self.cache[key] = {"eval": (time.perf_counter() - t) / max(1, n)}
        return self.cache[key]["eval"]

    def stage1(self, prev: Rung, cur: Rung, task: RungTask, shapes: tuple,
               stage_steps: int = 10**9) -> dict[str, float]:
        """``step`` (seconds per stage-1 step) and ``fsp_eval`` (seconds per image of a held-out FSP loss) of
        ``task``'s stage 1, run through the executor (:func:`fspladder.chain.run_stage1`) on copies."""
        s1, recipe = task.s1, task.recipe
        # what a stage-1 step costs: the two networks, whether growth freezes the copied parts, the settings
        key = ("s1", _net(prev), _net(cur), recipe.grows, s1.batch_size, s1.cache_teacher, s1.augment,
               s1.project_channels, s1.grad_clip, s1.optimizer, self.settings)
        if key in self.cache:
            return self.cache[key]
        batch = max(1, s1.batch_size // self.world)
        timer, steps = _StepTimer(self.device), self.probe_steps(stage_steps)
        pctx, spe, n_eval = self._probe_ctx(batch, steps, timer)
        c, prev = _copy(cur), _copy(prev)  # the probe trains and freezes copies, never the job's networks
        p1 = copy.copy(s1)
        p1.batch_size, p1.images, p1.plateau = batch, None, None
        p1.epochs = steps / spe if spe >= steps else float(math.ceil(steps / spe))
        self._warm(c.model)
        run_stage1(prev, c, dataclasses.replace(task, s1=p1, stage1_name=c.name, stage2=()), pctx, shapes)
        _sync(self.device)
        end = time.perf_counter()
        self.cache[key] = {"step": timer.step_cost(), "fsp_eval": (end - timer.times[-1]) / max(1, n_eval),
                           "save": _save_seconds(c.model)}
        return self.cache[key]

    def stage2(self, prev: Rung, cur: Rung, task: RungTask, s2: Stage2Config,
               stage_steps: int = 10**9) -> dict[str, float]:
        """``step`` (seconds per stage-2 step with the recipe's guidance) and ``eval`` (seconds per image) of
        ``task``'s stage 2 by ``s2``, run through the executor (:func:`fspladder.chain.run_stage2`) on copies."""
        recipe = task.recipe
        # what a stage-2 step costs: the network, the guidance (and the previous network when it runs), settings
        key = ("s2", _net(prev) if recipe.uses_previous_in_stage2 else None, _net(cur), recipe.guidance,
               s2.batch_size, s2.optimizer, getattr(s2, "ema", None), self.settings)
        if key in self.cache:
            return self.cache[key]
        batch = max(1, s2.batch_size // self.world)
        timer, steps = _StepTimer(self.device), self.probe_steps(stage_steps)
        pctx, spe, n_eval = self._probe_ctx(batch, steps, timer)
        c, prev = _copy(cur), _copy(prev)
        p2 = copy.copy(s2)
        p2.batch_size, p2.epochs = batch, max(1, math.ceil(steps / spe))
        p2.warmup_epochs = min(p2.warmup_epochs or 0.0, p2.epochs)
        self._warm(c.model)
        r2 = run_stage2(prev, c, task, Stage2Run(c.name, p2, task.seed, True), pctx)
        _sync(self.device)
        end = time.perf_counter()
        # After the last step: the last epoch's validation and test passes (and the raw weights' under ema),
        # then the training accuracy on the probe's training images.
        images = n_eval * (3 if r2.ema else 2) + min(TRAIN_ACC_IMAGES, len(pctx.data.train))
        self.cache[key] = {"step": timer.step_cost(), "eval": (end - timer.times[-1]) / images,
                           "save": _save_seconds(c.model)}
        return self.cache[key]

    def _warm(self, model: torch.nn.Module) -> None:
        """The process's first training step pays for thread pools and allocator growth, once: not a network's."""
        if self.warmed:
            return
        self.warmed = True
        m = copy.deepcopy(model).train()
        x = self.ctx.prepare(self.ctx.data.train.read(torch.arange(min(8, len(self.ctx.data.train)))), False, None)
        logits_of(m(x)).float().sum().backward()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t_start


def stage1_phase(name: str, prof: dict[str, float], s1: Any, train_images: int, val_images: int,
                 cur_eval: float, prev_eval: float, writes: bool = True) -> Phase:
    """Stage 1 of a rung: its steps, its two held-out FSP losses (start, end), the teacher cache when on; with
    ``writes`` (a run's rungs) the FSP matrices saved for the report (three networks on FLOW_BATCH images) and
    a state file per epoch."""
    images = min(s1.images or train_images, train_images)
    spe = max(1, images // s1.batch_size)
    steps = math.ceil(s1.epochs * spe)
    epochs = math.ceil(steps / spe)
    secs = steps * prof["step"] + 2 * val_images * prof["fsp_eval"]
    if writes:
        secs += FLOW_BATCH * (cur_eval * 2 + prev_eval) + epochs * 3 * prof["save"]
    if s1.cache_teacher:
        secs += images * prev_eval
    return Phase(name, 1, steps, epochs, secs, prof["step"])


def stage2_phase(name: str, prof: dict[str, float], s2: Any, train_images: int, val_images: int, test_images: int,
                 eval_test: bool | str, prev_eval: float = 0.0, kd_early: bool = False, writes: bool = True) -> Phase:
    """Stage 2 of a rung: its steps, every epoch's evaluation, the final training accuracy; with ``writes`` (a
    run's rungs) a state file per epoch and the checkpoint."""
    spe = max(1, train_images // s2.batch_size)
    steps = s2.epochs * spe
    per_epoch = val_images * (2 if getattr(s2, "ema", None) else 1) + (test_images if eval_test is True else 0)
    images = s2.epochs * per_epoch + (test_images if eval_test == "last" else 0) + min(TRAIN_ACC_IMAGES, train_images)
    secs = steps * prof["step"] + images * prof["eval"] + ((s2.epochs * 3 + 1) * prof["save"] if writes else 0.0)
    if kd_early:
        secs += val_images * prev_eval  # the previous network's accuracy, the switch's bar
    return Phase(name, 2, steps, s2.epochs, secs, prof["step"])


class RunClock:
    """The whole job's time left, from the estimate and how the work so far compared with it.

    A :class:`~fspladder.outputs.MetricsLog` listener: ``on_stage`` hears which phase starts (the key the chain
    executor announces, :func:`fspladder.chain.stage_key`, the phase's own ``key``: tasks are followed by
    identity, not by name), ``on_step`` every step of it (it returns the progress bar's note at most once a
    second); called with a metrics record it prints one line per finished epoch with the time left.

    The stage in progress is timed by its own pace once it has run (its measured seconds over the predicted
    seconds of its steps so far): one ratio for the whole job let a stage the profile overpredicted (a stage 1
    that ran ten times faster than profiled) shrink the prediction of a stage running at its predicted pace, and
    after epoch 1 of 8 the clock said "~0.5 s left" of a stage that had seven epochs to go.
    """

    def __init__(self, est: Estimate, write: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.est, self.phases, self.clock = est, est.phases, clock
        self.write = write or _write
        self.t0 = clock()
        self.i = -1  # the phase in progress
        self.pos: int | None = None  # its steps done, as last heard
        self.done = est.fixed if not self.phases else 0.0  # predicted seconds of the work done so far
        self.pending_fixed = est.fixed  # the teacher's evaluation runs before the first phase
        self.last_note = -1e9
        self.phase_t0: float | None = None  # when the phase in progress was first heard at a step
        self.phase_pos0 = 0  # its step then
        self.heard = False  # whether the stage running now is the phase in progress (on_stage)

    def on_stage(self, key: Any) -> None:
        """The phase with ``key`` starts: what came before it (the rest of the phase in progress, its last
        evaluation, and any phase skipped) counts as done. A key the estimate has no phase for (work it did not
        predict) is heard as nothing: its steps move no phase."""
        j = next((j for j in range(self.i + 1, len(self.phases)) if self.phases[j].key == key), None)
        if j is None:
            self.heard = 0 <= self.i < len(self.phases) and self.phases[self.i].key == key
            return
        if self.i >= 0:  # the rest of the phase before (its last evaluation) and any skipped
            ph = self.phases[self.i]
            self.done += ph.seconds * (1 - (self.pos or 0) / max(1, ph.steps))
        self.done += sum(p.seconds for p in self.phases[self.i + 1 : j]) + self.pending_fixed
        self.pending_fixed = 0.0
        self.i, self.pos, self.phase_t0, self.heard = j, None, None, True

    def on_step(self, name: str, stage: int, step: int, total: int) -> str | None:
        if not self.heard:
            return None
        ph = self.phases[self.i]
        if self.pos is not None:
            self.done += ph.seconds * (step - self.pos) / max(1, ph.steps)
        self.pos = step
        now = self.clock()
        if self.phase_t0 is None:  # the phase's own pace is measured from here (a resumed stage: from its step)
            self.phase_t0, self.phase_pos0 = now, step
        if now - self.last_note < 1.0:
            return None
        self.last_note = now
        return f"whole run: {format_seconds(self.remaining())} left"

    def remaining(self) -> float:
        """Seconds left: the rest of the stage in progress at its own measured pace, and the stages after it
        predicted, times measured over predicted for the work done (each ratio shrunk to 1 early on)."""
        now = self.clock()
        later = self.pending_fixed + sum(p.seconds for p in self.phases[self.i + 1 :])
        k = 0.05 * self.est.rest + 1e-9
        overall = (now - self.t0 + k) / (self.done + k)
        if not 0 <= self.i < len(self.phases):
            return later * overall
        ph = self.phases[self.i]
        current = ph.seconds * (1 - (self.pos or 0) / max(1, ph.steps))
        pace = overall
        if self.phase_t0 is not None and self.pos is not None and self.pos > self.phase_pos0:
            predicted = ph.seconds * (self.pos - self.phase_pos0) / max(1, ph.steps)  # of its steps heard
            kp = 0.5 * ph.seconds / max(1, ph.epochs)  # half an epoch: one noisy step does not set the pace
            pace = (now - self.phase_t0 + kp) / (predicted + kp)
        return current * pace + later * overall

    def __call__(self, rec: dict[str, Any]) -> None:
        if rec.get("event") is not None or "epoch" not in rec or "stage" not in rec or "rung" not in rec:
            return
        shown = (str(rec["rung"]), int(rec["stage"]))  # for the line's "epoch k/N" only
        here = [p for p in self.phases[: self.i + 1] if (p.name, p.stage) == shown]  # the latest such phase
        epochs = here[-1].epochs if here else "?"
        elapsed = self.clock() - self.t0 + self.est.before
        self.write(f"{rec['rung']} stage {rec['stage']} epoch {rec['epoch']}/{epochs}: {_shown(rec)} | "
                   f"{format_seconds(elapsed)} so far, whole run ~{format_seconds(self.remaining())} left "
                   f"(estimated {format_seconds(self.est.total)} in all)")

    def close(self, failed: bool = False) -> None:
        pass


class EpochLines:
    """One line per finished epoch (a metrics listener: ``log=EpochLines(epochs)``) for work without a whole-run
    estimate, ``fspladder train``: its losses, validation accuracy and seconds so far, so that a log the output
    is piped into shows progress too (the progress bars are drawn on a terminal only)."""

    def __init__(self, epochs: int | float, write: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.epochs, self.write, self.clock = epochs, write or _write, clock
        self.t0 = clock()

    def __call__(self, rec: dict[str, Any]) -> None:
        if rec.get("event") is not None or "epoch" not in rec or "stage" not in rec or "rung" not in rec:
            return
        self.write(f"{rec['rung']} stage {rec['stage']} epoch {rec['epoch']}/{self.epochs:g}: {_shown(rec)} | "
                   f"{format_seconds(self.clock() - self.t0)} so far")


def _shown(rec: dict[str, Any]) -> str:
    """An epoch record's losses and validation accuracy, as the per-epoch lines show them."""
    return ", ".join(f"{k} {rec[k]:.4g}" for k in ("fsp_loss_train", "train_loss", "val_acc")
                     if isinstance(rec.get(k), float))


def _write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def _steps1(s1: Any, train_images: int) -> int:
    return math.ceil(s1.epochs * max(1, min(s1.images or train_images, train_images) // s1.batch_size))


def _steps2(s2: Any, train_images: int) -> int:
    return s2.epochs * max(1, train_images // s2.batch_size)


def forked_rng(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """The global random state as it was after profiling (the job's seeded work must not see the probes); CPU and
    CUDA generators (torch.random.fork_rng's; an MPS device's generator is not forked)."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def chain_phases(prof: StageProfiler, chain: list[Rung], tasks: list[RungTask], shapes: list[Any], n_train: int,
                 n_val: int, n_test: int, *, done: set[str] | frozenset = frozenset(),
                 stage2_only: set[str] | frozenset = frozenset(),
                 step_costs: dict[str, dict[str, float]] | None = None, writes: bool = True) -> list[Phase]:
    """The phases of training ``tasks`` (``chain[0]`` the network the first learns from) on ``n_train`` training
    images, each distinct stage profiled once by ``prof``: every rung not in ``done``; ``stage2_only``: rungs
    resumed in stage 2. ``step_costs`` collects the profiled costs by rung and stage. ``writes``: a run's state
    files, checkpoints and saved FSP matrices count (a bench writes one record per run, a probe nothing)."""
    phases: list[Phase] = []
    evals = {chain[0].name: prof.eval_per_image(chain[0].model)}
    for k, task in enumerate(tasks, start=1):
        prev, cur = chain[k - 1], chain[k]
        s1, s2 = task.s1, task.s2
        # profiled at the longest of its stage-2 runs (a bench's full budget), as many steps as that allows
        p2 = prof.stage2(prev, cur, task, s2, max(_steps2(r.cfg, n_train) for r in task.stage2))
        evals[cur.name] = p2["eval"]
        if cur.name in done:
            continue
        if task.recipe.has_stage1 and cur.name not in stage2_only:
            p1 = prof.stage1(prev, cur, task, (shapes[k - 1], shapes[k]), _steps1(s1, n_train))
            phases.append(stage1_phase(task.stage1_name, p1, s1, n_train, n_val, evals[cur.name], evals[prev.name],
                                       writes))
            phases[-1].key = stage_key(task, 1)
            if step_costs is not None:
                step_costs[f"{cur.name} stage 1"] = p1
        for i, run in enumerate(task.stage2):
            phases.append(stage2_phase(run.name, p2, run.cfg, n_train, n_val, n_test, run.eval_test,
                                       evals[prev.name], task.recipe.soft_targets_early and i == 0, writes))
            phases[-1].key = stage_key(task, 2, i)
        if step_costs is not None:
            step_costs[f"{cur.name} stage 2"] = p2
    return phases


def estimate_ladder(ctx: TrainContext, chain: list[Rung], tasks: list[RungTask], shapes: list[Any], before: float, *,
                    done: set[str] | frozenset = frozenset(), stage2_only: set[str] | frozenset = frozenset(),
                    teacher_eval: bool = True) -> Estimate:
    """The predicted seconds of ``fspladder run``'s training: ``chain[0]`` the teacher, then every task's rung not
    in ``done`` (finished before a resume); ``stage2_only``: rungs resumed in stage 2. ``before``: seconds spent."""
    data, est = ctx.data, Estimate(before=before)
    with forked_rng(ctx.device):
        prof = StageProfiler(ctx)
        if teacher_eval:
            est.fixed = prof.eval_per_image(chain[0].model) * (len(data.val) + len(data.test))
        est.phases = chain_phases(prof, chain, tasks, shapes, len(data.train), len(data.val), len(data.test),
                                  done=done, stage2_only=stage2_only, step_costs=est.step_costs)
        est.profile_seconds = prof.seconds
    est.before += est.profile_seconds
    return est


@dataclass
class ArmPlan:
    """One bench arm's work still to do for one seed, as the bench runs it: its engine context, its chain's FSP
    shapes (teacher first) and its tasks (:func:`fspladder.chain.arm_tasks`; the target's stage 2 at every budget
    not yet done)."""

    ctx: TrainContext
    shapes: list[Any]
    tasks: list[RungTask]


def estimate_bench(teacher: Rung, plans: list[ArmPlan], before: float, *, teacher_eval: bool = True,
                   memory_format: torch.memory_format = torch.preserve_format) -> Estimate:
    """The predicted seconds of ``fspladder bench``: the teacher's evaluation, then every arm's tasks for every
    seed, in the order the bench runs them (each distinct stage profiled once), named as the bench's loops name
    them."""
    est = Estimate(before=before)
    cache: dict[tuple, dict[str, float]] = {}
    if not plans:
        return est
    ctx0 = plans[0].ctx
    data = ctx0.data
    n_train, n_val, n_test = len(data.train), len(data.val), len(data.test)
    with forked_rng(ctx0.device):
        profs: dict[int, StageProfiler] = {}
        t0 = time.perf_counter()
        t_eval = StageProfiler(ctx0, cache=cache).eval_per_image(teacher.model)
        if teacher_eval:
            est.fixed = t_eval * (n_val + n_test)
        nets: dict[str, Any] = {}
        for plan in plans:
            prof = profs.setdefault(id(plan.ctx), StageProfiler(plan.ctx, cache=cache))
            chain = [teacher]
            for task in plan.tasks:  # one network per architecture, built once: the profile copies it
                nets.setdefault(_key_of(task.rung), build_student(task, data, ctx0.device, memory_format))
                chain.append(nets[_key_of(task.rung)])
            est.phases += chain_phases(prof, chain, plan.tasks, plan.shapes, n_train, n_val, n_test, writes=False)
        est.step_costs = {" | ".join(map(str, k[:3])): v for k, v in cache.items() if k[0] != "eval"}
        est.profile_seconds = time.perf_counter() - t0
    est.before += est.profile_seconds
    return est


def _key_of(rc: Any) -> str:
    return repr((rc.model, rc.kwargs, rc.pairs))
