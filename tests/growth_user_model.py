"""A model fspladder does not ship, registered with @register_model and given growth with @register_growth
(docs/models.md's "Growth for your own model" example, as the tests use it)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from fspladder import GrowthFamily, register_growth, register_model
from fspladder.growth.net2net import Widener, copy_bn, copy_conv, copy_linear


class Block(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch)

    def forward(self, x):
        return F.relu(x + self.bn(self.conv(x)))


class TinyNet(nn.Module):
    def __init__(self, depth: int = 1, width: int = 8, in_chans: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.width = width
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(*[Block(width) for _ in range(depth)])
        self.head = nn.Linear(width, num_classes)
        self.default_fsp_pairs = [("stem", "blocks")]  # FSP taps: (B, width, H/2, W/2) each

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


@register_model
def tiny_growable(depth: int = 1, width: int = 8, in_chans: int = 1, num_classes: int = 10) -> TinyNet:
    return TinyNet(depth, width, in_chans, num_classes)


@register_growth
class TinyGrowth(GrowthFamily):
    name, models = "tiny", (TinyNet,)

    def problem(self, prev, cur):
        if cur.width < prev.width or len(cur.blocks) < len(prev.blocks):
            return "the student is narrower or shallower; use init: random (e.g. recipe patent)"
        return None

    def copies(self, prev, cur):
        return [cur.stem, cur.head, *cur.blocks[: len(prev.blocks)]]

    def grow(self, prev, cur, *, identity, noise, seed):
        g, r = Widener(noise, torch.Generator().manual_seed(seed)).channel_map(prev.width, cur.width)
        copy_conv(cur.stem[0], prev.stem[0], g, None)  # one map: the residual stream
        copy_bn(cur.stem[1], prev.stem[1], g)
        for old, new in zip(prev.blocks, cur.blocks):
            copy_conv(new.conv, old.conv, g, (g, r))
            copy_bn(new.bn, old.bn, g)
        for new in cur.blocks[len(prev.blocks):]:  # new blocks: relu(x + 0) = x
            if identity:
                new.bn.weight.zero_()
                new.bn.bias.zero_()
        copy_linear(cur.head, prev.head, (g, r))
        return {"deeper": len(cur.blocks) > len(prev.blocks), "wider": cur.width > prev.width}
