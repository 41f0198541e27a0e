"""Fold eval-mode BatchNorm into the preceding convolution of a frozen network.

Stage 1 runs the previous network forward in every step, frozen and in eval
mode, where BatchNorm is a fixed per-channel affine map. Folding it into the
convolution before it (``W' = W * g / sqrt(v + eps)``, ``b' = (b - mu) * g /
sqrt(v + eps) + beta``) removes one memory-bound pass per layer and leaves the
function unchanged up to float rounding. The folded copy keeps every module
name (folded BatchNorms become ``nn.Identity``), so taps still resolve; a
pair is left alone when a tap reads the convolution's output or the
BatchNorm's input, whose values folding would change.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.fx
import torch.nn as nn

from .flow import Tap

__all__ = ["fold_batchnorm"]


def _conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv name, bn name) where a Conv2d's only consumer is a BatchNorm2d; [] if the model cannot be traced."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # data-dependent control flow etc.: fold nothing, the model still works
        return []
    mods = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0] if node.args else None
        if (isinstance(src, torch.fx.Node) and src.op == "call_module" and isinstance(mods.get(src.target), nn.Conv2d)
                and len(src.users) == 1 and mods[node.target].track_running_stats):
            pairs.append((str(src.target), str(node.target)))
    return pairs


@torch.no_grad()
def fold_batchnorm(model: nn.Module, taps: Iterable[Tap] = ()) -> tuple[nn.Module, int]:
    """An eval-mode copy of ``model`` with BatchNorms folded into their convolutions.

    Returns the copy and how many BatchNorms were folded (0 when tracing fails,
    in which case the copy computes exactly what ``model`` does).
    """
    taps = list(taps)
    out = copy.deepcopy(model).eval()
    busy = {t.module for t in taps if t.kind == "output"}, {t.module for t in taps if t.kind == "input"}
    folded = 0
    for conv_name, bn_name in _conv_bn_pairs(out):
        if conv_name in busy[0] or bn_name in busy[1]:
            continue
        conv, bn = out.get_submodule(conv_name), out.get_submodule(bn_name)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else torch.rsqrt(bn.running_var + bn.eps)
        shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        conv.bias = nn.Parameter((bias - bn.running_mean) * scale + shift, requires_grad=False)
        parent_name, _, leaf = bn_name.rpartition(".")
        setattr(out.get_submodule(parent_name) if parent_name else out, leaf, nn.Identity())
        folded += 1
    for p in out.parameters():
        p.requires_grad_(False)
    return out, folded
