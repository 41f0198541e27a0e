"""Measuring a network without training it: accuracy, held-out FSP loss, mean FSP matrices."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..align import ChannelAligner
from ..data import ImageSet
from ..distributed import all_reduce_sum
from ..flow import FlowRecorder, FsPair, flow_of, taps_of
from ..losses import fsp_loss
from .context import TrainContext

__all__ = ["evaluate", "fsp_eval_loss", "mean_flows", "BatchStats"]


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, ctx: TrainContext) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on ``data``."""
    from ..models import logits_of

    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=ctx.device)
    lo, hi = 0, len(data)
    if ctx.dist.enabled:  # each rank scores a contiguous share; counts are summed
        per = -(-len(data) // ctx.dist.world)
        lo, hi = min(len(data), ctx.dist.rank * per), min(len(data), (ctx.dist.rank + 1) * per)
    chunks = [torch.arange(i, min(hi, i + ctx.eval_batch_size)) for i in range(lo, hi, ctx.eval_batch_size)]
    for idx, x_uint8 in zip(chunks, data.stream(chunks)):
        with ctx.autocast():
            logits = logits_of(model(ctx.prepare(x_uint8, False, None)))
        correct += (logits.argmax(1) == data.y[idx.to(data.y.device)].to(ctx.device)).sum()
    model.train(was_training)
    return all_reduce_sum(correct, ctx.dist).item() / max(1, len(data))


class BatchStats:
    """Run a model in train mode (batch statistics) and restore its BN running stats on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> nn.Module:
        self.saved = {k: v.clone() for k, v in self.model.state_dict().items()
                      if "running" in k or "num_batches" in k}
        self.was_training = self.model.training
        self.model.train()
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.load_state_dict(self.saved, strict=False)
        self.model.train(self.was_training)


@torch.no_grad()
def mean_flows(model: nn.Module, pairs: Sequence[FsPair], x: torch.Tensor, batch_stats: bool,
               aligner: ChannelAligner | None = None) -> list[torch.Tensor]:
    """Mean FSP matrix per pair over the batch ``x``: ``n`` tensors ``(m_i, n_i)`` on the CPU.

    ``batch_stats`` runs the model as stage 1 sees a student (train-mode
    BatchNorm, running stats left untouched); otherwise in eval mode.
    """
    taps = taps_of(pairs)
    flows = aligner.flows if aligner is not None else flow_of
    if batch_stats:
        with BatchStats(model), FlowRecorder(model, taps, stop_early=True) as rec:
            return [g.mean(0).cpu() for g in flows(rec.run(x), pairs)]
    was_training = model.training
    model.eval()
    with FlowRecorder(model, taps, stop_early=True) as rec:
        out = [g.mean(0).cpu() for g in flows(rec.run(x), pairs)]
    model.train(was_training)
    return out


@torch.no_grad()
def fsp_eval_loss(
    student: nn.Module, student_pairs: Sequence[FsPair], prev: nn.Module, prev_pairs: Sequence[FsPair],
    data: ImageSet, ctx: TrainContext, weights: Sequence[float] | None = None, limit: int = 1000,
    aligner: ChannelAligner | None = None,
) -> float:
    """FSP loss (patent eq. 2) on up to ``limit`` held-out images, the student as it trains.

    The student runs in train mode (batch statistics, as in stage 1) with its
    BatchNorm running statistics restored afterwards, so measuring changes
    nothing; the previous network runs in eval mode.
    """
    prev.eval()
    total, n = 0.0, 0
    with BatchStats(student), FlowRecorder(student, taps_of(student_pairs), stop_early=True) as rs, \
            FlowRecorder(prev, taps_of(prev_pairs), stop_early=True) as rp:
        n_max = min(limit, len(data))
        for i in range(0, n_max, 250):
            x = ctx.prepare(data.read(torch.arange(i, min(i + 250, n_max))), False, None)
            feats = rs.run(x)
            gs = aligner.flows(feats, student_pairs) if aligner is not None else flow_of(feats, student_pairs)
            gp = flow_of(rp.run(x), prev_pairs)
            total += fsp_loss(gs, gp, weights).item() * x.shape[0]
            n += x.shape[0]
    return total / max(1, n)
