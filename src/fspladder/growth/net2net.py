"""Net2WiderNet's building blocks (Chen, Goodfellow and Shlens, ICLR 2016), shared by the convolutional families.

Channel ``i`` of a wider layer is a copy of channel ``g(i) = i mod c`` of the
narrower one (``c`` its channel count); the layers that read a replicated
channel split its outgoing weights between the copies so that their sum is
unchanged. BatchNorm parameters and running statistics are copied per channel.
**noise** breaks the copies' symmetry without breaking the function: the
outgoing weights are split in random proportions ``(1 + noise * N(0, 1))``,
normalised to sum to one, instead of equally (equal splits leave the copies
identical forever: they receive equal gradients).

The maps are built and applied on the CPU (float64 splits), whatever device
the networks are on: growth runs once, and ``copy_`` moves the result to the
student's device.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["Widener", "rows", "cols", "copy_bn", "copy_conv", "copy_linear", "Map"]

Map = tuple[torch.Tensor, torch.Tensor]  # (g: new channel -> old channel, (c_new,); r: split proportions, (c_new,))


class Widener:
    """Channel maps and split proportions for widening ``c_old`` channels to ``c_new``."""

    def __init__(self, noise: float, gen: torch.Generator) -> None:
        self.noise, self.gen = noise, gen

    def channel_map(self, c_old: int, c_new: int) -> Map:
        """``g`` (new channel -> old channel, ``(c_new,)``) and the proportion ``r`` (float64, ``(c_new,)``)
        of the old channel's outgoing weights each copy carries; ``r`` sums to 1 over each old channel's copies."""
        g = torch.arange(c_new) % c_old
        return g, self.split(g, c_old)

    def split(self, g: torch.Tensor, c_old: int) -> torch.Tensor:
        """The proportion (float64, ``(len(g),)``) of old unit ``g[i]``'s outgoing weights copy ``i`` carries:
        ``1 + noise * N(0, 1)`` (clamped to +-2), normalised to sum to 1 over each old unit's copies."""
        w = torch.ones(len(g), dtype=torch.float64)
        if self.noise:
            w += self.noise * torch.randn(len(g), generator=self.gen, dtype=torch.float64).clamp(-2.0, 2.0)
        totals = torch.zeros(c_old, dtype=torch.float64).index_add_(0, g, w)
        return w / totals[g]


def rows(t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Output channels replicated: ``(c_old, ...) -> (c_new, ...)``."""
    return t[g]


def cols(t: torch.Tensor, g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Input channels replicated and split: ``(o, c_old, ...) -> (o, c_new, ...)``, in float64 then cast back."""
    shape = (1, -1) + (1,) * (t.dim() - 2)
    return (t.double()[:, g] * r.view(shape)).to(t.dtype)


def copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, g: torch.Tensor) -> None:
    """``dst`` (``c_new`` channels) takes ``src``'s parameters and running statistics, channel ``i`` from ``g[i]``."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(rows(getattr(src, name).detach().cpu(), g))
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def copy_conv(dst: nn.Conv2d, src: nn.Conv2d, out_map: torch.Tensor, in_map: Map | None) -> None:
    """``dst``'s weight ``(c_out_new, c_in_new, k, k)`` from ``src``'s: output channels replicated by ``out_map``,
    input channels replicated and split by ``in_map`` (None: the input is not widened, e.g. the image)."""
    w = rows(src.weight.detach().cpu(), out_map)  # (c_out_new, c_in_old, k, k)
    dst.weight.copy_(w if in_map is None else cols(w, *in_map))
    if src.bias is not None and dst.bias is not None:
        dst.bias.copy_(rows(src.bias.detach().cpu(), out_map))


def copy_linear(dst: nn.Linear, src: nn.Linear, in_map: Map) -> None:
    """A classifier reading widened features: its input columns split by ``in_map``, its outputs unchanged."""
    dst.weight.copy_(cols(src.weight.detach().cpu(), *in_map))
    if src.bias is not None and dst.bias is not None:
        dst.bias.copy_(src.bias)
