"""Choosing recipe and schedule for a time budget from measured accuracy-by-budget curves (issue 32).

The planner's probes (one short stage 2 on a training subset) rank chains, but they cannot rank recipes at
a longer budget: after one epoch a grown network leads any fresh one by its head start, which the measured
frontier shows shrinking to nothing at the full budget once scratch gets the same schedule. So the choice by
budget reads *measured* curves: for each recipe and schedule of a finished bench of the user's pair
(scratch arms and scratch variants among them, each with its own schedule), its mean final validation
accuracy and pipeline seconds at every budget run. The pick is the curve whose best point that fits the
budget is the most accurate; a point that does not fit is never interpolated into one that does.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ..bench.results import family_of
from ..bench.summary import is_scratch_run, schedule_label, schedule_of
from ..recipes import Recipe, recipe_name
from .candidates import PlanError

__all__ = ["Curve", "curves_from_benches", "choose_by_budget", "format_budget_choice"]


@dataclass
class Curve:
    """One recipe with one schedule, as a bench arm or variant ran it: ``(pipeline seconds, target epochs,
    mean final validation accuracy)`` per budget run, cheapest first."""

    label: str
    recipe: str
    schedule: str
    scratch: bool
    points: list[tuple[float, int, float]] = field(default_factory=list)


def curves_from_benches(benches: list[tuple[str, dict[str, Any]]]) -> list[Curve]:
    """The curves of finished benches of one family (:func:`fspladder.bench.results.family_of`), budgets matched
    by their epochs; where two benches hold the same arm at the same epochs, the first given is kept (as in the
    frontier). Benches of different families are refused: their seconds and accuracies are not one pair's."""
    fams = {family_of(b) for _, b in benches}
    if len(fams) > 1:
        raise PlanError(f"the benches given measured {len(fams)} different pairs ({'; '.join(sorted(fams))}); "
                        "give the benches of the one pair you plan for")
    curves: dict[str, Curve] = {}
    seen: set[tuple[str, int]] = set()
    for _, bench in benches:
        by: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for r in bench["runs"]:
            by.setdefault((r["arm"], int(r["epochs"])), []).append(r)
        for (arm, epochs), rs in by.items():
            if (arm, epochs) in seen:
                continue
            seen.add((arm, epochs))
            first = rs[0]
            rec = first.get("recipe")
            name = (recipe_name(Recipe(**rec)) if rec else None) or first.get("base_arm", arm)
            c = curves.setdefault(arm, Curve(arm, name, schedule_label(schedule_of(first)), is_scratch_run(first)))
            c.points.append((statistics.fmean(r["pipeline_seconds"] for r in rs), epochs,
                             statistics.fmean(r["val_acc"][-1] for r in rs)))
    for c in curves.values():
        c.points.sort()
    return list(curves.values())


def choose_by_budget(curves: list[Curve], time_budget: float) -> tuple[Curve, tuple[float, int, float], str]:
    """The curve, its point and why: among the points of every curve that fit ``time_budget`` seconds, each
    curve's most accurate, then the most accurate curve (of equals, the cheapest). :class:`PlanError` when no
    point fits, naming the cheapest."""
    fits = {}
    for c in curves:
        inside = [p for p in c.points if p[0] <= time_budget]
        if inside:
            fits[c.label] = (c, max(inside, key=lambda p: (p[2], -p[0])))
    if not fits:
        cheap = min(((c, c.points[0]) for c in curves if c.points), key=lambda cp: cp[1][0], default=None)
        hint = f"; the cheapest measured is {cheap[0].label} at {cheap[1][0]:.0f} s" if cheap else ""
        raise PlanError(f"no measured recipe fits {time_budget:.0f} s{hint}: raise the budget or measure "
                        "shorter budgets (bench.budgets)")
    pick, point = max(fits.values(), key=lambda cp: (cp[1][2], -cp[1][0]))
    scratch = [cp for cp in fits.values() if cp[0].scratch]
    best_s = max(scratch, key=lambda cp: cp[1][2]) if scratch else None
    why = (f"{pick.label} (recipe {pick.recipe}, {pick.schedule}) at {point[1]} epochs: validation "
           f"{point[2]:.4f} in {point[0]:.0f} s measured, the most accurate of {len(fits)} recipes and schedules "
           f"measured within {time_budget:.0f} s"
           + (f"; the best scratch there: {best_s[0].label} ({best_s[0].schedule}) {best_s[1][2]:.4f}"
              if best_s and best_s[0] is not pick else "")
           + ("" if scratch else "; no scratch run fits this budget, so scratch was not compared"))
    return pick, point, why


def format_budget_choice(curves: list[Curve], time_budget: float, pick: Curve, point: tuple[float, int, float],
                         why: str) -> str:
    """Every measured curve's best point within the budget, then the choice and why."""
    rows = [("recipe (arm)", "schedule", "epochs", "seconds", "val acc")]
    for c in sorted(curves, key=lambda c: c.label):
        inside = [p for p in c.points if p[0] <= time_budget]
        p = max(inside, key=lambda q: (q[2], -q[0])) if inside else None
        rows.append((f"{c.recipe} ({c.label})" + (" [scratch]" if c.scratch else ""), c.schedule,
                     str(p[1]) if p else "-", f"{p[0]:.0f}" if p else f"> {time_budget:.0f}",
                     f"{p[2]:.4f}" if p else "does not fit"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"choice: {why}",
              "seconds are the benches' pipeline seconds on their own machine; accuracy is measured at each budget "
              "run, never interpolated"]
    return "\n".join(lines)
