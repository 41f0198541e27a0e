"""Measuring the candidates: step costs per network, short probes within the planning budget, the choice."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..config import PlanConfig, RunConfig, RungConfig
from ..data import DataSplits
from ..engine import TrainContext, evaluate
from ..flow import FlowRecorder, flow_of, taps_of
from ..fold import fold_batchnorm
from ..growth import growth_problem
from ..ladder import LadderError, Rung
from ..losses import fsp_loss
from ..models import CifarResNet, create_model, logits_of
from ..recipes import Recipe, parse_recipe, recipe_name
from .candidates import Candidate, PlanError, candidate_chains, predict_seconds, select

__all__ = ["run_plan", "format_plan", "probe_cost"]


def _time(fn: Callable[[], None], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class _Profiler:
    """Seconds per step, measured once per network (and once per pair for stage 1), after warm-up."""

    def __init__(self, ctx: TrainContext, batch: int, repeats: int) -> None:
        self.ctx, self.batch, self.repeats = ctx, batch, repeats
        first = torch.arange(min(batch, len(ctx.data.train)))
        self.x = ctx.prepare(ctx.data.train.read(first), True, None)
        self.y = ctx.data.train.y[first].to(ctx.device)
        self.per_net: dict[str, dict[str, float]] = {}
        self.per_pair: dict[tuple[str, str], float] = {}
        self.warmed = False

    @staticmethod
    def key(r: Rung) -> str:
        return f"{r.spec.get('name')} {r.spec.get('kwargs')}"

    def net(self, r: Rung) -> dict[str, float]:
        """``s2`` (a cross-entropy step), ``fwd`` (a frozen forward, folded, under teacher_amp),
        ``eval`` (per image)."""
        k = self.key(r)
        if k in self.per_net:
            return self.per_net[k]
        ctx, x, y = self.ctx, self.x, self.y
        model = copy.deepcopy(r.model).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-9, momentum=0.9)

        def ce() -> None:
            with ctx.autocast():
                loss = F.cross_entropy(logits_of(model(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        if not self.warmed:  # the process's first training step pays for thread pools and kernels; not the net's
            ce()
            self.warmed = True
        frozen, _ = fold_batchnorm(r.model)

        @torch.no_grad()
        def fwd() -> None:
            with ctx.teacher_autocast():
                frozen(x)

        n_eval = min(len(ctx.data.val), 1000)
        val = ctx.data.val.subset(torch.arange(n_eval))
        self.per_net[k] = {"s2": _time(ce, self.repeats), "fwd": _time(fwd, self.repeats),
                           "eval": _time(lambda: evaluate(model, val, ctx), 1, warmup=1) / n_eval}
        return self.per_net[k]

    def stage1(self, prev: Rung, cur: Rung) -> float:
        """Seconds of one stage-1 step of ``cur`` against ``prev`` (frozen, folded, under teacher_amp)."""
        k = (self.key(prev), self.key(cur))
        if k in self.per_pair:
            return self.per_pair[k]
        ctx, x = self.ctx, self.x
        model = copy.deepcopy(cur.model).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-9)
        prev_fast, _ = fold_batchnorm(prev.model, taps_of(prev.pairs))
        rec_c, rec_p = FlowRecorder(model, taps_of(cur.pairs), stop_early=True), \
            FlowRecorder(prev_fast, taps_of(prev.pairs), stop_early=True)

        def s1() -> None:  # the mixed precision of train_stage1's steps, so the estimate matches them
            with torch.no_grad(), ctx.teacher_autocast():
                gp = flow_of(rec_p.run(x), prev.pairs)
            with ctx.autocast():
                gs = flow_of(rec_c.run(x), cur.pairs)
            if [g.shape for g in gs] == [g.shape for g in gp]:
                loss = fsp_loss(gs, gp)
            else:  # width growth: the projections cost little; time the student's part
                loss = sum(g.square().mean() for g in gs)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            opt.step()

        with rec_c, rec_p:
            self.per_pair[k] = _time(s1, self.repeats)
        return self.per_pair[k]


def probe_cost(costs: list[dict[str, float]], recipe: Recipe, images: int, batch: int, pc: PlanConfig,
               val_images: int, stage1_batch: int | None = None) -> float:
    """Predicted seconds of one probe of a chain whose rungs cost ``costs`` (``s1`` per stage-1 step of
    ``stage1_batch`` images, ``s2`` per step of ``batch``, ``eval`` per image)."""
    steps = max(1, images // batch)
    s1_steps = max(1, images // (stage1_batch or batch))
    e1 = pc.probe_stage1_epochs if recipe.stage1 == "fsp" else 0.0
    return predict_seconds(costs, [e1] * len(costs), [pc.probe_stage2_epochs] * len(costs), steps, val_images,
                           [s1_steps] * len(costs))


def _applies(recipe: Recipe, teacher: Rung, target: torch.nn.Module, other_classes: str | None,
             input_shape: tuple[int, ...] | None = None) -> str | None:
    if recipe.init == "grow":
        why = growth_problem(teacher.model, target, input_shape)
        if why:
            return why
    if recipe.guidance in ("kd", "kd-early") and other_classes:
        return f"soft targets need the teacher's classes: {other_classes}"
    return None


def run_plan(cfg: RunConfig, data: DataSplits, device: torch.device, teacher: Rung, log=lambda r: None,
             teacher_meta: dict[str, Any] | None = None,
             clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Profile, probe and choose a chain and a recipe for ``cfg`` (its last rung is the target).

    ``teacher_meta`` is the teacher checkpoint's record (what it was trained on); ``clock`` the time source
    the planning budget is kept with.
    """
    from ..rung import (
        chain_problems,
        init_rung,
        make_aligner,
        stage1_of_rung,
        stage2_of_rung,
        student_rung,
        teacher_knows_the_classes,
    )
    from ..session import context_for, memory_format

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
    recipes = {r: parse_recipe(r)[0] for r in pc.recipes}
    cands: list[Candidate] = []
    for name, recipe in recipes.items():
        why = _applies(recipe, teacher, probe_target, other, (data.in_chans, *data.image_size))  # type: ignore[arg-type]
        for ch in chains:
            c = Candidate(list(ch.intermediates), list(ch.params), recipe_name(recipe) or name)  # type: ignore[arg-type]
            c.note = f"skipped: {why}" if why else ""
            cands.append(c)
    mf = memory_format(cfg)

    def rung_cfgs(c: Candidate) -> list[RungConfig]:
        inter = [RungConfig(model="resnet", name=f"student{i}", kwargs={"depth": d, "width": w},
                            stage2={"epochs": pc.intermediate_stage2_epochs} if pc.intermediate_stage2_epochs else {})
                 for i, (d, w) in enumerate(c.intermediates, start=1)]
        return inter + [target_rc]

    # Cost: profile every distinct network once, and every distinct (previous, network) pair for stage 1.
    prof = _Profiler(ctx, cfg.stage2.batch_size, pc.profile_steps)
    steps_per_epoch = max(1, len(data.train) // cfg.stage2.batch_size)
    eval_images = len(data.val) + len(data.test)
    rung_costs: dict[int, list[dict[str, float]]] = {}
    for i, c in enumerate(cands):
        if c.note:
            continue
        if clock() > deadline:
            c.note = "not profiled: over the planning budget"
            continue
        recipe = recipes.get(c.recipe) or parse_recipe(c.recipe)[0]
        rcs = rung_cfgs(c)
        chain = [teacher] + [student_rung(rc, data, 0, device, mf) for rc in rcs]
        s1s = [cfg.stage_for(rc, "stage1") for rc in rcs]
        # the same checks as `fspladder run` makes of the chain and its recipe
        try:
            _, why = chain_problems(chain, [recipe] * len(rcs), s1s, (data.in_chans, *data.image_size), other)  # type: ignore[list-item]
        except LadderError as e:
            c.note = "invalid: " + "; ".join(f"ladder: {p}" for p in e.problems)
            continue
        if why:
            c.note = "skipped: " + "; ".join(why)
            continue
        costs, s1_steps = [], []
        for (prev, cur), s1c in zip(zip(chain, chain[1:]), s1s):
            net, prev_net = prof.net(cur), prof.net(prev)
            # A stage-1 step was timed at stage 2's batch size; scale it to stage 1's.
            s1 = prof.stage1(prev, cur) * s1c.batch_size / cfg.stage2.batch_size \
                if recipe.stage1 == "fsp" else 0.0  # type: ignore[union-attr]
            kd = prev_net["fwd"] if recipe.guidance in ("kd", "kd-early") else 0.0  # type: ignore[union-attr]
            costs.append({"s1": s1, "s2": net["s2"] + kd, "eval": net["eval"]})
            s1_steps.append(max(1, min(s1c.images or len(data.train), len(data.train)) // s1c.batch_size))
        rung_costs[i] = costs
        c.predicted_seconds = predict_seconds(
            costs, [s.epochs if recipe.stage1 == "fsp" else 0.0 for s in s1s],  # type: ignore[union-attr]
            [cfg.stage_for(rc, "stage2").epochs for rc in rcs], steps_per_epoch, eval_images, s1_steps)
    # Benefit: short probes on a training subset, cheapest first, each only if its estimate fits the budget left.
    n_probe = min(pc.probe_train_images, len(data.train))
    probe_data = copy.copy(data)
    probe_data.train = data.train.subset(torch.arange(n_probe))
    pctx = ctx.with_data(probe_data)
    noise: list[float] = []
    order = sorted((i for i, c in enumerate(cands) if c.predicted_seconds is not None),
                   key=lambda i: cands[i].predicted_seconds)  # type: ignore[arg-type,return-value]
    for i in order:
        c = cands[i]
        recipe = recipes.get(c.recipe) or parse_recipe(c.recipe)[0]
        seeds = [cfg.seed] + ([cfg.seed + 1] if not noise and pc.noise_seeds > 1 else [])
        one = probe_cost(rung_costs[i], recipe, n_probe, cfg.stage2.batch_size, pc, len(data.val),  # type: ignore[arg-type]
                         cfg.stage1.batch_size)
        est = one * len(seeds) * 1.2  # a margin for what the step profile does not see (set-up, Python)
        if clock() + est > deadline:
            if len(seeds) > 1 and clock() + one * 1.2 <= deadline:
                seeds, est = seeds[:1], one * 1.2
            else:
                c.note = f"not probed: its probe (~{est:.0f} s) would overrun the planning budget"
                continue
        accs = []
        t0 = clock()
        for seed in seeds:
            prev = teacher
            for k, rc in enumerate(rung_cfgs(c), start=1):
                cur = student_rung(rc, data, seed * 100 + k, device, mf)
                s1 = copy.copy(cfg.stage_for(rc, "stage1"))
                s1.epochs = pc.probe_stage1_epochs
                s2 = copy.copy(cfg.stage_for(rc, "stage2", recipe))
                s2.epochs = pc.probe_stage2_epochs
                s2.warmup_epochs = min(s2.warmup_epochs, s2.epochs)
                name = f"probe/{c.name}/{rc.name}"
                init_rung(prev, cur, recipe, seed * 100 + k, s2.growth_noise)  # type: ignore[arg-type]
                al = make_aligner(_shapes(cur, data), _shapes(prev, data), True, seed, device) \
                    if recipe.stage1 == "fsp" else None  # type: ignore[union-attr]
                stage1_of_rung(prev, cur, recipe, s1, pctx, seed=seed * 100 + k, name=name, aligner=al)  # type: ignore[arg-type]
                r2 = stage2_of_rung(prev, cur, recipe, s1, s2, pctx, seed=seed * 100 + k, name=name,  # type: ignore[arg-type]
                                    eval_test=False)
                cur.model.eval()
                prev = cur
            accs.append(r2.val_acc[-1])
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
            cheapest = min((probe_cost(rung_costs[i], recipes.get(cands[i].recipe) or parse_recipe(cands[i].recipe)[0],  # type: ignore[arg-type]
                                       n_probe, cfg.stage2.batch_size, pc, len(data.val), cfg.stage1.batch_size)
                            for i in rung_costs),
                           default=None)
            if cheapest is not None:
                error += (f" (the cheapest probe needs ~{cheapest * 1.2:.0f} s after profiling; set "
                          f"plan.planning_budget to at least {clock() - t_plan + cheapest * 1.2:.0f})")
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
        "step_costs": {"networks": prof.per_net, "stage1": {f"{a} -> {b}": v for (a, b), v in prof.per_pair.items()}},
        "planning_seconds": clock() - t_plan,
    }


def _shapes(r: Rung, data: DataSplits) -> list[tuple[int, int]]:
    from ..ladder import flow_shapes

    return flow_shapes(r, (data.in_chans, *data.image_size))


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
