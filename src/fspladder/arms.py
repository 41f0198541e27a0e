"""A bench's arms, built and checked before anything trains: the bench runs them and ``fspladder check``
reports their problems, so a config that check accepts is not refused by the bench later."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .chain import RungTask, arm_tasks, build_student, full_epochs
from .config import RunConfig, variant_config
from .ladder import LadderError, Rung
from .recipes import ARMS, PRESETS, RECIPE_DEFAULT_KEYS, Recipe, schedule_defaults
from .rung import chain_problems

__all__ = ["Arm", "BenchArms", "bench_arms", "SCHEDULE_LEVERS", "baseline_warnings"]

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
    arms = [Arm(a, a, ARMS[a][0], cfg.recipe_for(cfg.rungs[-1], ARMS[a][1]), cfg) for a in b.arms]
    problems: list[str] = []
    for name, v in b.variants.items():
        chain, recipe = ARMS[v["arm"]]
        vc = variant_config(cfg, v.get("set") or {})
        arm = Arm(name, v["arm"], chain, vc.recipe_for(vc.rungs[-1], v.get("recipe") or recipe), vc)
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
    scratch = [a for a in arms if a.base == "scratch" and a.recipe == PRESETS["scratch"]]
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
