"""FSP matrices of token sequences (issue 24): the patent's eq. 1 with the token index in place of the position."""

from __future__ import annotations

import pytest
import torch

from fspladder import create_model, fsp_loss, fsp_matrix
from fspladder.align import ChannelAligner
from fspladder.flow import FsPair, Tap, TapError
from fspladder.ladder import LadderError, Rung, default_pairs, validate_ladder


def _reference(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """Eq. 1 term by term in float64: G[b, i, j] = sum_k f1[b, k, i] f2[b, k, j] / N."""
    a, b = f1.double(), f2.double()
    n = a.shape[1]
    return sum(a[:, k, :, None] * b[:, k, None, :] for k in range(n)) / n


@pytest.mark.parametrize("b,n,m,d", [(1, 1, 1, 1), (3, 17, 8, 5), (2, 65, 64, 128)])
def test_token_fsp_matches_a_float64_reference(b, n, m, d):
    g = torch.Generator().manual_seed(n)
    f1 = 3.0 * torch.randn(b, n, m, generator=g) + 1.0
    f2 = torch.randn(b, n, d, generator=g)
    got = fsp_matrix(f1, f2)
    ref = _reference(f1, f2)
    assert got.shape == (b, m, d) and got.dtype == torch.float32
    scale = (f1.double().abs().max() * f2.double().abs().max()).item()  # bounds every |G[b, i, j]|
    assert (got.double() - ref).abs().max().item() <= 1e-6 * scale


def test_token_fsp_is_float32_under_bf16_autocast():
    f1, f2 = torch.randn(2, 10, 4), torch.randn(2, 10, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fsp_matrix(f1.bfloat16(), f2.bfloat16())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, _reference(f1.bfloat16(), f2.bfloat16()).float(), rtol=1e-5, atol=1e-5)


def test_mixed_image_and_token_pairs_and_unequal_token_counts_are_refused():
    with pytest.raises(TapError, match=r"two \(B, C, H, W\) feature maps or two \(B, N, d\) token sequences"):
        fsp_matrix(torch.randn(2, 4, 3, 3), torch.randn(2, 9, 4))
    with pytest.raises(TapError, match="needs equal token counts N.*'embed'"):
        fsp_matrix(torch.randn(2, 9, 4), torch.randn(2, 10, 4))


def test_aligner_projects_tokens_with_its_1x1_weights():
    torch.manual_seed(0)
    al = ChannelAligner([(8, 8)], [(4, 4)])
    a, b = Tap("a"), Tap("b")
    f1, f2 = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    (g,) = al.flows({a: f1, b: f2}, [FsPair(a, b)])
    w1, w2 = al.first[0].weight.flatten(1), al.second[0].weight.flatten(1)  # (4, 8)
    torch.testing.assert_close(g, _reference(f1 @ w1.T, f2 @ w2.T).float(), rtol=1e-5, atol=1e-5)


def _rung(name, **kw):
    model = create_model("vit", in_chans=1, num_classes=4, img_size=12, **kw)
    return Rung(name, model, default_pairs(model))


def test_ladder_of_vits_validates_with_token_shapes_and_stage1_loss_has_gradients():
    small, big = _rung("small", dim=16, depth=2, heads=2), _rung("big", dim=16, depth=4, heads=2)
    shapes = validate_ladder([small, big], (1, 12, 12))
    assert shapes == [[(16, 16), (16, 16)], [(16, 16), (16, 16)]]
    wide = _rung("wide", dim=32, depth=2, heads=4)
    with pytest.raises(LadderError, match="wide's FSP matrices differ in shape"):
        validate_ladder([small, wide], (1, 12, 12))
    assert validate_ladder([small, wide], (1, 12, 12), project_channels=True)[1] == [(32, 32), (32, 32)]
    from fspladder import FlowRecorder, flow_of

    x = torch.randn(3, 1, 12, 12)
    with FlowRecorder(small.model, small.taps) as rs, FlowRecorder(big.model, big.taps) as rb:
        small.model(x)
        big.model(x)
        loss = fsp_loss(flow_of(rb.features, big.pairs), [g.detach() for g in flow_of(rs.features, small.pairs)])
    loss.backward()
    assert big.model.blocks[0].attn.q.weight.grad is not None


def test_ladder_with_a_mixed_pair_names_the_rung():
    small, big = _rung("small", dim=16, depth=2, heads=2), _rung("big", dim=16, depth=4, heads=2)
    big.pairs = [FsPair.parse(["embed.proj", "blocks.1"]), big.pairs[1]]
    with pytest.raises(LadderError, match=r"big: an FSP pair needs two \(B, C, H, W\) feature maps"):
        validate_ladder([small, big], (1, 12, 12))
