"""Listing a model's tap-able modules with their output shapes (``fspladder layers``): ``(C, H, W)`` for
image maps, ``(N, d)`` for a transformer's token sequences (both taps of an FSP pair must be of one kind)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .models import create_for_data

__all__ = ["layer_shapes", "layer_table"]


@torch.no_grad()
def layer_shapes(model: nn.Module, input_shape: Sequence[int]) -> list[tuple[str, str, tuple[int, ...] | None]]:
    """``(name, type, output shape without batch)`` for every named module, in forward order."""
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []
    handles = []
    for name, m in model.named_modules():
        if not name:
            continue

        def hook(mod, inp, out, name=name):
            if isinstance(out, torch.Tensor) and name not in shapes:
                shapes[name] = tuple(out.shape[1:])
                order.append(name)

        handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    types = {n: type(m).__name__ for n, m in model.named_modules() if n}
    # Forward hooks fire children-first; list modules in definition order instead.
    return [(n, types[n], shapes.get(n)) for n in types]


def layer_table(model_name: str, input_shape: Sequence[int], num_classes: int = 10) -> str:
    model, _ = create_for_data(model_name, input_shape[0], num_classes, image_size=input_shape[1:])
    rows = layer_shapes(model, input_shape)
    w = max(len(n) for n, _, _ in rows)
    t = max(len(ty) for _, ty, _ in rows)
    lines = [f"{model_name}: input {tuple(input_shape)}; tap a module's output as NAME or its input as NAME:input",
             f"{'module'.ljust(w)}  {'type'.ljust(t)}  output shape (C, H, W), or (N, d) for N tokens of width d"]
    pairs = getattr(model, "default_fsp_pairs", None)
    for n, ty, s in rows:
        lines.append(f"{n.ljust(w)}  {ty.ljust(t)}  {s if s is not None else '(not called)'}")
    if pairs:
        lines.append("default FSP pairs: " + ", ".join(f"({a}, {b})" for a, b in pairs))
    return "\n".join(lines)
