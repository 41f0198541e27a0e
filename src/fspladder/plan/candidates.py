"""Candidate chains, their predicted cost, and the decision among measured candidates (no training here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import FspladderError
from ..models import create_model

__all__ = ["PlanError", "Candidate", "candidate_chains", "select"]


class PlanError(FspladderError, ValueError):
    """No candidate satisfies the budget and/or the accuracy target."""


@dataclass
class Candidate:
    """One chain (intermediate ``(depth, width)`` pairs between the teacher and the target) and its recipe."""

    intermediates: list[tuple[int, int]]
    params: list[int] = field(default_factory=list)  # teacher, intermediates..., target
    recipe: str = "patent"
    predicted_seconds: float | None = None
    probe_acc: float | None = None
    probe_seconds: float | None = None
    note: str = ""

    @property
    def chain_name(self) -> str:
        inner = [f"{d}" + (f"x{w}" if w != 1 else "") for d, w in self.intermediates]
        return " -> ".join(["T", *inner, "target"]) if inner else "T -> target (direct)"

    @property
    def name(self) -> str:
        return self.chain_name if self.recipe == "patent" else f"{self.chain_name} [{self.recipe}]"


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
    count = param_count or (lambda d, w: sum(p.numel() for p in create_model("resnet", depth=d, width=w).parameters()))
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


def _most_accurate(cands: list[Candidate], tolerance: float) -> tuple[Candidate, str]:
    """The cheapest candidate whose probe accuracy is within ``tolerance`` of the best one, and a note when
    that is not the best itself: a probe difference smaller than the probe's own seed-to-seed difference
    is not evidence that the dearer chain is better."""
    top = max(cands, key=lambda c: (c.probe_acc, -c.predicted_seconds))  # type: ignore[arg-type,operator]
    near = [c for c in cands if c.probe_acc >= top.probe_acc - tolerance]  # type: ignore[operator]
    pick = min(near, key=lambda c: c.predicted_seconds)  # type: ignore[arg-type,return-value]
    if pick is top:
        return pick, f"best probe accuracy ({pick.probe_acc:.4f})"
    return pick, (f"cheapest of the chains whose probe accuracy is within the measured seed-to-seed difference "
                  f"({tolerance:.4f}) of the best ({top.name}, {top.probe_acc:.4f}): {pick.probe_acc:.4f} in "
                  f"{pick.predicted_seconds:.0f} s predicted against {top.predicted_seconds:.0f} s")


def select(cands: list[Candidate], time_budget: float | None, target_accuracy: float | None,
           tolerance: float = 0.0) -> tuple[Candidate, str]:
    """The chosen candidate and why; :class:`PlanError` when none fits, naming what would.

    ``tolerance`` is the probe's measured seed-to-seed difference: where accuracy decides, candidates within
    it of the best count as equal and the cheapest of them is chosen.
    """
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
        best, why = _most_accurate(fits, tolerance)
        return best, f"{why} among chains predicted to fit {time_budget:.0f} s"
    if target_accuracy is not None:
        if not reach:
            best = max(probed, key=lambda c: c.probe_acc)  # type: ignore[arg-type,return-value]
            raise PlanError(f"no chain's probe reaches {target_accuracy:.4f}; the best, {best.name}, reached "
                            f"{best.probe_acc:.4f}: lower the target or lengthen the probe")
        return reach[0], f"cheapest chain whose probe reaches {target_accuracy:.4f}"
    best, why = _most_accurate(probed, tolerance)
    return best, f"{why}; no budget or target given"
