"""A bench's arms, built and checked before anything trains: the bench runs them and ``fspladder check``
reports their problems, so a config that check accepts is not refused by the bench later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import RunConfig, variant_config
from ..ladder import LadderError, Rung
from ..recipes import ARMS, RECIPE_DEFAULT_KEYS, Recipe, schedule_defaults
from ..rung import chain_problems, student_rung

__all__ = ["Arm", "BenchArms", "bench_arms"]


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
        chain = [teacher] + [student_rung(rc, data, 0) for rc in arm.rungs]
        s1s = [arm.cfg.stage_for(rc, "stage1") for rc in arm.rungs]
        try:
            shapes, why = chain_problems(chain, [arm.recipe] * len(s1s), s1s, shape_in, other_classes)
        except LadderError as e:
            problems += [f"bench arm {arm.label}: ladder: {p}" for p in e.problems]
            continue
        if why and arm.label in b.arms and (arm.recipe.init == "grow" or arm.recipe.guidance.startswith("kd")):
            out.skipped[arm.label] = "; ".join(why)  # the recipe cannot apply here (another family, classes)
            continue
        problems += [f"bench arm {arm.label}: {p}" for p in why]
        out.shapes[arm.label] = shapes
        out.arms.append(arm)
    if not out.arms and not problems:
        problems.append("no arm of this bench can run here: " + "; ".join(f"{k}: {v}" for k, v in out.skipped.items()))
    return out
