"""Function-preserving growth of a trained ResNet into a deeper and/or wider one (Net2Net).

Chen, Goodfellow and Shlens, "Net2Net: Accelerating Learning via Knowledge
Transfer", ICLR 2016. The grown student computes exactly the previous
network's function (to float32 rounding), in eval and in train mode:

* **deeper** (Net2DeeperNet): the previous network's stem, head and blocks are
  copied into the first blocks of each section; every extra block gets a zero
  scale and shift in its last BatchNorm, so it outputs ``relu(x + 0) = x`` (its
  input is already post-ReLU): an identity.
* **wider** (Net2WiderNet): channel ``i`` of a wider layer is a copy of channel
  ``g(i) = i mod c`` of the narrower one (``c`` its channel count); the layers
  that read a replicated channel split its outgoing weights between the copies
  so that their sum is unchanged. BatchNorm parameters and running statistics
  are copied per channel. Every tensor summed into a residual connection (the
  stem, each block's second BatchNorm, each shortcut) uses the same map, one
  per section; a block's inner channels have their own.
* **noise** breaks the copies' symmetry without breaking the function: the
  outgoing weights are split between copies in random proportions
  ``(1 + noise * N(0, 1))``, normalised to sum to one, instead of equally.
  Equal splits (``noise=0``) leave the copies identical forever (they receive
  equal gradients), so the recipes use a little noise; tests use none.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn

from .models import CifarResNet

__all__ = ["growth_problem", "grow", "grown_copies", "GROW_NOISE"]

GROW_NOISE = 0.1  # default spread of the split proportions between copies (a recipe's growth)
SECTIONS = ("layer1", "layer2", "layer3")


def growth_problem(prev: nn.Module, cur: nn.Module) -> str | None:
    """Why ``cur`` cannot be grown from ``prev`` (None when it can), with the init that would work."""
    fix = "use init: random (a recipe without growth, e.g. patent or w2s)"
    if not isinstance(prev, CifarResNet) or not isinstance(cur, CifarResNet):
        return (f"growth needs two built-in ResNets (resnet, resnetN), got {type(prev).__name__} -> "
                f"{type(cur).__name__}: a network of another family has no blocks to copy into; {fix}")
    if cur.width < prev.width:
        return f"the student is narrower than the network before it (width {cur.width} < {prev.width}); {fix}"
    if cur.blocks_per_section < prev.blocks_per_section:
        return (f"the student has fewer blocks per section than the network before it "
                f"({cur.blocks_per_section} < {prev.blocks_per_section}); {fix}")
    if cur.stem[0].in_channels != prev.stem[0].in_channels:
        return (f"the networks read images of {prev.stem[0].in_channels} and {cur.stem[0].in_channels} channels; "
                f"{fix}")
    if cur.fc.out_features != prev.fc.out_features:
        return (f"the networks predict {prev.fc.out_features} and {cur.fc.out_features} classes: growth copies "
                f"the head; {fix}")
    return None


def grown_copies(prev: CifarResNet, cur: CifarResNet) -> list[nn.Module]:
    """The parts of ``cur`` that :func:`grow` copies from ``prev``: stem, head, and the first ``n_prev``
    blocks of each section; every other block is new."""
    parts: list[nn.Module] = [cur.stem, cur.fc]
    for name in SECTIONS:
        parts += list(getattr(cur, name))[: len(getattr(prev, name))]
    return parts


class _Widener:
    """Channel maps and split proportions for widening ``c_old`` channels to ``c_new``."""

    def __init__(self, noise: float, gen: torch.Generator) -> None:
        self.noise, self.gen = noise, gen

    def channel_map(self, c_old: int, c_new: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``g`` (new channel -> old channel, ``(c_new,)``) and the proportion ``r`` (float64, ``(c_new,)``)
        of the old channel's outgoing weights each copy carries; ``r`` sums to 1 over each old channel's copies."""
        g = torch.arange(c_new) % c_old
        w = torch.ones(c_new, dtype=torch.float64)
        if self.noise:
            w += self.noise * torch.randn(c_new, generator=self.gen, dtype=torch.float64).clamp(-2.0, 2.0)
        totals = torch.zeros(c_old, dtype=torch.float64).index_add_(0, g, w)
        return g, w / totals[g]


def _rows(t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Output channels replicated: ``(c_old, ...) -> (c_new, ...)``."""
    return t[g]


def _cols(t: torch.Tensor, g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Input channels replicated and split: ``(o, c_old, ...) -> (o, c_new, ...)``, in float64 then cast back."""
    shape = (1, -1) + (1,) * (t.dim() - 2)
    return (t.double()[:, g] * r.view(shape)).to(t.dtype)


# The maps are built and applied on the CPU (float64 splits), whatever device the networks are on:
# growth runs once, and copy_ moves the result to the student's device.
def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, g: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(_rows(getattr(src, name).detach().cpu(), g))
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _conv(dst: nn.Conv2d, src: nn.Conv2d, out_map: torch.Tensor, in_map: tuple[torch.Tensor, torch.Tensor] | None) -> None:
    w = _rows(src.weight.detach().cpu(), out_map)  # (c_out_new, c_in_old, k, k)
    dst.weight.copy_(w if in_map is None else _cols(w, *in_map))


def _blocks(net: CifarResNet) -> Iterator[tuple[int, int, nn.Module]]:
    for s, name in enumerate(SECTIONS):
        for b, block in enumerate(getattr(net, name)):
            yield s, b, block


@torch.no_grad()
def grow(prev: CifarResNet, cur: CifarResNet, *, identity: bool = True, noise: float = 0.0,
         seed: int = 0) -> dict[str, object]:
    """Copy ``prev`` into ``cur``, widening and deepening it; with ``identity``, ``cur`` computes ``prev``'s function.

    Without ``identity`` the extra blocks keep ``cur``'s own initialisation (the ``grow-fsp`` recipe then
    aligns them in stage 1). ``noise`` spreads the split proportions between channel copies (see the
    module doc); ``seed`` makes that spread reproducible. Returns what was done, for the records.
    """
    problem = growth_problem(prev, cur)
    if problem is not None:
        raise ValueError(problem)
    wid = _Widener(noise, torch.Generator().manual_seed(seed))
    c_old = [16 * prev.width, 32 * prev.width, 64 * prev.width]
    c_new = [16 * cur.width, 32 * cur.width, 64 * cur.width]
    streams = [wid.channel_map(o, n) for o, n in zip(c_old, c_new)]  # one map per section's residual stream
    # Stem: image channels are not widened.
    _conv(cur.stem[0], prev.stem[0], streams[0][0], None)
    _copy_bn(cur.stem[1], prev.stem[1], streams[0][0])
    prev_blocks = {(s, b): block for s, b, block in _blocks(prev)}
    for s, b, block in _blocks(cur):
        src = prev_blocks.get((s, b))
        if src is None:  # a new block: an identity, or left fresh for grow-fsp
            if identity:
                block.bn2.weight.zero_()
                block.bn2.bias.zero_()
            continue
        stream_in = streams[s - 1] if (b == 0 and s > 0) else streams[s]
        g_out = streams[s][0]
        inner = wid.channel_map(c_old[s], c_new[s])  # the block's own inner channels
        _conv(block.conv1, src.conv1, inner[0], stream_in)
        _copy_bn(block.bn1, src.bn1, inner[0])
        _conv(block.conv2, src.conv2, g_out, inner)
        _copy_bn(block.bn2, src.bn2, g_out)
        if isinstance(src.shortcut, nn.Sequential):
            _conv(block.shortcut[0], src.shortcut[0], g_out, stream_in)
            _copy_bn(block.shortcut[1], src.shortcut[1], g_out)
    g3, r3 = streams[2]
    cur.fc.weight.copy_(_cols(prev.fc.weight.detach().cpu(), g3, r3))
    cur.fc.bias.copy_(prev.fc.bias)
    return {"deeper": cur.blocks_per_section > prev.blocks_per_section, "wider": cur.width > prev.width,
            "from": f"resnet{prev.depth} width {prev.width}", "to": f"resnet{cur.depth} width {cur.width}",
            "new_blocks": "identity" if identity else "fresh", "noise": noise}
