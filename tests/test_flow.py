import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fspladder import FlowRecorder, Tap, TapError, create_model, fsp_matrix, parse_tap


def fsp_by_hand(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """Patent eq. 1 written as loops, with max pooling to the smaller size."""
    h, w = min(f1.shape[2], f2.shape[2]), min(f1.shape[3], f2.shape[3])
    f1 = F.adaptive_max_pool2d(f1, (h, w)) if f1.shape[2:] != (h, w) else f1
    f2 = F.adaptive_max_pool2d(f2, (h, w)) if f2.shape[2:] != (h, w) else f2
    b, m, n = f1.shape[0], f1.shape[1], f2.shape[1]
    g = torch.zeros(b, m, n, dtype=torch.float64)
    for bi in range(b):
        for i in range(m):
            for j in range(n):
                acc = 0.0
                for s in range(h):
                    for t in range(w):
                        acc += float(f1[bi, i, s, t]) * float(f2[bi, j, s, t])
                g[bi, i, j] = acc / (h * w)
    return g


def test_fsp_matrix_matches_hand_computation_same_size():
    torch.manual_seed(0)
    f1, f2 = torch.randn(2, 3, 4, 5), torch.randn(2, 4, 4, 5)
    g = fsp_matrix(f1, f2)
    assert g.shape == (2, 3, 4) and g.dtype == torch.float32
    torch.testing.assert_close(g.double(), fsp_by_hand(f1, f2), rtol=1e-5, atol=1e-6)


def test_fsp_matrix_tiny_exact_values():
    # One channel each, 1x2 maps: G = (1*3 + 2*4) / 2 = 5.5
    f1 = torch.tensor([[[[1.0, 2.0]]]])
    f2 = torch.tensor([[[[3.0, 4.0]]]])
    assert fsp_matrix(f1, f2).item() == pytest.approx(5.5)


@pytest.mark.parametrize("s1,s2", [((7, 9), (3, 4)), ((6, 4), (6, 8)), ((5, 5), (10, 10)), ((8, 3), (4, 6))])
def test_fsp_matrix_spatial_mismatch_non_square(s1, s2):
    torch.manual_seed(1)
    f1, f2 = torch.randn(2, 3, *s1), torch.randn(2, 2, *s2)
    torch.testing.assert_close(fsp_matrix(f1, f2).double(), fsp_by_hand(f1, f2), rtol=1e-5, atol=1e-6)


def test_fsp_matrix_max_pools_the_larger_map():
    # A 4x4 map with a single 1 in each 2x2 block pools to all ones; paired with ones (2x2): G = 1.
    f1 = torch.zeros(1, 1, 4, 4)
    f1[0, 0, ::2, ::2] = 1.0
    f2 = torch.ones(1, 1, 2, 2)
    assert fsp_matrix(f1, f2).item() == pytest.approx(1.0)


def test_fsp_matrix_stays_float32_under_autocast():
    f1, f2 = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = fsp_matrix(f1.bfloat16(), f2.bfloat16())
    assert g.dtype == torch.float32


def test_fsp_matrix_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        fsp_matrix(torch.randn(2, 3, 4), torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="batch sizes differ"):
        fsp_matrix(torch.randn(2, 3, 4, 4), torch.randn(3, 3, 4, 4))


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_recorder_removes_all_hooks_also_on_error():
    model = create_model("resnet8", in_chans=1)
    with FlowRecorder(model, ["stem", "layer1", "layer2:input"]) as rec:
        assert _hook_count(model) == 3
        model(torch.randn(2, 1, 12, 12))
    assert _hook_count(model) == 0
    assert set(rec.features) == {Tap("stem"), Tap("layer1"), Tap("layer2", "input")}
    with pytest.raises(RuntimeError, match="boom"):
        with FlowRecorder(model, ["stem"]):
            raise RuntimeError("boom")
    assert _hook_count(model) == 0


def test_input_tap_equals_previous_output():
    model = create_model("resnet14", in_chans=1).eval()
    with FlowRecorder(model, ["layer1", "layer2:input"]) as rec:
        feats = rec.run(torch.randn(2, 1, 16, 16))
    torch.testing.assert_close(feats[Tap("layer1")], feats[Tap("layer2", "input")])


def test_stop_early_skips_the_head():
    model = create_model("resnet8", in_chans=1)
    calls = []
    model.fc.register_forward_hook(lambda *a: calls.append(1))
    with FlowRecorder(model, ["stem", "layer2"], stop_early=True) as rec:
        feats = rec.run(torch.randn(2, 1, 12, 12))
    assert calls == [] and set(feats) == {Tap("stem"), Tap("layer2")}


def test_bad_tap_names_are_all_named_with_suggestions():
    model = create_model("resnet8")
    with pytest.raises(TapError) as e:
        FlowRecorder(model, ["stem", "layr1", "layer9.conv"])
    msg = str(e.value)
    assert "CifarResNet" in msg and "'layr1'" in msg and "'layer9.conv'" in msg
    assert "layer1" in msg and "fspladder layers" in msg


@pytest.mark.parametrize("spec", ["", "layer1:middle", 3])
def test_parse_tap_rejects_malformed(spec):
    with pytest.raises(TapError):
        parse_tap(spec)


def test_parse_tap_forms():
    assert parse_tap("layer1") == Tap("layer1", "output")
    assert parse_tap("layer2.0:input") == Tap("layer2.0", "input")
    assert str(parse_tap("a.b:input")) == "a.b:input"
