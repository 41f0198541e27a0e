"""A bench's arms, built and checked before anything trains: the bench runs them and ``fspladder check``
reports their problems, so a config that check accepts is not refused by the bench later."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .chain import RungTask, arm_tasks, build_student, full_epochs
from .config import ConfigError, RunConfig, variant_config
from .ladder import LadderError, Rung
from .recipes import ARMS, PRESETS, RECIPE_DEFAULT_KEYS, WSD_DECAY, Recipe, schedule_defaults
from .rung import chain_problems

__all__ = ["Arm", "BenchArms", "bench_arms", "SCHEDULE_LEVERS", "baseline_warnings", "fair_baseline",
           "recorded_levers", "fair_baseline_line", "WIDENED"]

# The stage-2 levers of a schedule (recipes.schedule_defaults, Stage2Config): a transfer arm given one of them must
# find scratch given it too, or its time to scratch's accuracy measures the schedule as well as the recipe (issue 32).
SCHEDULE_LEVERS = ("schedule", "decay_fraction", "lr", "warmup_epochs", "ema")


@dataclass
class Arm:
    """One arm (or variant) of the bench: its label, base arm, chain, recipe and config."""

    label: str
    base: str
    chain: str  # "target" | "ladder"
    recipe: Recipe
    cfg: RunConfig

    @property
    def rungs(self):
        return self.cfg.rungs if self.chain == "ladder" else self.cfg.rungs[-1:]


@dataclass
class BenchArms:
    """The arms that can run, their chains' FSP shapes, the arms skipped with why, and the problems found."""

    arms: list[Arm]
    shapes: dict[str, Any]
    skipped: dict[str, str]
    problems: list[str]
    warnings: list[str] = field(default_factory=list)  # what runs but compares unfairly (baseline_warnings)


def bench_arms(cfg: RunConfig, teacher: Rung, data: Any, other_classes: str | None) -> BenchArms:
    """Every arm and variant of ``cfg.bench`` against ``teacher`` on ``data``, with the checks ``run`` makes of
    a chain (ladder, recipe, keys). A base arm whose recipe cannot apply here (growth across families, soft
    targets across classes) is skipped, not a problem; a variant is the user's explicit ask, so it is one."""
    b = cfg.bench
    arms = [_arm(cfg, a) for a in b.arms]
    problems: list[str] = []
    for name, v in b.variants.items():
        arm = _variant(cfg, name, v)
        arms.append(arm)
        defaults = schedule_defaults(arm.recipe)
        for key in v.get("set") or {}:  # a key the variant sets but its recipe does not read would do nothing
            sub = str(key).split(".")[-1]
            if str(key).startswith("stage2.") and sub in RECIPE_DEFAULT_KEYS and defaults[sub] is None:
                problems.append(f"bench.variants.{name} sets {key}, which its recipe {arm.recipe} does not use; "
                                "remove it or give the variant a recipe that does")
    out = BenchArms([], {}, {}, problems)  # out.problems is this list: what follows appends to both
    problems += cfg.recipe_key_problems([a.recipe for a in arms], rungs_train=False)
    shape_in = (data.in_chans, *data.image_size)
    for arm in arms:
        tasks = arm_plan(arm)
        chain = [teacher] + [build_student(t, data) for t in tasks]
        s1s = [t.s1 for t in tasks]
        if arm.recipe.has_stage1 and any(s.epochs == 0 for s in s1s):  # it would run, labelled, without stage 1
            problems.append(f"bench arm {arm.label}: stage1.epochs is 0 with recipe {arm.recipe}, which trains an FSP "
                            "stage 1: set stage1.epochs > 0, or drop the arm (scratch and soft have no stage 1)")
            continue
        try:
            shapes, why = chain_problems(chain, [arm.recipe] * len(s1s), s1s, shape_in, other_classes)
        except LadderError as e:
            problems += [f"bench arm {arm.label}: ladder: {p}" for p in e.problems]
            continue
        if why and arm.label in b.arms and (arm.recipe.grows or arm.recipe.soft_targets):
            out.skipped[arm.label] = "; ".join(why)  # the recipe cannot apply here (another family, classes)
            continue
        problems += [f"bench arm {arm.label}: {p}" for p in why]
        out.shapes[arm.label] = shapes
        out.arms.append(arm)
    if not out.arms and not problems:
        problems.append("no arm of this bench can run here: " + "; ".join(f"{k}: {v}" for k, v in out.skipped.items()))
    out.warnings = baseline_warnings(out.arms)
    return out


def _is_scratch(a: Arm) -> bool:
    """A scratch arm or variant with scratch's own recipe: a baseline (one given another recipe is not)."""
    return a.base == "scratch" and a.recipe == PRESETS["scratch"]


def _arm(cfg: RunConfig, name: str) -> Arm:
    return Arm(name, name, ARMS[name][0], cfg.recipe_for(cfg.rungs[-1], ARMS[name][1]), cfg)


def _variant(cfg: RunConfig, name: str, v: dict[str, Any]) -> Arm:
    chain, recipe = ARMS[v["arm"]]
    vc = variant_config(cfg, v.get("set") or {})
    return Arm(name, v["arm"], chain, vc.recipe_for(vc.rungs[-1], v.get("recipe") or recipe), vc)


def arm_plan(arm: Arm, seed: int = 0) -> list[RungTask]:
    """The arm's chain plan at its full budget (:func:`fspladder.chain.arm_tasks`): what its checks read."""
    return arm_tasks(arm.cfg, arm.rungs, arm.recipe, arm.label, seed, [1.0], full_epochs(arm.cfg))


def _levers(arm: Arm) -> dict[str, Any]:
    """The target's resolved schedule levers; decay_fraction only where wsd reads it."""
    s2 = arm_plan(arm)[-1].s2
    out = {k: getattr(s2, k) for k in SCHEDULE_LEVERS}
    if out["schedule"] != "wsd":
        out["decay_fraction"] = None
    return out


def baseline_warnings(arms: list[Arm]) -> list[str]:
    """One warning per schedule a transfer arm or variant gets that no scratch arm or variant gets, naming the
    scratch variant that would give it (a bench without any scratch arm has no scratch baseline: none).

    A warning, not a refusal: a bench that lacks it still runs and its summary says its baseline is not scratch
    at its best (``summary.baseline.unmatched``)."""
    scratch = [a for a in arms if _is_scratch(a)]
    if not scratch:
        return []
    have = [_levers(a) for a in scratch]
    ref = have[0]  # the first scratch's levers: a suggested variant sets only what differs from them
    missing: dict[tuple[tuple[str, Any], ...], list[str]] = {}
    for a in arms:
        if a in scratch:
            continue
        lv = _levers(a)
        if lv not in have:
            missing.setdefault(tuple(lv.items()), []).append(a.label)
    out = []
    for key, labels in missing.items():
        lv = dict(key)
        sets = {f"stage2.{k}": v for k, v in lv.items() if v != ref[k] and v is not None}
        if lv["schedule"] == "wsd":  # wsd's decay is part of the schedule even at the scratch arm's value
            sets.setdefault("stage2.schedule", "wsd")
            sets["stage2.decay_fraction"] = lv["decay_fraction"]
        body = ", ".join(f"{k}: {v}" for k, v in sets.items())
        out.append(f"bench: the baseline lacks {body} (given to {', '.join(labels)}), so their times to scratch's "
                   f"accuracy would measure the schedule too: add a scratch variant {{arm: scratch, set: {{{body}}}}}")
    return out


def _lever_name(lv: dict[str, Any], ref: dict[str, Any]) -> str:
    """A variant name for scratch with levers ``lv``: its schedule, then each lever that differs from ``ref``
    (scratch's own), e.g. ``scratch-cosine``, ``scratch-wsd0.3``, ``scratch-cosine-ema0.99``."""
    parts = [str(lv["schedule"])]
    if lv["schedule"] == "wsd" and lv["decay_fraction"] != WSD_DECAY:
        parts[0] += f"{lv['decay_fraction']:g}"
    short = {"lr": "lr", "warmup_epochs": "warmup", "ema": "ema"}
    parts += [f"{short[k]}{lv[k]:g}" for k in short if lv[k] != ref[k] and lv[k] is not None]
    parts += [f"no{short[k]}" for k in short if lv[k] != ref[k] and lv[k] is None]
    return "scratch-" + "-".join(parts)


WIDENED = "its budgets widened"  # how fair_baseline says it widened a variant's budgets (bench.json, messages)


def fair_baseline_line(name: str, why: str) -> str:
    """What ``check --bench`` and the bench say of a variant :func:`fair_baseline` added or widened."""
    what = (f"the scratch variant {name}: {why}" if why.startswith(WIDENED)
            else f"adds the scratch variant {name} ({why})")
    return f"bench: {what}: the fair baseline; bench.fair_baseline: false to run without it"


def recorded_levers(runs: list[Any]) -> dict[str, dict[str, Any]]:
    """The learning-rate levers each label's finished runs recorded (their ``schedule``; at the longest budget,
    whose warm-up is not clipped; the first of equal budgets), for :func:`fair_baseline`: a bench trained before a
    default changed keeps the schedules it ran with. The weight average is read from a record's ``ema`` (None:
    none); a record without it leaves the config's. Records without a schedule (older benches) give nothing."""
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for r in runs:
        sch = r.get("schedule") if isinstance(r, dict) else None
        if not isinstance(sch, dict) or not isinstance(r.get("arm"), str) or "shape" not in sch:
            continue
        budget = r.get("budget") if isinstance(r.get("budget"), (int, float)) else 0.0
        if r["arm"] not in best or budget > best[r["arm"]][0]:
            lv = {"schedule": sch.get("shape"), "lr": sch.get("lr"), "warmup_epochs": sch.get("warmup_epochs"),
                  "decay_fraction": sch.get("decay_fraction") if sch.get("shape") == "wsd" else None}
            ema = r.get("ema", False)  # False: not recorded (older records) -> the config's value counts
            if ema is None or (isinstance(ema, (int, float)) and not isinstance(ema, bool) and math.isfinite(ema)):
                lv["ema"] = float(ema or 0.0)  # the run's weight average (None: none)
            best[r["arm"]] = (budget, lv)
    return {k: v for k, (_, v) in best.items()}


def fair_baseline(cfg: RunConfig, recorded: dict[str, dict[str, Any]] | None = None,
                  owned: Mapping[str, list[float] | None] | None = None) -> tuple[RunConfig, dict[str, str]]:
    """``cfg`` with a scratch variant added for every schedule a transfer arm or variant of its bench gets and no
    scratch arm or variant gets (issue 32's fair baseline: the threshold "scratch's accuracy" is then the best
    scratch over every schedule the bench offers anything), and what was added: ``{name: why}``.

    A schedule is the target's stage-2 levers (:data:`SCHEDULE_LEVERS`): shape, wsd's decay, peak learning rate,
    warm-up and weight average. ``recorded``: the levers an arm's finished runs trained with
    (:func:`recorded_levers`), which count instead of the config's for that arm (a bench extended after a default
    changed). Each added variant sets only what differs from the config's own scratch, and runs at the budgets of
    the arms that get that schedule and the full one. Nothing is added to a bench without a scratch arm or variant
    (it has no scratch baseline), with ``bench.fair_baseline: false`` (then :func:`baseline_warnings` warns), to
    a config whose arms do not build (the checks that follow report why), or where the variant would not build
    or not train with that schedule (a rung's own stage-2 keys override it; the warning stays). Adding again
    adds nothing. ``owned``: the variants this rule added to the bench before (bench.json's
    ``fair_baseline_added``), each with the budgets it was given then (None: every budget). Such a variant keeps
    them, and an extension that widens its users' budgets or the full one widens its own alike (``{name: "its
    budgets widened to those of ..."}`` in the result), so the baseline runs wherever its schedule does and no
    budget it already ran is dropped."""
    b = cfg.bench
    if not b.fair_baseline:
        return cfg, {}
    recorded = recorded or {}

    try:
        arms = [_arm(cfg, a) for a in b.arms] + [_variant(cfg, k, v) for k, v in b.variants.items()]
        # each arm's levers, resolved once (its chain plan): a finished arm's recorded ones win
        levers = {a.label: {**_levers(a), **recorded.get(a.label, {})} for a in arms}
        have = [levers[a.label] for a in arms if _is_scratch(a)]
        if not have:
            return cfg, {}
        ref = _levers(_arm(cfg, "scratch"))  # what a variant's settings apply on top of: the config's own scratch
        missing: dict[tuple[tuple[str, Any], ...], list[Arm]] = {}
        for a in arms:
            if not _is_scratch(a) and (lv := levers[a.label]) not in have:
                missing.setdefault(tuple(lv.items()), []).append(a)
    except (ConfigError, LadderError, KeyError):
        return cfg, {}
    variants, budgets, added = dict(b.variants), dict(b.arm_budgets), {}
    for key, users in missing.items():
        lv = dict(key)
        sets: dict[str, Any] = {"stage2.schedule": lv["schedule"],
                                "stage2.decay_fraction": lv["decay_fraction"] if lv["schedule"] == "wsd" else None}
        sets |= {f"stage2.{k}": lv[k] for k in ("lr", "warmup_epochs", "ema") if lv[k] != ref[k]}
        v = {"arm": "scratch", "set": sets}
        try:  # it must build and train with exactly that schedule, or it is no baseline for it
            if _levers(_variant(cfg, "scratch-fair", v)) != lv:
                continue
        except (ConfigError, LadderError):
            continue
        name, n = _lever_name(lv, ref), 1
        while name in variants or name in ARMS or name in b.arms:
            n += 1
            name = f"{_lever_name(lv, ref)}-fair{n if n > 2 else ''}"
        variants[name] = v
        own = [b.arm_budgets.get(a.label) for a in users]
        if all(own):  # and the full budget, where the threshold is read
            budgets[name] = [x for x in b.budgets if x == max(b.budgets) or any(x in o for o in own if o)]
        added[name] = "the schedule of " + ", ".join(a.label for a in users)
    for name, before in (owned or {}).items():  # added by this rule before, with the budgets it had then
        v = variants.get(name)
        if not isinstance(v, dict) or v.get("arm") != "scratch" or name not in budgets:
            continue  # gone from the config (or never a scratch variant), or at every budget already
        try:  # re-added by the loop above, it is not among the arms built
            mine = levers[name] if name in levers else _levers(_variant(cfg, name, v))
        except (ConfigError, LadderError):  # the checks that follow say why
            continue
        users = [a for a in arms if not _is_scratch(a) and levers[a.label] == mine]
        own = [b.arm_budgets.get(a.label) for a in users]
        if before is None or not all(own):  # it ran at every budget, or a user now does: so does it
            del budgets[name]
            to = "every budget"
        else:
            now = [x for x in b.budgets if x == max(b.budgets) or x in budgets[name] or x in before
                   or any(x in o for o in own if o)]
            if now == budgets[name]:
                continue
            budgets[name] = now
            to = ", ".join(f"{x:g}" for x in now)
        if name not in added:  # re-added by the loop above: "added" says so already
            added[name] = f"{WIDENED} to {to}" + (f" (those of {', '.join(a.label for a in users)})" if users else "")
    return replace(cfg, bench=replace(b, variants=variants, arm_budgets=budgets)), added
