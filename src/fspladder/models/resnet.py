"""CIFAR-style residual networks of depth 6n+2 (He et al. 2016, section 4.2).

These are the networks of the FSP paper (Yim et al., CVPR 2017, section 4.1):
a 3x3 stem, three sections of ``n`` basic blocks with 16/32/64 channels (times
``width``), global average pooling and a linear classifier. The FSP taps are
the first and last layer of each section [patent 0117-0118]: the section's
input (the previous section's output, or the stem) and its output.

The model's ``forward`` is plain; features are read through forward hooks
(:mod:`fspladder.flow`), never returned by the model itself.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register_model
from .sections import SECTION_FSP_PAIRS, kaiming_init, make_sections, section_feature_info

__all__ = ["CifarResNet", "BasicBlock"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (option B shortcut)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images.

    Args:
        depth: total depth, ``6 * n + 2`` with ``n >= 1`` (8, 14, 20, 32, 44, 56, 110).
        width: channel multiplier; sections have ``16w, 32w, 64w`` channels.
        in_chans: input image channels (1 for Fashion-MNIST, 3 for CIFAR).
        num_classes: classifier outputs.
    """

    def __init__(
        self, depth: int = 20, width: int = 1, in_chans: int = 3, num_classes: int = 10
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, ...), got {depth}")
        if width < 1 or in_chans < 1 or num_classes < 1:
            raise ValueError(
                f"width, in_chans and num_classes must be >= 1, got {width}, {in_chans}, {num_classes}"
            )
        n = (depth - 2) // 6
        chs = [16 * width, 32 * width, 64 * width]
        self.depth, self.width, self.blocks_per_section = depth, width, n
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, chs[0], 3, 1, 1, bias=False), nn.BatchNorm2d(chs[0]), nn.ReLU()
        )
        self.layer1, self.layer2, self.layer3 = make_sections(BasicBlock, chs[0], chs, n)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chs[2], num_classes)
        self.feature_info = section_feature_info(chs)  # checked against real outputs in tests/test_models.py
        self.default_fsp_pairs = list(SECTION_FSP_PAIRS)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def _make(depth: int):
    def factory(width: int = 1, in_chans: int = 3, num_classes: int = 10) -> CifarResNet:
        return CifarResNet(depth, width=width, in_chans=in_chans, num_classes=num_classes)

    factory.__name__ = f"resnet{depth}"
    factory.__doc__ = f"CIFAR-style ResNet-{depth} ({(depth - 2) // 6} blocks per section)."
    return factory


for _depth in (8, 14, 20, 26, 32, 44, 56, 110):
    register_model(_make(_depth))


@register_model
def resnet(depth: int = 20, width: int = 1, in_chans: int = 3, num_classes: int = 10) -> CifarResNet:
    """CIFAR-style ResNet of any depth 6n+2 (``depth`` is a keyword)."""
    return CifarResNet(depth, width=width, in_chans=in_chans, num_classes=num_classes)
