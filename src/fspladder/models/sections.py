"""What the CIFAR-style families share: three sections of 16/32/64 (x width) channels at strides
1, 2, 4, tapped at the stem and at each section's output."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from .registry import FeatureInfo

__all__ = ["make_sections", "section_feature_info", "SECTION_FSP_PAIRS", "kaiming_init"]

# One FSP pair per section: (section input, section output) [patent 0118].
SECTION_FSP_PAIRS = [("stem", "layer1"), ("layer1", "layer2"), ("layer2", "layer3")]


def make_sections(block: Callable[[int, int, int], nn.Module], in_ch: int, chs: list[int],
                  blocks: int) -> list[nn.Sequential]:
    """``len(chs)`` sections of ``blocks`` blocks ``block(in_ch, out_ch, stride)``; the first block of
    every section after the first has stride 2."""
    sections = []
    for i, ch in enumerate(chs):
        layers = []
        for b in range(blocks):
            layers.append(block(in_ch, ch, 2 if (i > 0 and b == 0) else 1))
            in_ch = ch
        sections.append(nn.Sequential(*layers))
    return sections


def section_feature_info(chs: list[int]) -> list[FeatureInfo]:
    """Tap-able features of a stem plus three sections (checked against real outputs in tests)."""
    return [FeatureInfo("stem", chs[0], 1), FeatureInfo("layer1", chs[0], 1),
            FeatureInfo("layer2", chs[1], 2), FeatureInfo("layer3", chs[2], 4)]


def kaiming_init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
