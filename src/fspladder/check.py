"""``fspladder check``: every problem of a run config, found before any training.

Checks, in one pass: keys, types and ranges (strict parsing); the data folder
and files; the teacher checkpoint and whether it can read this data; that
every model builds and returns logits for the data's classes; tap names
against the real models; the ladder's ordering and FSP shapes; whether each
rung's recipe can apply (growth, soft targets, joint FSP) and whether a
recipe key is set that nothing reads; with ``--bench``, every arm and variant
of the config's bench the same way. Later checks that depend on a failed
earlier one are skipped rather than reported twice.
"""

from __future__ import annotations

from typing import Any

import torch

from .checkpoint import CheckpointError
from .config import ConfigError, RunConfig, parse_config_lenient
from .data import DataSplits
from .errors import FspladderError
from .flow import TapError, check_taps
from .ladder import LadderError, Rung
from .models import ModelOutputError, is_model, logits_of

__all__ = ["check_config"]


@torch.no_grad()
def _output_problem(model: torch.nn.Module, data: DataSplits, where: str) -> str | None:
    model.eval()
    try:
        out = logits_of(model(torch.zeros(2, data.in_chans, *data.image_size)))
    except ModelOutputError as e:
        return f"{where}: {e}"
    except RuntimeError as e:
        return (f"{where}: the model cannot run on the data's images ({data.in_chans}x{data.image_size[0]}x"
                f"{data.image_size[1]}): {str(e).splitlines()[0]}")
    if out.dim() != 2 or out.shape[1] != data.num_classes:
        return (f"{where}: the model returns logits of shape {tuple(out.shape)}, but the data has "
                f"{data.num_classes} classes: its output must be (batch, {data.num_classes}); pass num_classes to it")
    return None


def check_config(data: dict[str, Any], notes: list[str] | None = None,
                 bench: bool = False) -> tuple[RunConfig, list[str]]:
    """Return the parsed config and the list of every problem found (empty when it can run).

    ``bench``: also check every arm and variant of the config's ``bench`` section as ``fspladder bench``
    will (``fspladder check --bench``); without it, only what ``fspladder run`` does is checked.

    ``notes`` receives what the config will do that is worth knowing beforehand (the data path and its
    memory estimate)."""
    from .rung import chain_problems, load_teacher, student_rung, teacher_for
    from .session import load_data

    cfg, problems = parse_config_lenient(data)
    splits = None
    if not any(p.startswith(("data.root", "data.name", "seed")) for p in problems):
        path: list = []
        try:
            from .session import resolve_device

            splits = load_data(cfg, resolve_device(cfg.device), path)
        except FspladderError as e:
            problems.append(f"data: {e}")
        if notes is not None:
            notes += [str(p) for p in path]
    teacher: Rung | None = None
    other: str | None = None
    try:
        if splits is not None:
            teacher, _, other = teacher_for(cfg, splits)
        else:
            load_teacher(cfg)  # the checkpoint itself can still be checked
    except ConfigError as e:
        problems += [f"teacher: {p}" for p in e.problems]
    except (CheckpointError, TapError) as e:
        problems.append(f"teacher.checkpoint: {e}")
    chain: list[Rung | None] = [teacher]
    for i, rc in enumerate(cfg.rungs):
        if not is_model(rc.model) or splits is None:
            chain.append(None)
            continue
        try:
            rung = student_rung(rc, splits, 0)
            check_taps(rung.model, rung.taps)
            out = _output_problem(rung.model, splits, f"rungs[{i}] ({rc.name})")
            if out:
                problems.append(out)
            chain.append(rung)
        except (TypeError, ValueError, KeyError, FspladderError) as e:  # TapError is a ValueError
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            problems.append(f"rungs[{i}] ({rc.name}): {msg}")
            chain.append(None)
    if splits is None or any(r is None for r in chain) or any(p.startswith(("recipe", "rungs[")) for p in problems):
        return cfg, problems
    rungs: list[Rung] = chain  # type: ignore[assignment]
    try:
        recipes = [cfg.recipe_for(rc) for rc in cfg.rungs]
        s1s = [cfg.stage_for(rc, "stage1") for rc in cfg.rungs]
    except ConfigError as e:
        return cfg, problems + e.problems
    try:
        _, found = chain_problems(rungs, recipes, s1s, (splits.in_chans, *splits.image_size), other)
    except LadderError as e:
        return cfg, problems + [f"ladder: {p}" for p in e.problems]
    problems += found + cfg.recipe_key_problems(recipes)
    if bench and teacher is not None:  # what `fspladder bench` would refuse, found now
        from .bench.arms import bench_arms

        arms = bench_arms(cfg, teacher, splits, other)
        problems += arms.problems
        if notes is not None:  # the bench skips these (recorded in bench.json): say so before it runs
            notes += [f"bench: arm {k} will be skipped, its recipe cannot apply here: {why}"
                      for k, why in arms.skipped.items()]
            notes += [f"note: {w}" for w in arms.warnings]  # a baseline that lacks a schedule: it runs, but say so
    return cfg, problems
