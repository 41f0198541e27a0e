"""A plain VGG-style CNN: a different family from the ResNets (no residual connections).

Used as a cross-family teacher (issue 9): function-preserving growth cannot turn
it into a ResNet, while FSP transfer needs only taps whose channel counts match.
Its sections have the CIFAR-ResNet channel counts (16w, 32w, 64w at strides 1,
2, 4), so its default FSP pairs have the same shapes as a ResNet's.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .sections import SECTION_FSP_PAIRS, kaiming_init, make_sections, section_feature_info

__all__ = ["PlainCNN", "vgg8", "vgg"]


def _conv_bn(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU())


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
