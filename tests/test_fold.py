"""BatchNorm folding of the frozen network in stage 1: same FSP matrices, taps still resolve."""

import torch
import torch.nn as nn
from custom_models import PlainCNN

from fspladder import create_model
from fspladder.flow import FlowRecorder, flow_of, parse_tap, taps_of
from fspladder.fold import fold_batchnorm
from fspladder.ladder import default_pairs


def _trained_stats(model: nn.Module) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def test_folded_resnet_has_the_same_fsp_matrices_and_outputs():
    model = _trained_stats(create_model("resnet14", in_chans=1, num_classes=10))
    pairs = default_pairs(model)
    folded, n = fold_batchnorm(model, taps_of(pairs))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n == n_bn == 1 + 2 * 6 + 2  # stem, two per block, two downsampling shortcuts
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)
        with FlowRecorder(model, taps_of(pairs)) as a, FlowRecorder(folded, taps_of(pairs)) as b:
            ga, gb = flow_of(a.run(x), pairs), flow_of(b.run(x), pairs)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(v, u, rtol=1e-4, atol=1e-4)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_bn  # the original is untouched


def test_tapped_conv_output_or_bn_input_is_left_alone():
    model = _trained_stats(PlainCNN(blocks=1, width=4, in_chans=1))
    folded, n = fold_batchnorm(model, [parse_tap("stem.0"), parse_tap("stage1.0.1:input")])
    assert n == 2  # of 4 conv-BN pairs: the stem's and stage1's are kept
    assert isinstance(folded.stem[1], nn.BatchNorm2d) and isinstance(folded.stage1[0][1], nn.BatchNorm2d)
    x = torch.randn(4, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.bn(self.conv(x))
        return y if y.sum() > 0 else -y


def test_untraceable_model_is_copied_unfolded():
    model = _trained_stats(Branchy())
    folded, n = fold_batchnorm(model)
    assert n == 0 and isinstance(folded.bn, nn.BatchNorm2d) and folded is not model
    x = torch.randn(2, 1, 6, 6)
    with torch.no_grad():
        assert torch.equal(folded(x), model(x))
    assert not any(p.requires_grad for p in folded.parameters())
    assert all(p.requires_grad for p in model.parameters())  # the original is untouched
