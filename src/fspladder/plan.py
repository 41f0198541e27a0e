"""``fspladder plan``: how many intermediates, and which, from measurements (patent claims 8, 17; [0121]).

The patent leaves the number of intermediate networks to the target's
training time, its accuracy, or both. The planner makes that decision from
numbers measured on the user's own device and data:

1. **Candidates.** Chains between the teacher and the target within the
   built-in ResNet family: 0, 1, 2, ... intermediate depths (and widths, when
   the target is wider), evenly spaced, each strictly larger than the one
   before it (claim 3).
2. **Cost.** A few real stage-1 and stage-2 steps of every candidate network
   (and an evaluation pass) are timed; a chain's pipeline seconds for the
   configured schedule are predicted from them.
3. **Benefit.** Each chain runs a short probe (a training subset, a short
   stage 1 and stage 2) and its target's validation accuracy is measured. The
   probe is repeated with a second seed for one chain to measure its noise.
4. **Decision.** With a time budget: the best probe accuracy among chains
   predicted to fit. With a target accuracy: the cheapest chain whose probe
   reaches it. With both: the cheapest that reaches it within the budget, or a
   :class:`PlanError` that says what would.

Probe accuracy is measured after a short schedule, so it is a *ranking*
signal and a lower bound on what the full schedule reaches, not a forecast of
final accuracy; the table says so.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import PlanConfig, RunConfig, RungConfig
from .engine import TrainContext, evaluate, train_stage1, train_stage2
from .flow import FlowRecorder, flow_of, taps_of
from .ladder import Rung, validate_ladder
from .losses import fsp_loss
from .models import CifarResNet, create_model

__all__ = ["PlanError", "Candidate", "candidate_chains", "predict_seconds", "select", "run_plan", "format_plan"]


class PlanError(ValueError):
    """No candidate chain satisfies the budget and/or the accuracy target."""


@dataclass
class Candidate:
    """One chain: intermediate ``(depth, width)`` pairs between the teacher and the target."""

    intermediates: list[tuple[int, int]]
    params: list[int] = field(default_factory=list)  # teacher, intermediates..., target
    predicted_seconds: float | None = None
    probe_acc: float | None = None
    probe_seconds: float | None = None
    note: str = ""

    @property
    def name(self) -> str:
        inner = [f"{d}" + (f"x{w}" if w != 1 else "") for d, w in self.intermediates]
        return " -> ".join(["T", *inner, "target"]) if inner else "T -> target (direct)"


def _depths_between(lo: int, hi: int) -> list[int]:
    return [d for d in range(lo + 6, hi, 6)]


def _spaced(options: list[Any], k: int) -> list[Any]:
    """``k`` items of ``options`` spread evenly (the middle one for k=1)."""
    if k >= len(options):
        return list(options)
    return [options[round((i + 1) * (len(options) + 1) / (k + 1)) - 1] for i in range(k)]


def candidate_chains(teacher: tuple[int, int], target: tuple[int, int], max_intermediates: int = 2,
                     param_count=None) -> list[Candidate]:
    """Chains from ``teacher`` ``(depth, width)`` to ``target``, with 0..``max_intermediates`` rungs.

    Depth grows through the 6n+2 depths strictly between the two; width, when
    the target is wider, grows linearly along the chain. Candidates whose
    parameter counts would not strictly increase are dropped, so every
    returned chain obeys teacher < intermediates < target.
    """
    (dt, wt), (dT, wT) = teacher, target
    count = param_count or (lambda d, w: sum(p.numel() for p in CifarResNet(d, w).parameters()))
    depths = _depths_between(dt, dT) if dT > dt else []
    chains: list[Candidate] = []
    seen: set[tuple[tuple[int, int], ...]] = set()
    for k in range(0, max_intermediates + 1):
        if k == 0:
            inter: list[tuple[int, int]] = []
        elif depths:
            ds = _spaced(depths, k)
            if len(ds) < k:
                continue
            ws = [max(wt, round(wt + (wT - wt) * (i + 1) / (k + 1))) for i in range(k)]
            inter = list(zip(ds, ws))
        elif wT > wt + 1:  # same depth, growing width
            ws = _spaced(list(range(wt + 1, wT)), k)
            if len(ws) < k:
                continue
            inter = [(dT, w) for w in ws]
        else:
            continue
        key = tuple(inter)
        if key in seen:
            continue
        seen.add(key)
        sizes = [count(dt, wt)] + [count(d, w) for d, w in inter] + [count(dT, wT)]
        if all(a < b for a, b in zip(sizes, sizes[1:])):
            chains.append(Candidate(inter, sizes))
    return chains


def predict_seconds(rung_costs: list[dict[str, float]], stage1_epochs: list[float], stage2_epochs: list[int],
                    steps_per_epoch: int, eval_images: int) -> float:
    """Pipeline seconds of a chain: every rung's stage-1 and stage-2 steps plus its per-epoch evaluation.

    ``rung_costs[i]`` holds ``s1`` and ``s2`` (seconds per step) and ``eval`` (seconds per image).
    """
    total = 0.0
    for c, e1, e2 in zip(rung_costs, stage1_epochs, stage2_epochs):
        total += math.ceil(e1 * steps_per_epoch) * c["s1"] + e2 * steps_per_epoch * c["s2"]
        total += e2 * eval_images * c["eval"]
    return total


def select(cands: list[Candidate], time_budget: float | None, target_accuracy: float | None) -> tuple[Candidate, str]:
    """The chosen chain and why; :class:`PlanError` when none fits, naming what would."""
    probed = [c for c in cands if c.probe_acc is not None and c.predicted_seconds is not None]
    if not probed:
        raise PlanError("no candidate chain was probed; raise plan.planning_budget")
    by_cost = sorted(probed, key=lambda c: c.predicted_seconds)  # type: ignore[arg-type,return-value]
    fits = [c for c in by_cost if time_budget is None or c.predicted_seconds <= time_budget]  # type: ignore[operator]
    reach = [c for c in by_cost if target_accuracy is None or c.probe_acc >= target_accuracy]  # type: ignore[operator]
    if time_budget is not None and target_accuracy is not None:
        both = [c for c in fits if c in reach]
        if both:
            return both[0], (f"cheapest chain whose probe reaches {target_accuracy:.4f} within "
                             f"{time_budget:.0f} s ({both[0].predicted_seconds:.0f} s predicted)")
        hints = []
        if reach:
            hints.append(f"{reach[0].name} reaches it in {reach[0].predicted_seconds:.0f} s predicted")
        if fits:
            best = max(fits, key=lambda c: c.probe_acc)  # type: ignore[arg-type,return-value]
            hints.append(f"within the budget the best is {best.name} at {best.probe_acc:.4f}")
        raise PlanError(f"no chain reaches {target_accuracy:.4f} within {time_budget:.0f} s; "
                        + ("; ".join(hints) or "lengthen the schedule or lower the target"))
    if time_budget is not None:
        if not fits:
            raise PlanError(f"no chain fits {time_budget:.0f} s; the cheapest, {by_cost[0].name}, needs "
                            f"{by_cost[0].predicted_seconds:.0f} s predicted: raise the budget or shorten the schedule")
        best = max(fits, key=lambda c: (c.probe_acc, -c.predicted_seconds))  # type: ignore[arg-type,operator]
        return best, f"best probe accuracy ({best.probe_acc:.4f}) among chains predicted to fit {time_budget:.0f} s"
    if target_accuracy is not None:
        if not reach:
            best = max(probed, key=lambda c: c.probe_acc)  # type: ignore[arg-type,return-value]
            raise PlanError(f"no chain's probe reaches {target_accuracy:.4f}; the best, {best.name}, reached "
                            f"{best.probe_acc:.4f}: lower the target or lengthen the probe")
        return reach[0], f"cheapest chain whose probe reaches {target_accuracy:.4f}"
    best = max(probed, key=lambda c: (c.probe_acc, -c.predicted_seconds))  # type: ignore[arg-type,operator]
    return best, "best probe accuracy (no budget or target given)"


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _profile(prev: Rung, cur: Rung, ctx: TrainContext, batch: int, repeats: int) -> dict[str, float]:
    """Median seconds of one stage-1 step (against ``prev``), one CE step, and evaluation per image."""
    x = ctx.prepare(ctx.data.train.x[:batch], True, None)
    y = ctx.data.train.y[:batch]
    model = copy.deepcopy(cur.model).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-9, momentum=0.9)
    taps_c = taps_of(cur.pairs)
    taps_p = taps_of(prev.pairs)
    rec_c, rec_p = FlowRecorder(model, taps_c, stop_early=True), FlowRecorder(prev.model, taps_p, stop_early=True)
    prev.model.eval()

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
        loss.backward()
        opt.step()

    def s2() -> None:
        with ctx.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with rec_c, rec_p:
        t1 = _time(s1, repeats)
    t2 = _time(s2, repeats)
    n_eval = min(len(ctx.data.val), 1000)
    t_eval = _time(lambda: evaluate(model, ctx.data.val.subset(torch.arange(n_eval)), ctx), 1) / n_eval
    return {"s1": t1, "s2": t2, "eval": t_eval}


def run_plan(cfg: RunConfig, data, device: torch.device, teacher: Rung, log=lambda r: None) -> dict[str, Any]:
    """Profile, probe and choose a chain for ``cfg`` (its last rung is the target)."""
    from .runner import _pairs, build_student, context_for, make_aligner

    t_plan = time.perf_counter()
    pc: PlanConfig = cfg.plan
    target_rc = cfg.rungs[-1]
    tm = teacher.model
    if not isinstance(tm, CifarResNet) or not target_rc.model.startswith("resnet"):
        raise PlanError("the planner proposes chains within the built-in ResNet family; list the rungs by hand "
                        "for other models")
    probe_target = create_model(target_rc.model, **{"in_chans": data.in_chans, "num_classes": data.num_classes,
                                                   **target_rc.kwargs})
    cands = candidate_chains((tm.depth, tm.width), (probe_target.depth, probe_target.width), pc.max_intermediates,
                             lambda d, w: sum(p.numel() for p in
                                              CifarResNet(d, w, data.in_chans, data.num_classes).parameters()))
    mf = torch.channels_last if cfg.channels_last else torch.preserve_format
    ctx = context_for(cfg, device, data, log)
    ctx.progress = False

    def rung_cfgs(c: Candidate) -> list[RungConfig]:
        inter = [RungConfig(model="resnet", name=f"student{i}", kwargs={"depth": d, "width": w},
                            stage2={"epochs": pc.intermediate_stage2_epochs} if pc.intermediate_stage2_epochs else {})
                 for i, (d, w) in enumerate(c.intermediates, start=1)]
        return inter + [target_rc]

    def rung(rc: RungConfig, seed: int) -> Rung:
        m, spec = build_student(rc, data, seed)
        return Rung(rc.name, m.to(device, memory_format=mf), _pairs(rc, m), spec)

    # Cost: profile every distinct (previous, network) pair once.
    steps_per_epoch = max(1, len(data.train) // cfg.stage2.batch_size)
    eval_images = len(data.val) + len(data.test)
    costs: dict[tuple[str, str], dict[str, float]] = {}
    project = cfg.projects_channels()
    for c in cands:
        rcs = rung_cfgs(c)
        chain = [teacher] + [rung(rc, 0) for rc in rcs]
        try:
            validate_ladder(chain, (data.in_chans, *data.image_size), project)
        except ValueError as e:
            c.note = f"invalid: {e}"
            continue
        rc_costs = []
        for prev, cur in zip(chain, chain[1:]):
            key = (f"{prev.spec.get('name')} {prev.spec.get('kwargs')}", f"{cur.spec['name']} {cur.spec['kwargs']}")
            if key not in costs:
                costs[key] = _profile(prev, cur, ctx, cfg.stage2.batch_size, pc.profile_steps)
            rc_costs.append(costs[key])
        c.predicted_seconds = predict_seconds(
            rc_costs, [cfg.stage_for(rc, "stage1").epochs for rc in rcs],
            [cfg.stage_for(rc, "stage2").epochs for rc in rcs], steps_per_epoch, eval_images)
    # Benefit: short probes on a training subset, cheapest chains first, within the planning budget.
    n_probe = min(pc.probe_train_images, len(data.train))
    probe_data = copy.copy(data)
    probe_data.train = data.train.subset(torch.arange(n_probe))
    pctx = copy.copy(ctx)
    pctx.data = probe_data
    probe_scale = n_probe / len(data.train)
    noise: list[float] = []
    for c in sorted([c for c in cands if c.predicted_seconds is not None], key=lambda c: c.predicted_seconds):
        est = (c.predicted_seconds or 0) * probe_scale * max(pc.probe_stage2_epochs, pc.probe_stage1_epochs) \
            / max(1, cfg.stage2.epochs)
        if time.perf_counter() - t_plan + est > pc.planning_budget:
            c.note = "not probed: over the planning budget"
            continue
        seeds = [cfg.seed] + ([cfg.seed + 1] if not noise and pc.noise_seeds > 1 else [])
        accs = []
        t0 = time.perf_counter()
        for seed in seeds:
            prev = teacher
            for k, rc in enumerate(rung_cfgs(c), start=1):
                cur = rung(rc, seed * 100 + k)
                pctx.seed = seed * 100 + k
                s1 = copy.copy(cfg.stage_for(rc, "stage1"))
                s1.epochs = pc.probe_stage1_epochs
                s2 = copy.copy(cfg.stage_for(rc, "stage2"))
                s2.epochs = pc.probe_stage2_epochs
                s2.warmup_epochs = min(s2.warmup_epochs, s2.epochs)
                shapes_c = [tuple(g) for g in _shapes(cur, data)]
                shapes_p = [tuple(g) for g in _shapes(prev, data)]
                al = make_aligner(cur, shapes_c, prev, shapes_p, True, seed, device)
                train_stage1(cur.model, cur.pairs, prev.model, prev.pairs, s1, pctx, f"probe/{c.name}/{rc.name}", al)
                r2 = train_stage2(cur.model, s2, pctx, f"probe/{c.name}/{rc.name}", eval_test=False)
                cur.model.eval()
                prev = cur
            accs.append(r2["val_acc"][-1])
        c.probe_seconds = time.perf_counter() - t0
        c.probe_acc = statistics.fmean(accs)
        if len(accs) > 1:
            noise.append(abs(accs[0] - accs[1]))
    choice, why = None, ""
    error = None
    try:
        choice, why = select(cands, pc.time_budget, pc.target_accuracy)
    except PlanError as e:
        error = str(e)
    return {
        "candidates": [{"chain": c.name, "intermediates": c.intermediates, "params": c.params,
                        "predicted_seconds": c.predicted_seconds, "probe_val_acc": c.probe_acc,
                        "probe_seconds": c.probe_seconds, "note": c.note} for c in cands],
        "choice": None if choice is None else {"chain": choice.name, "intermediates": choice.intermediates,
                                               "predicted_seconds": choice.predicted_seconds,
                                               "probe_val_acc": choice.probe_acc, "reason": why},
        "error": error, "time_budget": pc.time_budget, "target_accuracy": pc.target_accuracy,
        "probe": {"train_images": n_probe, "stage1_epochs": pc.probe_stage1_epochs,
                  "stage2_epochs": pc.probe_stage2_epochs,
                  "seed_to_seed_difference": noise[0] if noise else None},
        "step_costs": {f"{a} -> {b}": v for (a, b), v in costs.items()},
        "planning_seconds": time.perf_counter() - t_plan,
    }


def _shapes(r: Rung, data) -> list[tuple[int, int]]:
    from .ladder import flow_shapes

    return flow_shapes(r, (data.in_chans, *data.image_size))


def format_plan(plan: dict[str, Any]) -> str:
    rows = [("chain", "parameters", "predicted s", "probe val acc", "note")]
    for c in plan["candidates"]:
        rows.append((c["chain"], " < ".join(f"{p:,}" for p in c["params"]),
                     f"{c['predicted_seconds']:.0f}" if c["predicted_seconds"] is not None else "-",
                     f"{c['probe_val_acc']:.4f}" if c["probe_val_acc"] is not None else "-", c["note"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    p = plan["probe"]
    noise = p["seed_to_seed_difference"]
    lines.append(f"probe: {p['train_images']} training images, stage 1 {p['stage1_epochs']} epoch(s), stage 2 "
                 f"{p['stage2_epochs']} epoch(s); probe accuracy is a ranking signal after a short schedule, not a "
                 "forecast of final accuracy" + (f"; measured seed-to-seed difference {noise:.4f}" if noise is not None
                                                  else ""))
    if plan["choice"]:
        lines.append(f"choice: {plan['choice']['chain']} - {plan['choice']['reason']}")
    else:
        lines.append(f"no choice: {plan['error']}")
    lines.append(f"planning took {plan['planning_seconds']:.0f} s")
    return "\n".join(lines)
