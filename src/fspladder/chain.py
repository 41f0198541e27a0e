"""The chain plan: a config turned into the stage tasks it trains, and the one executor that trains them.

``fspladder run``, every bench arm, the planner's probes and the whole-job estimate train the same thing: a
chain of rungs, each a student that learns from the network before it by its recipe (:mod:`fspladder.recipes`):
its *init* (fresh, or grown from the previous network), its *stage 1* (the FSP loss of patent eq. 3) and its
*stage 2* (cross-entropy, patent eq. 4, with the recipe's guidance). This module is the only place that turns a
config into that sequence:

* :func:`run_tasks`, :func:`arm_tasks` and :func:`probe_tasks` give an explicit list of :class:`RungTask` (which
  network, its recipe, its resolved stage-1 and stage-2 configs, its seed, the names its stages log under) for a
  run, a bench arm at its budgets and seed, and a planner candidate; :func:`task_seed` is the one seed rule;
* :func:`build_student` builds a task's network; :func:`train_task` trains one task (init, projections, stage 1,
  then stage 2 once, or once per budget from the same start), with the caller's resume state and hooks.

Runner and bench keep only their output folders and resume policies; the estimate
(:mod:`fspladder.estimate`) profiles each distinct task of a plan once through :func:`run_stage1` and
:func:`run_stage2`, the executor's own two halves, on copies of the networks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .config import RunConfig, RungConfig, Stage1Config, Stage2Config
from .data import DataSplits
from .engine import Stage1Result, Stage2Result, TrainContext, evaluate, mean_flows
from .engine.loop import StateSink
from .ladder import Rung
from .recipes import Recipe
from .rung import aligner_for, init_rung, stage1_of_rung, stage2_of_rung, student_rung

__all__ = ["RungTask", "Stage2Run", "TaskOutcome", "task_seed", "bench_seeds", "full_epochs", "budget_epochs",
           "run_tasks", "arm_tasks", "probe_tasks", "build_student", "build_chain", "train_task", "train_chain",
           "run_stage1", "run_stage2", "stage_key", "BENCH_TARGET_OFFSET", "FLOW_BATCH"]

# The bench's target is built and started with its seed + 7 (its stage 2 with the seed itself): kept from the
# first benches so that their recorded runs and new ones start alike. Every other rung k uses seed + k.
BENCH_TARGET_OFFSET = 7
SEED_STRIDE = 100  # bench seed i is cfg.seed + 100 * i (and a planner probe's base is seed * 100)
FLOW_BATCH = 256  # held-out images averaged for the FSP matrices a run saves for its report


def task_seed(base: int, index: int) -> int:
    """The seed of rung ``index`` (1 = the first student) of a chain whose base seed is ``base``: it builds the
    student's fresh weights and seeds its growth, projections and stages."""
    return base + index


def bench_seeds(cfg: RunConfig) -> list[int]:
    """The base seeds of a bench's ``bench.seeds`` repeats."""
    return [cfg.seed + SEED_STRIDE * i for i in range(cfg.bench.seeds)]


def full_epochs(cfg: RunConfig) -> int:
    """The target's stage-2 epochs: a bench's full budget."""
    return cfg.stage_for(cfg.rungs[-1], "stage2").epochs


def budget_epochs(budget: float, full: int) -> int:
    """The target's stage-2 epochs at ``budget`` (a fraction of the ``full`` epochs; at least one)."""
    return max(1, round(budget * full))


@dataclass(frozen=True)
class Stage2Run:
    """One stage 2 of a rung: the name its loop logs under, its resolved config (its epochs this run's), its seed
    and when it scores the test set (``"last"``: after the final epoch only)."""

    name: str
    cfg: Stage2Config
    seed: int
    eval_test: bool | str = True
    budget: float | None = None  # the bench's fraction of the full epochs (None: a run's one stage 2)


@dataclass(frozen=True)
class RungTask:
    """One rung of a chain as it trains: the student ``rung`` (built with ``seed``), learning from rung
    ``index - 1`` by ``recipe``; stage 1 by ``s1`` (when the recipe has one) and stage 2 once per ``stage2`` run,
    each from the same start (the state after init and stage 1)."""

    index: int
    rung: RungConfig
    name: str  # the network's name (error messages, a run's files)
    recipe: Recipe
    s1: Stage1Config
    seed: int
    stage1_name: str  # the name stage 1's loop logs under
    stage2: tuple[Stage2Run, ...]

    @property
    def growth_noise(self) -> float | None:
        """Growth's split noise: the rung's stage-2 ``growth_noise`` (the same at every budget; None: the recipes'
        default)."""
        return self.stage2[0].cfg.growth_noise if self.stage2 else None

    @property
    def s2(self) -> Stage2Config:
        """The first (a run's only) stage-2 config."""
        return self.stage2[0].cfg


def _name(rc: RungConfig) -> str:
    return getattr(rc, "name", "") or rc.model


def run_tasks(cfg: RunConfig, rungs: Sequence[RungConfig] | None = None, *,
              recipe: Recipe | None = None) -> list[RungTask]:
    """``fspladder run``'s chain: every rung of ``cfg`` (or ``rungs``, a planner candidate's) by its own recipe
    (or ``recipe`` for all), stage 2 once with the test set scored every epoch, rung k seeded ``cfg.seed + k``;
    its stages log under the rung's name."""
    out = []
    for k, rc in enumerate(cfg.rungs if rungs is None else rungs, start=1):
        seed, name = task_seed(cfg.seed, k), _name(rc)
        out.append(RungTask(k, rc, name, cfg.recipe_for(rc, recipe), cfg.stage_for(rc, "stage1"), seed, name,
                            (Stage2Run(name, cfg.stage_for(rc, "stage2", recipe), seed),)))
    return out


def arm_tasks(cfg: RunConfig, rungs: Sequence[RungConfig], recipe: Recipe, label: str, seed: int,
              budgets: Sequence[float], full: int) -> list[RungTask]:
    """A bench arm's chain for one base ``seed``: its intermediates (``rungs[:-1]``, a ladder arm's) each trained
    once, scored on validation only; then its target, whose stage 2 runs once per budget (``budget_epochs`` of
    ``full_epochs``, each a whole schedule of its own length, the test set scored after the last epoch) from one
    start. Every rung trains by the arm's ``recipe``; the loops log under ``LABEL/RUNG``, ``LABEL/target`` and
    ``LABEL/BUDGET``. ``full``: the full budget's epochs (:func:`full_epochs`)."""
    out = []
    for k, rc in enumerate(rungs[:-1], start=1):
        s, name = task_seed(seed, k), f"{label}/{rc.name}"
        out.append(RungTask(k, rc, _name(rc), recipe, cfg.stage_for(rc, "stage1"), s, name,
                            (Stage2Run(name, cfg.stage_for(rc, "stage2", recipe), s, False),)))
    trc = rungs[-1]
    whole = cfg.stage_for(trc, "stage2", recipe)
    runs = []
    for budget in budgets:
        s2 = copy.copy(whole)
        s2.epochs = budget_epochs(budget, full)
        s2.warmup_epochs = min(s2.warmup_epochs, s2.epochs)
        runs.append(Stage2Run(f"{label}/{budget}", s2, seed, "last", budget))
    out.append(RungTask(len(rungs), trc, _name(trc), recipe, cfg.stage_for(trc, "stage1"),
                        seed + BENCH_TARGET_OFFSET, f"{label}/target", tuple(runs)))
    return out


def probe_tasks(cfg: RunConfig, rungs: Sequence[RungConfig], recipe: Recipe, seed: int, stage1_epochs: float,
                stage2_epochs: int, label: str) -> list[RungTask]:
    """A planner probe of one candidate chain: every rung by ``recipe`` for ``stage1_epochs`` and
    ``stage2_epochs`` (a short schedule of its own), scored on validation only, rung k seeded
    ``seed * 100 + k``; the loops log under ``probe/LABEL/RUNG``."""
    out = []
    for k, rc in enumerate(rungs, start=1):
        s = task_seed(seed * SEED_STRIDE, k)
        s1 = copy.copy(cfg.stage_for(rc, "stage1"))
        s1.epochs = stage1_epochs
        s2 = copy.copy(cfg.stage_for(rc, "stage2", recipe))
        s2.epochs = stage2_epochs
        s2.warmup_epochs = min(s2.warmup_epochs, s2.epochs)
        name = f"probe/{label}/{rc.name}"
        out.append(RungTask(k, rc, _name(rc), recipe, s1, s, name, (Stage2Run(name, s2, s, False),)))
    return out


def build_student(task: RungTask, data: DataSplits, device: torch.device | None = None,
                  memory_format: torch.memory_format = torch.preserve_format) -> Rung:
    """The task's student, freshly initialised with its seed and sized for ``data``."""
    return student_rung(task.rung, data, task.seed, device, memory_format, name=task.name)


def build_chain(teacher: Rung, tasks: Sequence[RungTask], data: DataSplits, device: torch.device | None = None,
                memory_format: torch.memory_format = torch.preserve_format) -> list[Rung]:
    """``[teacher, student 1, ..., target]``: every task's student built at once (a run's chain)."""
    return [teacher] + [build_student(t, data, device, memory_format) for t in tasks]


def stage_key(task: RungTask, stage: int, run: int = 0) -> tuple[int, int, int]:
    """Which stage of which task: ``task``'s identity, the stage (1, 2) and the stage-2 run's index. The executor
    announces it to the context's log as the stage starts (``log.on_stage(key)``), and the estimate's phases
    carry it, so the run's clock follows the very tasks it predicted, not names."""
    return (id(task), stage, run)


def _announce(ctx: TrainContext, key: tuple[int, int, int]) -> None:
    hear = getattr(ctx.log, "on_stage", None)  # the one listener protocol (engine/context.py)
    if hear is not None:
        hear(key)


@dataclass
class TaskOutcome:
    """What training one task produced: its init's record, stage 1's result (None without one), each stage 2's
    result, and the mean FSP matrices a run saves (empty unless asked for)."""

    init: dict[str, Any]
    stage1: Stage1Result | None
    stage2: list[Stage2Result]
    flows: dict[str, Any]


Saver = Callable[[dict[str, Any], "Stage1Result | None"], StateSink]


def run_stage1(prev: Rung, cur: Rung, task: RungTask, ctx: TrainContext, shapes: tuple[Any, Any], *,
               resume: dict[str, Any] | None = None, on_epoch_end: StateSink | None = None,
               flows: dict[str, Any] | None = None, flow_batch: int | None = None) -> tuple[dict[str, Any],
                                                                                         Stage1Result | None]:
    """The recipe's init of ``cur`` from ``prev``, then its stage 1 (with projections where the FSP shapes
    ``(prev's, cur's)`` differ); returns init's record and stage 1's result (None without one).

    ``flow_batch``: also record into ``flows`` the mean FSP matrices of both networks before stage 1 (unless
    ``flows`` holds them from a resumed state) and after it, on that many held-out images."""
    recipe, seed = task.recipe, task.seed
    # deterministic (seeded); a resumed state then overwrites the weights
    init = init_rung(prev, cur, recipe, seed, task.growth_noise)
    if not recipe.has_stage1:
        return init, None
    aligner = aligner_for(recipe, task.s1, shapes[0], shapes[1], seed, ctx.device, cur.name)
    x_fixed = None
    if flow_batch is not None and flows is not None:  # on a fixed held-out batch, for the report's heatmaps
        val = ctx.data.val
        x_fixed = ctx.prepare(val.read(torch.arange(min(flow_batch, len(val)))), False, None)
        if "before" not in flows:
            flows["previous"] = mean_flows(prev.model, prev.pairs, x_fixed, batch_stats=False)
            flows["before"] = mean_flows(cur.model, cur.pairs, x_fixed, batch_stats=True, aligner=aligner)
    r1 = stage1_of_rung(prev, cur, recipe, task.s1, ctx, seed=seed, name=task.stage1_name, aligner=aligner,
                        resume=resume, on_epoch_end=on_epoch_end)
    if x_fixed is not None and flows is not None:
        flows["after"] = mean_flows(cur.model, cur.pairs, x_fixed, batch_stats=True, aligner=aligner)
    return init, r1  # the projections (aligner) served stage 1 only: dropped here


def run_stage2(prev: Rung, cur: Rung, task: RungTask, run: Stage2Run, ctx: TrainContext, *,
               resume: dict[str, Any] | None = None, on_epoch_end: StateSink | None = None,
               previous_val_acc: float | None = None) -> Stage2Result:
    """One stage-2 run of ``task``: cross-entropy with the recipe's guidance from ``prev``."""
    return stage2_of_rung(prev, cur, task.recipe, task.s1, run.cfg, ctx, seed=run.seed, name=run.name,
                          eval_test=run.eval_test, resume=resume, on_epoch_end=on_epoch_end,
                          previous_val_acc=previous_val_acc)


def train_task(prev: Rung, cur: Rung, task: RungTask, ctx: TrainContext, shapes: tuple[Any, Any], *,
               resume: dict[str, Any] | None = None, saver: Saver | None = None,
               flow_batch: int | None = None, on_flows: Callable[[dict[str, Any]], None] | None = None,
               on_stage2: Callable[[Stage2Run, Stage2Result, TaskOutcome], None] | None = None) -> TaskOutcome:
    """Train ``cur`` from ``prev`` as ``task`` says: :func:`run_stage1`, then each stage-2 run from the same start.

    ``resume``: the rung's saved state (a run's ``state.pt``): a state in stage 2 keeps stage 1's recorded
    result and continues stage 2; a state in stage 1 continues it. ``saver(flows, stage1_result)`` gives the
    stage's ``on_epoch_end`` (a run writes its resumable state there). ``flow_batch``: the mean FSP matrices of
    both networks before and after stage 1 on that many held-out images, handed to ``on_flows``. ``on_stage2``
    hears each stage-2 run as it finishes, with the outcome so far (a bench writes that budget's record then).
    """
    state = resume
    flows: dict[str, Any] = {}
    if state is not None and state["stage"] == 2:  # stage 1 had finished (or there was none)
        # the recipe's init again (seeded), which the saved weights then overwrite; stage 1 is not run again
        init = init_rung(prev, cur, task.recipe, task.seed, task.growth_noise)
        r1 = Stage1Result.from_dict(state["stage1_result"]) if state["stage1_result"] else None
        flows = state["flows"]
    else:
        if state is not None:
            flows = state["flows"]
        if task.recipe.has_stage1:
            _announce(ctx, stage_key(task, 1))
        init, r1 = run_stage1(prev, cur, task, ctx, shapes, resume=state,
                              on_epoch_end=saver(flows, None) if saver is not None else None,
                              flows=flows if flow_batch is not None else None, flow_batch=flow_batch)
        if r1 is not None and flow_batch is not None and on_flows is not None:
            on_flows(flows)
        state = None
    several = len(task.stage2) > 1
    # Several budgets share the start: the previous network's accuracy (kd-early's bar) is measured once.
    prev_val = evaluate(prev.model, ctx.data.val, ctx) if several and task.recipe.soft_targets_early else None
    start = copy.deepcopy(cur.model.state_dict()) if several else None
    outcome = TaskOutcome(init, r1, [], flows)
    for i, run in enumerate(task.stage2):
        if start is not None:
            cur.model.load_state_dict(start)
        _announce(ctx, stage_key(task, 2, i))
        r2 = run_stage2(prev, cur, task, run, ctx, resume=state,
                        on_epoch_end=saver(flows, r1) if saver is not None else None, previous_val_acc=prev_val)
        outcome.stage2.append(r2)
        if on_stage2 is not None:
            on_stage2(run, r2, outcome)
    cur.model.eval()
    return outcome


def train_chain(teacher: Rung, tasks: Sequence[RungTask], ctx: TrainContext, shapes: Sequence[Any],
                device: torch.device | None = None, memory_format: torch.memory_format = torch.preserve_format, *,
                on_stage2: Callable[[RungTask, Stage2Run, Stage2Result, list[TaskOutcome]], None] | None = None
                ) -> list[TaskOutcome]:
    """Train ``tasks`` in order from ``teacher``, each student built just before it trains (one network in
    training at a time) and learning from the one before it; ``shapes``: the chain's FSP shapes, teacher first.
    ``on_stage2(task, run, result, outcomes)`` hears each stage-2 run as it finishes, with every task's outcome
    so far (the current one last): a bench writes a budget's record from them. A run's ladder, with its resume
    and checkpoints, walks its tasks itself (runner.py) through :func:`train_task`."""
    prev, done = teacher, []
    for task in tasks:
        cur = build_student(task, ctx.data, device, memory_format)
        hook = None
        if on_stage2 is not None:
            def hook(run: Stage2Run, r2: Stage2Result, outcome: TaskOutcome, task: RungTask = task) -> None:
                on_stage2(task, run, r2, [*done, outcome])
        done.append(train_task(prev, cur, task, ctx, (shapes[task.index - 1], shapes[task.index]), on_stage2=hook))
        prev = cur
    return done

