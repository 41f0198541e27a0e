"""Data-parallel training under ``torchrun`` (PyTorch's own launcher and process groups).

``torchrun --nproc_per_node N -m fspladder run CONFIG`` starts N processes;
each reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the environment. Every
rank draws the same global batch order and augmentation parameters and keeps
its own slice of each batch, so N ranks see exactly the images (and
augmentations) one process would see with the same global batch size.

* Stage 2 wraps the student in :class:`~torch.nn.parallel.DistributedDataParallel`.
* Stage 1 averages the student's (and projections') gradients with one
  ``all_reduce`` per parameter instead: its loss is built from features taken
  by hooks and the forward pass stops after the last tap, which DDP's reducer
  (it expects the loss to come from the wrapped module's outputs) does not
  support. The teacher is never wrapped: it is frozen and in eval mode.
* BatchNorm statistics are per rank (DDP's default; no SyncBatchNorm), so a
  BatchNorm network matches a single process only approximately.
* Only rank 0 writes files; evaluation is sharded and its counts summed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_from_env", "shard", "all_reduce_sum", "average_gradients"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_from_env(device_kind: str = "auto") -> DistInfo:
    """Join the process group torchrun set up (gloo on CPU, NCCL on GPU); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_kind != "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    return DistInfo(rank, world, local)


def shard(n: int, info: DistInfo) -> slice:
    """This rank's contiguous slice of ``n`` items (``n`` must divide evenly for training batches)."""
    per = n // info.world
    return slice(info.rank * per, (info.rank + 1) * per)


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def average_gradients(params: list[torch.Tensor], info: DistInfo) -> None:
    """Mean of every parameter's gradient across ranks (stage 1; DDP does this in stage 2)."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # one collective for all gradients
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(info.world)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
