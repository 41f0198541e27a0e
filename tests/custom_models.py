"""User models that are not in fspladder's registry, built from `module:factory` specs in tests."""

import torch.nn as nn


def _conv(i: int, o: int, stride: int = 1, norm: bool = True) -> nn.Sequential:
    if not norm:
        return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1), nn.ReLU())
    return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())


class PlainCNN(nn.Module):
    """A VGG-style net with two stages; no feature metadata, taps come from the config."""

    def __init__(self, blocks: int = 1, width: int = 8, in_chans: int = 1, num_classes: int = 10,
                 norm: bool = True) -> None:
        super().__init__()
        self.stem = _conv(in_chans, width, norm=norm)
        self.stage1 = nn.Sequential(*[_conv(width, width, norm=norm) for _ in range(blocks)])
        self.down = _conv(width, 2 * width, stride=2, norm=norm)
        self.stage2 = nn.Sequential(*[_conv(2 * width, 2 * width, norm=norm) for _ in range(blocks)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))

    def forward(self, x):
        return self.head(self.stage2(self.down(self.stage1(self.stem(x)))))


def plain_cnn(blocks: int = 1, width: int = 8, in_chans: int = 1, num_classes: int = 10,
              norm: bool = True) -> PlainCNN:
    return PlainCNN(blocks, width, in_chans, num_classes, norm)


def fixed_cnn(blocks: int = 1) -> PlainCNN:
    """A factory that takes no in_chans/num_classes: fspladder must not pass them."""
    return PlainCNN(blocks, 8, 1, 4)


def not_a_model() -> int:
    return 3


class TVNet(nn.Module):
    """Shaped like a torchvision classifier: takes num_classes, not in_chans (grey input here)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential(_conv(1, 32), _conv(32, 64, stride=2), _conv(64, 128, stride=2))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def torchvision_style(*, weights=None, **kwargs) -> TVNet:
    """torchvision's factory signature: keyword-only weights, everything else into the constructor."""
    if weights is not None:
        raise ValueError("no weights here")
    return TVNet(**kwargs)


class WithFeatures(PlainCNN):
    def forward(self, x):
        f = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(f), f  # (logits, features), as many research models return


def logits_and_features(in_chans: int = 1, num_classes: int = 10) -> WithFeatures:
    return WithFeatures(1, 48, in_chans, num_classes)  # larger than the tiny ResNet-8 teacher (claim 3)


class Talker(PlainCNN):
    def forward(self, x):
        return "logits"


def returns_a_string(in_chans: int = 1, num_classes: int = 10) -> Talker:
    return Talker(1, 8, in_chans, num_classes)


# Models whose forward returns the wrong shape or type (issue 34): `check`, `run`, `train`, `bench` and `plan` must
# each refuse them with the same one line, before anything is written.
class FeatureMap(PlainCNN):
    def forward(self, x):
        return self.stage2(self.down(self.stage1(self.stem(x))))  # (B, 2 * width, H/2, W/2): no classifier


def feature_map(in_chans: int = 1, num_classes: int = 10) -> FeatureMap:
    return FeatureMap(1, 32, in_chans, num_classes)


class Flat(PlainCNN):
    def forward(self, x):
        return self.head(self.stage2(self.down(self.stage1(self.stem(x))))).sum(1)  # (B,)


def flat_output(in_chans: int = 1, num_classes: int = 10) -> Flat:
    return Flat(1, 8, in_chans, num_classes)


class BatchMean(PlainCNN):
    def forward(self, x):
        return self.head(self.stage2(self.down(self.stage1(self.stem(x))))).mean(0, keepdim=True)  # (1, K)


def batch_mean(in_chans: int = 1, num_classes: int = 10) -> BatchMean:
    return BatchMean(1, 8, in_chans, num_classes)


class IntLogits(PlainCNN):
    def forward(self, x):
        return self.head(self.stage2(self.down(self.stage1(self.stem(x))))).long()  # (B, K) int64


def int_logits(in_chans: int = 1, num_classes: int = 10) -> IntLogits:
    return IntLogits(1, 8, in_chans, num_classes)


class Nothing(PlainCNN):
    def forward(self, x):
        return None


def returns_none(in_chans: int = 1, num_classes: int = 10) -> Nothing:
    return Nothing(1, 8, in_chans, num_classes)


class NoLogitsKey(PlainCNN):
    def forward(self, x):
        return {"features": self.stage2(self.down(self.stage1(self.stem(x))))}


def dict_without_logits(in_chans: int = 1, num_classes: int = 10) -> NoLogitsKey:
    return NoLogitsKey(1, 8, in_chans, num_classes)


class Crashes(PlainCNN):
    def forward(self, x):
        return self.missing_layer(x)  # AttributeError from the user's own code


def crashes(in_chans: int = 1, num_classes: int = 10) -> Crashes:
    return Crashes(1, 8, in_chans, num_classes)


# every factory above, by the spec a config names it with
BAD_OUTPUT_MODELS = ["custom_models:feature_map", "custom_models:flat_output", "custom_models:batch_mean",
                     "custom_models:int_logits", "custom_models:returns_none", "custom_models:dict_without_logits",
                     "custom_models:returns_a_string", "custom_models:crashes"]
