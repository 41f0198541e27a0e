"""The ladder: teacher -> student 1 -> ... -> target, and its validation.

Claim 3 of the patent: every network is larger than the one before it. Every
consecutive pair of networks must also produce FSP matrices of equal shapes,
pair by pair, since stage 1 compares them element-wise (patent eq. 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .errors import ProblemsError
from .flow import FlowRecorder, FsPair, TapError, check_taps, flow_of, taps_of
from .models.outputs import module_device

__all__ = ["Rung", "LadderError", "validate_ladder", "default_pairs", "flow_shapes"]


class LadderError(ProblemsError):
    """The chain of networks cannot run; ``problems`` lists every reason."""

    heading = "invalid ladder"


@dataclass
class Rung:
    """One network of the chain (the teacher is rung 0) and the FSP pairs it is compared on."""

    name: str
    model: nn.Module
    pairs: list[FsPair]
    spec: dict = field(default_factory=dict)  # how it was built (model name, kwargs), for records

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def taps(self) -> list:
        return taps_of(self.pairs)


def default_pairs(model: nn.Module) -> list[FsPair]:
    """The model's declared ``default_fsp_pairs``; an error says how to declare them otherwise."""
    pairs = getattr(model, "default_fsp_pairs", None)
    if not pairs:
        raise TapError(
            f"{type(model).__name__} declares no default_fsp_pairs; list its FSP pairs in the config "
            "(pairs: [[first_tap, second_tap], ...]); `fspladder layers MODEL` shows tap names"
        )
    return [FsPair.parse(p) for p in pairs]


@torch.no_grad()
def flow_shapes(rung: Rung, input_shape: Sequence[int]) -> list[tuple[int, int]]:
    """``(m, n)`` of each FSP matrix of ``rung`` for one input of ``input_shape`` ``(C, H, W)`` (channel counts of
    image maps, or token widths ``d`` of token sequences)."""
    if not rung.pairs:
        return []
    model = rung.model
    was_training = model.training
    model.eval()
    device = module_device(model)
    try:
        x = torch.zeros(2, *input_shape, device=device)
        with FlowRecorder(model, rung.taps, stop_early=True) as rec:
            mats = flow_of(rec.run(x), rung.pairs)
    finally:
        model.train(was_training)
    return [tuple(g.shape[1:]) for g in mats]  # type: ignore[misc]


def validate_ladder(rungs: Sequence[Rung], input_shape: Sequence[int], project_channels: bool | Sequence[bool] = False,
                    compare: Sequence[bool] | None = None) -> list[list[tuple[int, int]]]:
    """Check a chain before any training; raise :class:`LadderError` listing every problem.

    Checks: at least a teacher and one student; every tap exists; parameter
    counts strictly increase along the chain (patent claim 3); each student
    whose recipe compares FSP matrices (``compare[i]``, default all: the
    patent's stage 1) has as many FSP pairs as the network before it, with
    equal ``(m, n)`` shapes unless ``project_channels`` (one flag, or one per
    student) lets 1x1 projections align them (width growth).
    Returns the FSP shapes of every rung.
    """
    problems: list[str] = []
    if len(rungs) < 2:
        raise LadderError(["a ladder needs a trained teacher and at least one student (the target)"])
    for r in rungs:
        try:
            check_taps(r.model, r.taps)
        except TapError as e:
            problems.append(f"{r.name}: {e}")
    if problems:
        raise LadderError(problems)
    for prev, cur in zip(rungs, rungs[1:]):
        if cur.num_params <= prev.num_params:
            problems.append(
                f"{cur.name} ({cur.num_params:,} parameters) is not larger than {prev.name} "
                f"({prev.num_params:,}); each network of the chain must be larger than the one before it "
                "(patent claim 3): reorder the rungs or pick a larger model"
            )
    shapes = []
    for r in rungs:
        try:
            shapes.append(flow_shapes(r, input_shape))
        except TapError as e:  # e.g. a pair of an image map and a token sequence
            problems.append(f"{r.name}: {e}")
    if len(shapes) < len(rungs):
        raise LadderError(problems)
    n = len(rungs) - 1
    compare = list(compare) if compare is not None else [True] * n
    project = [project_channels] * n if isinstance(project_channels, bool) else list(project_channels)
    for k, ((prev, ps), (cur, cs)) in enumerate(zip(zip(rungs, shapes), zip(rungs[1:], shapes[1:]))):
        if not compare[k]:
            continue
        if not prev.pairs or not cur.pairs:
            bare = cur if not cur.pairs else prev
            problems.append(f"{bare.name} has no FSP pairs (its model declares no default_fsp_pairs): list them in "
                            "the config (pairs: [[first_tap, second_tap], ...]; `fspladder layers MODEL` shows tap "
                            "names), or use a recipe without FSP (stage1 none, e.g. recipe w2s or scratch)")
            continue
        if len(ps) != len(cs):
            problems.append(f"{cur.name} has {len(cs)} FSP pairs but {prev.name} has {len(ps)}; use the same number")
            continue
        differ = [f"pair {i}: {cur.name} {pb} gives {b[0]}x{b[1]}, {prev.name} {pa} gives {a[0]}x{a[1]}"
                  for i, (a, b, pa, pb) in enumerate(zip(ps, cs, prev.pairs, cur.pairs)) if a != b]
        if differ and not project[k]:  # one message per rung, naming every pair that differs
            problems.append(
                f"{cur.name}'s FSP matrices differ in shape from {prev.name}'s ({'; '.join(differ)}): tapped channel "
                "counts must match pair by pair and in the same order (grow depth at equal width, tap layers of "
                "equal width, set stage1.project_channels: true to align them with learned 1x1 projections, or use "
                "a recipe without stage 1, e.g. grow)")
    if problems:
        raise LadderError(problems)
    return shapes
