"""A plain VGG-style CNN: a different family from the ResNets (no residual connections).

Used as a cross-family teacher (issue 9): function-preserving growth cannot turn
it into a ResNet, while FSP transfer needs only taps whose channel counts match.
Its sections have the CIFAR-ResNet channel counts (16w, 32w, 64w at strides 1,
2, 4), so its default FSP pairs have the same shapes as a ResNet's.

Growth (:mod:`fspladder.growth.vgg`) adds layers that must start as exact
identities in train *and* eval mode. A conv-BN-ReLU layer cannot: in train
mode BatchNorm normalises with the batch's own statistics, so no fixed scale
and shift passes its (post-ReLU, non-normalised) input through, and stacking
two normalisations leaves an ``eps`` factor. So every layer that keeps its
shape (stride 1, as many channels out as in) carries a ``skip`` buffer: 0, a
plain layer ``relu(bn(conv(x)))`` (every layer of a fresh network, and of a
checkpoint saved before the buffer existed); 1, ``relu(x + bn(conv(x)))``,
set by growth on the layers it adds, whose BatchNorm starts at zero scale and
shift: ``relu(x + 0) = x`` exactly in both modes (``x`` is post-ReLU), and the
BatchNorm still receives gradients.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .sections import SECTION_FSP_PAIRS, kaiming_init, make_sections, section_feature_info

__all__ = ["PlainCNN", "PlainLayer", "vgg8", "vgg"]


class PlainLayer(nn.Sequential):
    """``relu(bn(conv3x3(x)))``; a layer that keeps its shape adds ``skip * x`` before the ReLU (see the module doc).

    The children are ``0`` (conv), ``1`` (BatchNorm), ``2`` (ReLU), as in the ``nn.Sequential`` this replaced,
    so checkpoints keep their keys.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU())
        self.keeps_shape = stride == 1 and in_ch == out_ch
        if self.keeps_shape:
            self.register_buffer("skip", torch.zeros(()))  # 0: plain layer; 1: a layer added by growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self[1](self[0](x))  # (B, C, H, W)
        if self.keeps_shape:
            out = out + self.skip * x  # exactly out where skip == 0
        return self[2](out)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[override]
        if self.keeps_shape and prefix + "skip" not in state_dict:  # saved before the buffer existed: plain
            state_dict[prefix + "skip"] = torch.zeros(())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _conv_bn(in_ch: int, out_ch: int, stride: int = 1) -> PlainLayer:
    return PlainLayer(in_ch, out_ch, stride)


class PlainCNN(nn.Module):
    """Stem conv, three sections of ``blocks`` conv-BN-ReLU layers (the first of sections 2
    and 3 has stride 2), global average pooling and a linear classifier.

    Weight layers: ``1 + 3 * blocks + 1`` (``blocks=2``: 8, hence ``vgg8``).
    """

    def __init__(self, blocks: int = 2, width: int = 1, in_chans: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        if blocks < 1 or width < 1 or in_chans < 1 or num_classes < 1:
            raise ValueError(f"blocks, width, in_chans and num_classes must be >= 1, got "
                             f"{blocks}, {width}, {in_chans}, {num_classes}")
        chs = [16 * width, 32 * width, 64 * width]
        self.blocks, self.width = blocks, width
        self.stem = _conv_bn(in_chans, chs[0])
        self.layer1, self.layer2, self.layer3 = make_sections(_conv_bn, chs[0], chs, blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chs[2], num_classes)
        self.feature_info = section_feature_info(chs)  # checked against real outputs in tests/test_models.py
        self.default_fsp_pairs = list(SECTION_FSP_PAIRS)  # as the ResNets', so the FSP shapes match theirs
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def vgg8(width: int = 1, in_chans: int = 3, num_classes: int = 10) -> PlainCNN:
    """Plain VGG-style CNN with 8 weight layers (2 convs per section), no residual connections."""
    return PlainCNN(2, width=width, in_chans=in_chans, num_classes=num_classes)


@register_model
def vgg(blocks: int = 2, width: int = 1, in_chans: int = 3, num_classes: int = 10) -> PlainCNN:
    """Plain VGG-style CNN with ``blocks`` convs per section (``blocks`` is a keyword)."""
    return PlainCNN(blocks, width=width, in_chans=in_chans, num_classes=num_classes)
