"""Growth of the ImageNet-layout ResNets (:class:`fspladder.models.ImageNetResNet`), basic and bottleneck: Net2Net.

* **deeper**: stem, head and the previous network's blocks are copied into the
  first blocks of each stage; every extra block gets a zero scale and shift in
  its last BatchNorm (``bn2`` of a basic block, ``bn3`` of a bottleneck), so it
  outputs ``relu(x + 0) = x`` (``x`` is post-ReLU): an exact identity in train
  and eval mode.
* **wider** (Net2WiderNet, :mod:`.net2net`): one channel map per stage's
  residual stream (the stem's when a stage's first block has no downsampling
  shortcut), shared by every block output and shortcut summed into it; each
  block's inner channels (one map for a basic block, two for a bottleneck)
  have their own.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..models.resnet_imagenet import STAGES, ImageNetResNet
from .net2net import Map, Widener, copy_bn, copy_conv, copy_linear
from .registry import register_growth
from .sectioned import SectionedGrowth

__all__ = ["ImageNetResNetGrowth"]



def _convs(block: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """The (conv, BatchNorm) pairs of a block's residual branch, in order."""
    pairs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
    return pairs + [(block.conv3, block.bn3)] if hasattr(block, "conv3") else pairs


@register_growth
class ImageNetResNetGrowth(SectionedGrowth):
    """The ImageNet-layout ResNets (``resnet10i``..``resnet50b``, ``resnet_imagenet``)."""

    name = "imagenet-resnet"
    models = (ImageNetResNet,)
    sections = STAGES

    def kind_problem(self, prev: ImageNetResNet, cur: ImageNetResNet) -> str | None:  # type: ignore[override]
        if cur.block != prev.block:
            return f"the networks have {prev.block} and {cur.block} blocks: growth copies blocks of one kind"
        if cur.stem_kernel != prev.stem_kernel:
            return f"the stems' kernels differ ({prev.stem_kernel} and {cur.stem_kernel})"
        return None

    def grow(self, prev: ImageNetResNet, cur: ImageNetResNet, *, identity: bool, noise: float,  # type: ignore[override]
             seed: int) -> dict[str, object]:
        wid = Widener(noise, torch.Generator().manual_seed(seed))
        stream: Map = wid.channel_map(prev.stem[0].out_channels, cur.stem[0].out_channels)
        copy_conv(cur.stem[0], prev.stem[0], stream[0], None)  # image channels are not widened
        copy_bn(cur.stem[1], prev.stem[1], stream[0])
        for name in STAGES:
            old, new = list(getattr(prev, name)), list(getattr(cur, name))
            for b, (src, dst) in enumerate(zip(old, new)):
                m_in = stream
                if src.downsample is not None:  # the stage's stream gets its own map
                    stream = wid.channel_map(src.downsample[0].out_channels, dst.downsample[0].out_channels)
                    copy_conv(dst.downsample[0], src.downsample[0], stream[0], m_in)
                    copy_bn(dst.downsample[1], src.downsample[1], stream[0])
                m = m_in
                pairs_src, pairs_dst = _convs(src), _convs(dst)
                for k, ((cs, bs), (cd, bd)) in enumerate(zip(pairs_src, pairs_dst)):
                    last = k == len(pairs_src) - 1
                    m_out = stream if last else wid.channel_map(cs.out_channels, cd.out_channels)  # inner: own map
                    copy_conv(cd, cs, m_out[0], m)
                    copy_bn(bd, bs, m_out[0])
                    m = m_out
            for dst in new[len(old):]:  # a new block: an identity, or left fresh for grow-fsp
                if identity:
                    last_bn = _convs(dst)[-1][1]
                    last_bn.weight.zero_()
                    last_bn.bias.zero_()
        copy_linear(cur.fc, prev.fc, stream)
        return {"deeper": any(c > p for c, p in zip(cur.layers, prev.layers)), "wider": cur.width > prev.width,
                "from": f"{prev.block} resnet {list(prev.layers)} width {prev.width}",
                "to": f"{cur.block} resnet {list(cur.layers)} width {cur.width}",
                "new_blocks": "identity" if identity else "fresh", "noise": noise}
