"""Growth of the CIFAR-style ResNets (:class:`fspladder.models.CifarResNet`): Net2Net.

Chen, Goodfellow and Shlens, "Net2Net: Accelerating Learning via Knowledge
Transfer", ICLR 2016. The grown student computes exactly the previous
network's function (to float32 rounding), in eval and in train mode:

* **deeper** (Net2DeeperNet): the previous network's stem, head and blocks are
  copied into the first blocks of each section; every extra block gets a zero
  scale and shift in its last BatchNorm, so it outputs ``relu(x + 0) = x`` (its
  input is already post-ReLU): an identity.
* **wider** (Net2WiderNet, :mod:`.net2net`): every tensor summed into a
  residual connection (the stem, each block's second BatchNorm, each shortcut)
  uses the same channel map, one per section; a block's inner channels have
  their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn

from ..models import CifarResNet
from .net2net import Widener, cols, copy_bn, copy_conv
from .registry import register_growth
from .sectioned import SectionedGrowth

__all__ = ["CifarResNetGrowth", "SECTIONS"]

SECTIONS = ("layer1", "layer2", "layer3")


def _blocks(net: CifarResNet) -> Iterator[tuple[int, int, nn.Module]]:
    for s, name in enumerate(SECTIONS):
        for b, block in enumerate(getattr(net, name)):
            yield s, b, block


@register_growth
class CifarResNetGrowth(SectionedGrowth):
    """The CIFAR ResNets (``resnet``, ``resnetN``): deeper by identity blocks, wider by Net2Wider."""

    name = "cifar-resnet"
    models = (CifarResNet,)
    sections = SECTIONS

    def grow(self, prev: CifarResNet, cur: CifarResNet, *, identity: bool, noise: float,  # type: ignore[override]
             seed: int) -> dict[str, object]:
        wid = Widener(noise, torch.Generator().manual_seed(seed))
        c_old = [16 * prev.width, 32 * prev.width, 64 * prev.width]
        c_new = [16 * cur.width, 32 * cur.width, 64 * cur.width]
        streams = [wid.channel_map(o, n) for o, n in zip(c_old, c_new)]  # one map per section's residual stream
        # Stem: image channels are not widened.
        copy_conv(cur.stem[0], prev.stem[0], streams[0][0], None)
        copy_bn(cur.stem[1], prev.stem[1], streams[0][0])
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
            copy_conv(block.conv1, src.conv1, inner[0], stream_in)
            copy_bn(block.bn1, src.bn1, inner[0])
            copy_conv(block.conv2, src.conv2, g_out, inner)
            copy_bn(block.bn2, src.bn2, g_out)
            if isinstance(src.shortcut, nn.Sequential):
                copy_conv(block.shortcut[0], src.shortcut[0], g_out, stream_in)
                copy_bn(block.shortcut[1], src.shortcut[1], g_out)
        g3, r3 = streams[2]
        cur.fc.weight.copy_(cols(prev.fc.weight.detach().cpu(), g3, r3))
        cur.fc.bias.copy_(prev.fc.bias)
        return {"deeper": cur.blocks_per_section > prev.blocks_per_section, "wider": cur.width > prev.width,
                "from": f"resnet{prev.depth} width {prev.width}", "to": f"resnet{cur.depth} width {cur.width}",
                "new_blocks": "identity" if identity else "fresh", "noise": noise}
