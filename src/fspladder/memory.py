"""How much memory is free where tensors will live (for the teacher cache and the data path decisions), and how
much training the models needs (``fspladder check``'s model estimate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["free_bytes", "FLOAT32", "optimizer_copies", "training_bytes", "model_memory",
           "chain_memory"]


def free_bytes(device: torch.device) -> int | None:
    """Free memory where ``device``'s tensors live, in bytes; None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
        except (OSError, ValueError, IndexError):
            return None
    return None


FLOAT32 = 4  # bytes per parameter: weights, gradients and optimizer state are float32 (autocast keeps them so)


def optimizer_copies(optimizer: str) -> int:
    """Parameter-sized tensors an optimizer keeps: Adam two (its moments), SGD one (momentum)."""
    return 2 if optimizer == "adam" else 1


def training_bytes(params: int, optimizer_copies: int, ema: bool, snapshot: bool) -> int:
    """Bytes to train a network of ``params`` parameters beyond its weights: gradients, optimizer state, an EMA
    copy, and (``snapshot``: the host is the training device) the loop's last-good-epoch copy of weights and
    optimizer state. Activations are not counted (they scale with the batch)."""
    copies = 1 + optimizer_copies + int(ema) + (1 + optimizer_copies if snapshot else 0)
    return params * FLOAT32 * copies


def model_memory(device: torch.device, resident_params: int, trained: list[tuple[str, int, int]],
                 what: str = "the chain's networks") -> tuple[str, str | None, str | None]:
    """``(note, warning, problem)`` on whether the networks fit in ``device``'s free memory.

    ``resident_params``: parameters of every network held at once (their float32 weights); ``trained``:
    ``(name, params, extra bytes)`` of each network that trains (:func:`training_bytes`), the largest of which
    counts. A problem when that exceeds the free memory (training could not even hold its state), a warning above
    half of it (activations and the data need room too); neither where free memory cannot be read."""
    weights = resident_params * FLOAT32
    name, params, extra = max(trained, key=lambda t: t[2]) if trained else ("", 0, 0)
    need = weights + extra
    free = free_bytes(device)
    room = f"{free / 2**20:,.0f} MiB free on {device}" if free is not None else f"free memory on {device} unknown"
    note = (f"models: {resident_params:,} parameters in {what} = {weights / 2**20:,.1f} MiB of float32 weights; "
            f"training {name} ({params:,} parameters) adds {extra / 2**20:,.1f} MiB of gradients and optimizer "
            f"state (activations not counted); {room}")
    if free is None:
        return note, None, None
    if need > free:
        return note, None, (f"models: {what} need {need / 2**20:,.0f} MiB to train (float32 weights "
                            f"{weights / 2**20:,.0f} MiB, gradients and optimizer state of {name} "
                            f"{extra / 2**20:,.0f} MiB, before any activation) but only {free / 2**20:,.0f} MiB "
                            f"are free on {device}; choose smaller models or a device with more memory")
    if need > free / 2:
        return note, (f"models: {what} need {need / 2**20:,.0f} MiB to train before any activation, more than half "
                      f"of the {free / 2**20:,.0f} MiB free on {device}; the batch's activations and the data may "
                      "not fit (smaller stage batch sizes or models need less)"), None
    return note, None, None


def chain_memory(tasks: list[Any], chain: list[Any], device: torch.device) -> tuple[str, str | None, str | None]:
    """:func:`model_memory` of a ladder: every network of ``chain`` (teacher first) is held at once; each rung
    trains by its task's stages' optimizers (stage 1's only where its recipe has one) and EMA
    (:class:`fspladder.chain.RungTask`)."""
    trained = []
    for task, r in zip(tasks, chain[1:]):
        s2 = task.s2
        copies = optimizer_copies(s2.optimizer)
        if task.recipe.has_stage1:
            copies = max(copies, optimizer_copies(task.s1.optimizer))
        trained.append((r.name, r.num_params, training_bytes(r.num_params, copies, bool(s2.ema),
                                                             device.type == "cpu")))
    return model_memory(device, sum(r.num_params for r in chain), trained)
