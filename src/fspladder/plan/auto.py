"""``plan.intermediates: auto``: plan the chain, then run it. The planner sits above the runner: the runner trains
a chain spelled out in its config and never plans (issue 35's layering), so a config that asks for planning is
planned here first and the runner is handed the planned config and the plan's record."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..check import preflight
from ..config import RunConfig, RungConfig
from ..data import DataSplits
from ..distributed import DistInfo
from ..outputs import out_folder
from ..runner import refuse_taken, run_ladder
from ..session import memory_format, resolve_device
from .candidates import PlanError
from .measure import format_plan, run_plan

__all__ = ["plan_and_run", "planned_config"]


def planned_config(cfg: RunConfig, choice: dict[str, Any]) -> RunConfig:
    """``cfg`` with the planned intermediate ResNets before its target, the planned recipe, planning off."""
    new = copy.deepcopy(cfg)
    stage2 = {"epochs": cfg.plan.intermediate_stage2_epochs} if cfg.plan.intermediate_stage2_epochs else {}
    new.rungs = [RungConfig(model="resnet", name=f"student{i}", kwargs={"depth": d, "width": w}, stage2=dict(stage2))
                 for i, (d, w) in enumerate(choice["intermediates"], start=1)] + [cfg.rungs[-1]]
    new.recipe = choice.get("recipe", cfg.recipe)
    for rc in new.rungs:
        rc.recipe = None  # the planned recipe for every rung
    new.plan.intermediates = "fixed"
    return new


def plan_and_run(cfg: RunConfig, out: str | Path, resume: bool = False, dist: DistInfo | None = None,
                 data: DataSplits | None = None, teacher: nn.Module | None = None, *,
                 on_ready: Callable[[], None] | None = None) -> dict[str, Any]:
    """:func:`fspladder.run_ladder`, planning first when ``cfg.plan.intermediates`` is ``auto``: the planner
    (:func:`fspladder.plan.run_plan`) chooses the intermediates and the recipe, its table goes to stderr, and the
    run trains the chosen chain (its ``resolved-config.yaml`` spells it out, so a resume does not plan again);
    the plan's record is the summary's ``plan`` and its probes' records head ``metrics.jsonl``. A folder that
    already holds a run is refused before planning. :class:`PlanError` when no candidate fits."""
    if cfg.plan.intermediates != "auto" or resume:  # a resume of a planned run is refused by the runner, naming why
        return run_ladder(cfg, out, resume, dist, data, teacher, on_ready=on_ready)
    dist = dist or DistInfo()
    folder = out_folder(out, "out")
    if dist.is_main:
        refuse_taken(folder)  # a folder that holds a run is refused now, not after minutes of planning
    device = resolve_device(cfg.device, dist)
    pf = preflight(cfg, data=data, device=device, teacher_module=teacher)  # `check`'s checks, before measuring
    pf.raise_problems()
    if dist.is_main:
        pf.print_warnings()
    assert pf.data is not None and pf.teacher is not None  # no problem: preflight built them
    pf.teacher.model.to(device, memory_format=memory_format(cfg))
    records: list[dict[str, Any]] = []  # the probes' metrics, written at the head of the run's metrics.jsonl

    def log(rec: dict[str, Any]) -> None:
        records.append({"time": round(time.time(), 3), **rec})

    plan = run_plan(cfg, pf.data.to(device), device, pf.teacher, log, teacher_meta=pf.teacher_ck)
    del pf  # its data and teacher: the run loads and checks its own, for the planned chain
    if dist.is_main:
        print(format_plan(plan), file=sys.stderr)
    if plan["choice"] is None:
        raise PlanError(plan["error"])
    return run_ladder(planned_config(cfg, plan["choice"]), folder, dist=dist, data=data, teacher=teacher,
                      on_ready=on_ready, plan=plan, plan_records=records)
