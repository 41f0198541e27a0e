"""``fspladder check``: every problem of a run config, found before any training.

Checks, in one pass: keys, types and ranges (strict parsing); the data folder
and files; the teacher checkpoint; that every model builds; tap names against
the real models; the ladder's ordering and FSP shapes. Later checks that
depend on a failed earlier one are skipped rather than reported twice.
"""

from __future__ import annotations

from typing import Any

from .checkpoint import CheckpointError, load_model
from .config import RunConfig, parse_config_lenient
from .data import DataFileError
from .flow import TapError, check_taps
from .ladder import LadderError, Rung, validate_ladder
from .models import is_model

__all__ = ["check_config"]


def check_config(data: dict[str, Any]) -> tuple[RunConfig, list[str]]:
    """Return the parsed config and the list of every problem found (empty when it can run)."""
    from .runner import _pairs, build_student, load_data

    cfg, problems = parse_config_lenient(data)
    splits = None
    if not any(p.startswith(("data.root", "data.name")) for p in problems):
        try:
            splits = load_data(cfg)
        except (DataFileError, ValueError) as e:
            problems.append(f"data: {e}")
    chain: list[Rung | None] = []
    try:
        teacher, ck = load_model(cfg.teacher.checkpoint, {"name": cfg.teacher.model, "kwargs": cfg.teacher.kwargs})
        chain.append(Rung("teacher", teacher, _pairs(cfg.teacher, teacher), ck["model"]))
    except (CheckpointError, TapError) as e:
        problems.append(f"teacher.checkpoint: {e}")
        chain.append(None)
    for i, rc in enumerate(cfg.rungs):
        if not is_model(rc.model) or splits is None:
            chain.append(None)
            continue
        try:
            model, spec = build_student(rc, splits, 0)
            rung = Rung(rc.name, model, _pairs(rc, model), spec)
            check_taps(model, rung.taps)
            chain.append(rung)
        except (TypeError, ValueError) as e:  # TapError is a ValueError
            problems.append(f"rungs[{i}] ({rc.name}): {e}")
            chain.append(None)
    if splits is not None and all(r is not None for r in chain):
        try:
            validate_ladder(chain, (splits.in_chans, *splits.image_size),  # type: ignore[arg-type]
                            project_channels=cfg.projects_channels())
        except LadderError as e:
            problems += [f"ladder: {p}" for p in e.problems]
    return cfg, problems
