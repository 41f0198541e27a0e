"""Growth of the plain VGG-style CNNs (:class:`fspladder.models.PlainCNN`, ``vgg8``, ``vgg``): Net2Net.

* **deeper**: the previous network's stem, head and layers are copied into the
  first layers of each section; every extra layer is a conv-BN-ReLU layer with
  its ``skip`` buffer set to 1 and a zero BatchNorm scale and shift, so it
  outputs ``relu(x + 0) = x`` (its input is post-ReLU): an exact identity in
  train and in eval mode. A pass-through BatchNorm without the skip cannot be
  exact in train mode (batch statistics; see :mod:`fspladder.models.plain`).
  Without ``identity`` (``grow-fsp``) the extra layers keep their fresh weights
  (and the skip).
* **wider** (Net2WiderNet, :mod:`.net2net`): each layer's output channels get
  their own map, except a layer with a skip, whose output shares its input's.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..models import PlainCNN
from .net2net import Map, Widener, copy_bn, copy_conv, copy_linear
from .registry import register_growth
from .sectioned import SectionedGrowth

__all__ = ["PlainCNNGrowth"]

SECTIONS = ("layer1", "layer2", "layer3")


@register_growth
class PlainCNNGrowth(SectionedGrowth):
    """The plain VGG-style CNNs: deeper by identity layers (with a skip), wider by Net2Wider."""

    name = "vgg"
    models = (PlainCNN,)
    sections = SECTIONS
    unit = "layers"

    def grow(self, prev: PlainCNN, cur: PlainCNN, *, identity: bool, noise: float,  # type: ignore[override]
             seed: int) -> dict[str, object]:
        wid = Widener(noise, torch.Generator().manual_seed(seed))

        def copy_layer(dst: nn.Module, src: nn.Module, m_in: Map | None) -> Map:
            """Copy one conv-BN-ReLU layer; returns the map of its output channels."""
            skip = bool(getattr(src, "keeps_shape", False) and src.skip.item())
            c_old, c_new = src[0].out_channels, dst[0].out_channels
            m_out = m_in if (skip and m_in is not None) else wid.channel_map(c_old, c_new)  # a skip adds x: x's map
            copy_conv(dst[0], src[0], m_out[0], m_in)
            copy_bn(dst[1], src[1], m_out[0])
            if getattr(dst, "keeps_shape", False):
                dst.skip.fill_(float(skip))
            return m_out

        m = copy_layer(cur.stem, prev.stem, None)  # image channels are not widened
        for name in SECTIONS:
            old, new = list(getattr(prev, name)), list(getattr(cur, name))
            for src, dst in zip(old, new):
                m = copy_layer(dst, src, m)
            for dst in new[len(old):]:  # an added layer keeps its input's shape: x + bn(conv(x)), x's map
                dst.skip.fill_(1.0)
                if identity:
                    dst[1].weight.zero_()
                    dst[1].bias.zero_()
        copy_linear(cur.fc, prev.fc, m)
        return {"deeper": any(len(getattr(cur, n)) > len(getattr(prev, n)) for n in SECTIONS),
                "wider": cur.width > prev.width,
                "from": f"vgg blocks {prev.blocks} width {prev.width}",
                "to": f"vgg blocks {cur.blocks} width {cur.width}",
                "new_blocks": "identity" if identity else "fresh", "noise": noise}
