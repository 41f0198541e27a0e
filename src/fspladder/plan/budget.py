"""Choosing recipe and schedule for a time budget from measured accuracy-by-budget curves (issue 32).

The planner's probes (one short stage 2 on a training subset) rank chains, but they cannot rank recipes at
a longer budget: after one epoch a grown network leads any fresh one by its head start, which the measured
frontier shows shrinking to nothing at the full budget once scratch gets the same schedule. So the choice by
budget reads *measured* curves: for each recipe and schedule of a finished bench of the user's pair
(scratch arms and scratch variants among them, each with its own schedule), its mean final validation
accuracy and pipeline seconds at every budget run. The pick is the curve whose best point that fits the
budget is the most accurate; a point that does not fit is never interpolated into one that does. Seconds
compare only on one machine: benches that ran on different machines are refused, not merged.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ..bench.results import family_of
from ..bench.summary import is_scratch_run, schedule_label, schedule_of
from ..recipes import Recipe, recipe_name
from .candidates import PlanError

__all__ = ["Curve", "curves_from_benches", "machine_label", "choose_by_budget", "format_budget_choice"]


@dataclass
class Curve:
    """One recipe with one schedule, as a bench arm or variant ran it: ``(pipeline seconds, target epochs,
    mean final validation accuracy)`` per budget run, cheapest first, on the machine its bench ran on."""

    label: str
    recipe: str
    schedule: str
    scratch: bool
    points: list[tuple[float, int, float]] = field(default_factory=list)
    machine: str = ""  # where its seconds were measured (every curve of one choice shares it)


# The machine fields that decide a bench's seconds: two benches compare only where all of them match.
_MACHINE_KEYS = ("platform", "torch", "device", "gpu", "cpu_threads")


def _machine(bench: dict[str, Any]) -> dict[str, Any] | None:
    m = bench.get("machine")
    return {k: m.get(k) for k in _MACHINE_KEYS} if isinstance(m, dict) else None


def machine_label(machine: dict[str, Any] | None) -> str:
    """A bench's machine in a few words: platform, device (its GPU), threads."""
    if machine is None:
        return "no machine recorded"
    dev = machine.get("gpu") or machine.get("device") or "?"
    return f"{machine.get('platform')}, {dev}, {machine.get('cpu_threads')} threads, torch {machine.get('torch')}"


def _one_machine(benches: list[tuple[str, dict[str, Any]]]) -> str:
    """The machine all ``benches`` ran on, in words; :class:`PlanError` naming two that differ. Seconds measured
    on two machines do not compare (the realistic preset's benches ran on hosts 1.3x apart), so a curve of one
    and a curve of another would rank by the host, not by the recipe."""
    (first, b0), *rest = benches
    m0 = _machine(b0)
    for name, b in rest:
        m = _machine(b)
        if m is None or m0 is None or m != m0:
            raise PlanError(f"--measured: {first} ran on {machine_label(m0)} but {name} on {machine_label(m)}, so "
                            "their seconds do not compare: give benches from one machine (rerun or --extend the "
                            "others there)")
    return machine_label(m0)


def curves_from_benches(benches: list[tuple[str, dict[str, Any]]]) -> list[Curve]:
    """The curves of finished benches of one family (:func:`fspladder.bench.results.family_of`) and one machine,
    one per arm, recipe and schedule, with a point per budget run (two budgets that train the same epochs are two
    points, never pooled). Where two benches hold the same curve at the same budget, the one of more seeds is
    kept, then the folder whose name sorts first, so the order the benches are given in does not matter.
    Benches of different families or machines are refused (:class:`PlanError`): their seconds and accuracies
    are not one pair's on one machine."""
    fams = {family_of(b) for _, b in benches}
    if len(fams) > 1:
        raise PlanError(f"the benches given measured {len(fams)} different pairs ({'; '.join(sorted(fams))}); "
                        "give the benches of the one pair you plan for")
    benches = sorted(benches, key=lambda nb: nb[0])
    machine = _one_machine(benches) if benches else ""
    cells: dict[tuple[str, str, str], dict[float, tuple[int, float, int, float, str]]] = {}
    meta: dict[tuple[str, str, str], tuple[str, bool, str]] = {}
    for name, bench in benches:
        by_arm: dict[str, list[dict[str, Any]]] = {}
        for r in bench["runs"]:
            by_arm.setdefault(r["arm"], []).append(r)
        for arm, runs in by_arm.items():
            # one arm of one bench is one curve: recipe and schedule as run at its largest budget
            top = max(runs, key=lambda r: r["budget"])
            rec = top.get("recipe")
            recipe = (recipe_name(Recipe(**rec)) if rec else None) or top.get("base_arm", arm)
            key = (arm, recipe, schedule_label(schedule_of(top)))
            meta.setdefault(key, (arm, is_scratch_run(top), name))
            by: dict[float, list[dict[str, Any]]] = {}
            for r in runs:
                by.setdefault(float(r["budget"]), []).append(r)
            for budget, rs in by.items():
                cell = (len(rs), statistics.fmean(r["pipeline_seconds"] for r in rs), int(rs[0]["epochs"]),
                        statistics.fmean(r["val_acc"][-1] for r in rs), name)
                had = cells.setdefault(key, {}).get(budget)
                if had is None or cell[0] > had[0]:  # more seeds win; of equals the first folder (sorted) stays
                    cells[key][budget] = cell
    # an arm name that two benches gave different recipes or schedules is told apart by its folder
    arms = [k[0] for k in cells]
    curves = []
    for key, pts in cells.items():
        arm, scratch, source = meta[key]
        label = arm if arms.count(arm) == 1 else f"{arm} [{source}]"
        curves.append(Curve(label, key[1], key[2], scratch, sorted((s, e, a) for _, s, e, a, _ in pts.values()),
                            machine))
    return curves


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
              f"seconds are the benches' pipeline seconds on their machine ({pick.machine or 'not recorded'}): "
              "give S in that machine's seconds; accuracy is measured at each budget run, never interpolated"]
    return "\n".join(lines)
