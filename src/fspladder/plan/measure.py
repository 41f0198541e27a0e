"""Measuring the candidates: their predicted seconds from the whole-job estimate's profile, short probes within
the planning budget, the choice.

Each candidate is a chain plan (:func:`fspladder.chain.run_tasks` with the candidate's recipe); its cost is the
estimate's (:func:`fspladder.estimate.chain_phases`: every distinct stage profiled once through the engine, the
same profile ``fspladder run`` prints its estimate from) and its probe runs through the chain executor
(:func:`fspladder.chain.train_task`) on a training subset.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from ..chain import build_chain, probe_tasks, run_tasks, train_chain
from ..check import key_problem_words, planned_key_refusal
from ..config import PlanConfig, RunConfig, RungConfig
from ..data import DataSplits
from ..estimate import StageProfiler, chain_phases, forked_rng
from ..growth import growth_problem
from ..ladder import LadderError, Rung
from ..models import CifarResNet, create_model
from ..recipes import Recipe, parse_recipe, recipe_name
from ..rung import chain_problems, teacher_knows_the_classes
from ..session import context_for, memory_format
from .candidates import Candidate, PlanError, candidate_chains, select

__all__ = ["run_plan", "format_plan"]

PROBE_MARGIN = 1.2  # a probe's predicted seconds times this must fit the planning budget left


def _applies(recipe: Recipe, teacher: Rung, target: torch.nn.Module, other_classes: str | None,
             input_shape: tuple[int, ...] | None = None) -> str | None:
    if recipe.grows:
        why = growth_problem(teacher.model, target, input_shape)
        if why:
            return why
    if recipe.soft_targets and other_classes:
        return f"soft targets need the teacher's classes: {other_classes}"
    return None


def run_plan(cfg: RunConfig, data: DataSplits, device: torch.device, teacher: Rung,
             log: Callable[[dict[str, Any]], None] = lambda r: None,
             teacher_meta: dict[str, Any] | None = None,
             clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Profile, probe and choose a chain and a recipe for ``cfg`` (its last rung is the target).

    ``teacher_meta`` is the teacher checkpoint's record (what it was trained on); ``clock`` the time source
    the planning budget is kept with.
    """
    t_plan = clock()
    pc: PlanConfig = cfg.plan
    deadline = t_plan + pc.planning_budget
    target_rc = cfg.rungs[-1]
    tm = teacher.model
    probe_target = (create_model(target_rc.model, **{"in_chans": data.in_chans, "num_classes": data.num_classes,
                                                    **target_rc.kwargs})
                    if target_rc.model.startswith("resnet") else None)
    # Chains are (depth, width) steps of the CIFAR ResNets (resnetN): other families, the ImageNet-layout
    # resnet10i.. included, have no such grid.
    if not isinstance(tm, CifarResNet) or not isinstance(probe_target, CifarResNet):
        raise PlanError("the planner proposes chains within the built-in CIFAR ResNet family (resnet, resnetN); "
                        "list the rungs by hand for other models")
    count = lambda d, w: sum(p.numel() for p in CifarResNet(d, w, data.in_chans, data.num_classes).parameters())  # noqa: E731
    chains = candidate_chains((tm.depth, tm.width), (probe_target.depth, probe_target.width), pc.max_intermediates,
                              count)
    ctx = context_for(cfg, device, data, log)
    ctx.progress = False
    other = teacher_knows_the_classes(teacher_meta or {"meta": {}}, tm, data, cfg)
    recipes: dict[str, Recipe] = {}
    for r in pc.recipes:
        parsed, problems = parse_recipe(r)
        if parsed is None:  # the config's check refuses these first; a Python caller hears the same line
            raise PlanError("; ".join(problems))
        recipes[r] = parsed
    # A recipe that would not read a stage-2 key set here is never a candidate: the run would refuse its chain
    # after planning (e.g. stage2.decay_fraction under patent's cosine, growth_noise without growth).
    refusal = planned_key_refusal(cfg)
    if refusal:
        raise PlanError(refusal)
    unread = cfg.planned_key_problems()
    cands: list[Candidate] = []
    cand_recipe: list[Recipe] = []
    for name, recipe in recipes.items():
        why = _applies(recipe, teacher, probe_target, other, (data.in_chans, *data.image_size))
        why = why or (key_problem_words(unread[name]) if unread.get(name) else None)
        for ch in chains:
            c = Candidate(list(ch.intermediates), list(ch.params), recipe_name(recipe) or name)
            c.note = f"skipped: {why}" if why else ""
            cands.append(c)
            cand_recipe.append(recipe)
    mf = memory_format(cfg)

    def rung_cfgs(c: Candidate) -> list[RungConfig]:
        inter = [RungConfig(model="resnet", name=f"student{i}", kwargs={"depth": d, "width": w},
                            stage2={"epochs": pc.intermediate_stage2_epochs} if pc.intermediate_stage2_epochs else {})
                 for i, (d, w) in enumerate(c.intermediates, start=1)]
        return inter + [target_rc]

    # Cost: the run's estimate of each candidate's chain plan, every distinct stage profiled once for all of them.
    n_probe = min(pc.probe_train_images, len(data.train))
    probe_data = copy.copy(data)
    probe_data.train = data.train.subset(torch.arange(n_probe))
    pctx = ctx.with_data(probe_data)
    prof = StageProfiler(ctx)
    step_costs: dict[str, dict[str, float]] = {}
    shapes_of: dict[int, list[Any]] = {}
    probe_seconds: dict[int, float] = {}  # predicted seconds of one probe
    with forked_rng(device):  # the profile's runs leave the probes' and the run's random state as it was
        for i, c in enumerate(cands):
            if c.note:
                continue
            if clock() > deadline:
                c.note = "not profiled: over the planning budget"
                continue
            recipe, rcs = cand_recipe[i], rung_cfgs(c)
            tasks = run_tasks(cfg, rcs, recipe=recipe)
            chain = build_chain(teacher, tasks, data, device, mf)
            # the same checks as `fspladder run` makes of the chain and its recipe
            try:
                shapes, why = chain_problems(chain, [recipe] * len(rcs), [t.s1 for t in tasks],
                                             (data.in_chans, *data.image_size), other)
            except LadderError as e:
                c.note = "invalid: " + "; ".join(f"ladder: {p}" for p in e.problems)
                continue
            if why:
                c.note = "skipped: " + "; ".join(why)
                continue
            shapes_of[i] = shapes
            costs: dict[str, dict[str, float]] = {}
            phases = chain_phases(prof, chain, tasks, shapes, len(data.train), len(data.val), len(data.test),
                                  step_costs=costs)
            step_costs.update({f"{c.name}: {k}": v for k, v in costs.items()})
            c.predicted_seconds = sum(p.seconds for p in phases)
            ptasks = probe_tasks(cfg, rcs, recipe, cfg.seed, pc.probe_stage1_epochs, pc.probe_stage2_epochs, c.name)
            probe_seconds[i] = sum(p.seconds for p in chain_phases(
                prof, chain, ptasks, shapes, n_probe, len(data.val), 0, writes=False))
    # Benefit: short probes on a training subset, cheapest first, each only if its estimate fits the budget left.
    noise: list[float] = []
    order = sorted(probe_seconds, key=lambda i: cands[i].predicted_seconds)  # type: ignore[arg-type,return-value]
    for i in order:
        c, recipe, rcs = cands[i], cand_recipe[i], rung_cfgs(cands[i])
        seeds = [cfg.seed] + ([cfg.seed + 1] if not noise and pc.noise_seeds > 1 else [])
        one = probe_seconds[i]
        est = one * len(seeds) * PROBE_MARGIN  # for what the step profile does not see (set-up, Python)
        if clock() + est > deadline:
            if len(seeds) > 1 and clock() + one * PROBE_MARGIN <= deadline:
                seeds, est = seeds[:1], one * PROBE_MARGIN
            else:
                c.note = f"not probed: its probe (~{est:.0f} s) would overrun the planning budget"
                continue
        accs = []
        t0 = clock()
        for seed in seeds:
            tasks = probe_tasks(cfg, rcs, recipe, seed, pc.probe_stage1_epochs, pc.probe_stage2_epochs, c.name)
            done = train_chain(teacher, tasks, pctx, shapes_of[i], device, mf)
            accs.append(done[-1].stage2[-1].val_acc[-1])
        c.probe_seconds = clock() - t0
        c.probe_acc = statistics.fmean(accs)
        if len(accs) > 1:
            noise.append(abs(accs[0] - accs[1]))
    choice, why, error = None, "", None
    try:
        choice, why = select(cands, pc.time_budget, pc.target_accuracy, max(noise, default=0.0))
    except PlanError as e:
        error = str(e)
        if not any(c.probe_acc is not None for c in cands):
            cheapest = min(probe_seconds.values(), default=None)
            if cheapest is not None:
                error += (f" (the cheapest probe needs ~{cheapest * PROBE_MARGIN:.0f} s after profiling; set "
                          f"plan.planning_budget to at least {clock() - t_plan + cheapest * PROBE_MARGIN:.0f})")
    return {
        "candidates": [{"chain": c.chain_name, "recipe": c.recipe, "intermediates": c.intermediates,
                        "params": c.params, "predicted_seconds": c.predicted_seconds, "probe_val_acc": c.probe_acc,
                        "probe_seconds": c.probe_seconds, "note": c.note} for c in cands],
        "choice": None if choice is None else {"chain": choice.chain_name, "recipe": choice.recipe,
                                               "intermediates": choice.intermediates,
                                               "predicted_seconds": choice.predicted_seconds,
                                               "probe_val_acc": choice.probe_acc,
                                               "reason": f"{why}; recipe {choice.recipe}"},
        "error": error, "time_budget": pc.time_budget, "target_accuracy": pc.target_accuracy,
        "planning_budget": pc.planning_budget,
        "probe": {"train_images": n_probe, "stage1_epochs": pc.probe_stage1_epochs,
                  "stage2_epochs": pc.probe_stage2_epochs,
                  "seed_to_seed_difference": noise[0] if noise else None},
        "step_costs": step_costs,
        "planning_seconds": clock() - t_plan,
    }


def format_plan(plan: dict[str, Any]) -> str:
    rows = [("chain", "recipe", "parameters", "predicted s", "probe val acc", "note")]
    for c in plan["candidates"]:
        rows.append((c["chain"], c["recipe"], " < ".join(f"{p:,}" for p in c["params"]),
                     f"{c['predicted_seconds']:.0f}" if c["predicted_seconds"] is not None else "-",
                     f"{c['probe_val_acc']:.4f}" if c["probe_val_acc"] is not None else "-", c["note"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    p = plan["probe"]
    noise = p["seed_to_seed_difference"]
    lines.append(f"probe: {p['train_images']} training images, stage 1 {p['stage1_epochs']} epoch(s) (recipes with "
                 f"stage 1), stage 2 {p['stage2_epochs']} epoch(s); probe accuracy is a ranking signal after a short "
                 "schedule, not a forecast of final accuracy"
                 + (f"; measured seed-to-seed difference {noise:.4f}" if noise is not None else ""))
    if plan["choice"]:
        lines.append(f"choice: {plan['choice']['chain']}, recipe {plan['choice']['recipe']} - "
                     f"{plan['choice']['reason']}")
    else:
        lines.append(f"no choice: {plan['error']}")
    lines.append(f"planning took {plan['planning_seconds']:.0f} s (budget {plan['planning_budget']:.0f} s)")
    return "\n".join(lines)
