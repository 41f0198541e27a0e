"""ResNets in the ImageNet layout (He et al. 2016, table 1), with a width multiplier for small images on a CPU.

A strided stem (a ``stem_kernel`` x ``stem_kernel`` convolution with stride 2,
BatchNorm, ReLU, and a 3x3 max pool with stride 2), four stages of basic
(two 3x3) or bottleneck (1x1, 3x3, 1x1 with expansion 4) blocks with
``16w, 32w, 64w, 128w`` inner channels at strides 4, 8, 16, 32 (``w`` the
width; torchvision's ResNets are ``w = 4``, ``stem_kernel = 7``), global
average pooling and a linear classifier. Downsampling shortcuts are a 1x1
convolution and a BatchNorm (``downsample``, as in torchvision), in the first
block of a stage whose shape changes.

FSP taps: the stem and each stage's output; the default pairs are (stage
input, stage output) for each of the four stages [patent 0117-0118].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import FeatureInfo, register_model
from .sections import kaiming_init

__all__ = ["ImageNetResNet", "ImageNetBasicBlock", "Bottleneck", "BLOCKS"]

STAGES = ("layer1", "layer2", "layer3", "layer4")


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class ImageNetBasicBlock(nn.Module):
    """Two 3x3 convolutions and a residual connection; ``expansion = 1``."""

    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.downsample = _downsample(in_ch, ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (``expansion = 4``) and a residual connection (ResNet v1.5)."""

    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.conv3 = nn.Conv2d(ch, ch * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(ch * 4)
        self.downsample = _downsample(in_ch, ch * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


BLOCKS: dict[str, type[nn.Module]] = {"basic": ImageNetBasicBlock, "bottleneck": Bottleneck}


class ImageNetResNet(nn.Module):
    """ResNet in the ImageNet layout.

    Args:
        block: ``"basic"`` or ``"bottleneck"``.
        layers: blocks per stage, four numbers >= 1 (``(2, 2, 2, 2)``: ResNet-18 with basic blocks).
        width: channel multiplier; stages have ``16w, 32w, 64w, 128w`` inner channels (times 4 after a
            bottleneck's expansion).
        stem_kernel: 3 (small images) or 7 (ImageNet's).
        in_chans, num_classes: input channels and classifier outputs.
    """

    def __init__(self, block: str = "basic", layers: tuple[int, ...] | list[int] = (2, 2, 2, 2), width: int = 1,
                 stem_kernel: int = 3, in_chans: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {', '.join(BLOCKS)}, got {block!r}")
        layers = tuple(int(n) for n in layers)
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be four block counts >= 1, got {list(layers)}")
        if stem_kernel not in (3, 5, 7):
            raise ValueError(f"stem_kernel must be 3, 5 or 7, got {stem_kernel}")
        if width < 1 or in_chans < 1 or num_classes < 1:
            raise ValueError(f"width, in_chans and num_classes must be >= 1, got {width}, {in_chans}, {num_classes}")
        cls = BLOCKS[block]
        self.block, self.layers, self.width, self.stem_kernel = block, layers, width, stem_kernel
        base = 16 * width
        self.stem = nn.Sequential(nn.Conv2d(in_chans, base, stem_kernel, 2, stem_kernel // 2, bias=False),
                                  nn.BatchNorm2d(base), nn.ReLU(), nn.MaxPool2d(3, 2, 1))  # (B, 16w, H/4, W/4)
        in_ch, info = base, [FeatureInfo("stem", base, 4)]
        for s, (name, n) in enumerate(zip(STAGES, layers)):
            ch = base * 2 ** s
            blocks = []
            for b in range(n):
                blocks.append(cls(in_ch, ch, 2 if (s > 0 and b == 0) else 1))
                in_ch = ch * cls.expansion
            setattr(self, name, nn.Sequential(*blocks))
            info.append(FeatureInfo(name, in_ch, 4 * 2 ** s))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        self.feature_info = info  # checked against real outputs in tests/test_growth_families.py
        self.default_fsp_pairs = [("stem", "layer1"), ("layer1", "layer2"), ("layer2", "layer3"), ("layer3", "layer4")]
        kaiming_init(self)

    @property
    def depth(self) -> int:
        """Weight layers on the main path: stem, 2 or 3 per block, classifier (18 for basic ``(2, 2, 2, 2)``)."""
        return 2 + (3 if self.block == "bottleneck" else 2) * sum(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def _make(name: str, block: str, layers: tuple[int, int, int, int]):
    def factory(width: int = 1, stem_kernel: int = 3, in_chans: int = 3, num_classes: int = 10) -> ImageNetResNet:
        return ImageNetResNet(block, layers, width=width, stem_kernel=stem_kernel, in_chans=in_chans,
                              num_classes=num_classes)

    factory.__name__ = name
    factory.__doc__ = f"ImageNet-layout ResNet with {block} blocks {list(layers)} per stage (16w..128w channels)."
    return factory


for _name, _block, _layers in (("resnet10i", "basic", (1, 1, 1, 1)), ("resnet18i", "basic", (2, 2, 2, 2)),
                               ("resnet34i", "basic", (3, 4, 6, 3)), ("resnet14b", "bottleneck", (1, 1, 1, 1)),
                               ("resnet26b", "bottleneck", (2, 2, 2, 2)), ("resnet50b", "bottleneck", (3, 4, 6, 3))):
    register_model(_make(_name, _block, _layers))


@register_model
def resnet_imagenet(block: str = "basic", layers: tuple[int, ...] | list[int] = (2, 2, 2, 2), width: int = 1,
                    stem_kernel: int = 3, in_chans: int = 3, num_classes: int = 10) -> ImageNetResNet:
    """ImageNet-layout ResNet of any block type and per-stage block counts (``block``, ``layers`` keywords)."""
    return ImageNetResNet(block, layers, width=width, stem_kernel=stem_kernel, in_chans=in_chans,
                          num_classes=num_classes)
