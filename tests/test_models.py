import pytest
import torch

from fspladder import FlowRecorder, create_model, list_models


@pytest.mark.parametrize("name,width,in_chans,size", [("resnet8", 1, 1, (28, 28)), ("resnet20", 2, 3, (32, 32)),
                                                      ("resnet14", 1, 3, (20, 24)), ("vgg8", 1, 1, (28, 28)),
                                                      ("vgg8", 2, 3, (21, 32))])
def test_feature_info_matches_real_outputs(name, width, in_chans, size):
    model = create_model(name, width=width, in_chans=in_chans, num_classes=7).eval()
    infos = model.feature_info
    with FlowRecorder(model, [fi.module for fi in infos]) as rec:
        logits = model(torch.randn(2, in_chans, *size))
    assert logits.shape == (2, 7)
    for fi in infos:
        f = rec.features[next(t for t in rec.features if t.module == fi.module)]
        assert f.shape[1] == fi.num_chs, fi
        assert f.shape[2] == -(-size[0] // fi.reduction) and f.shape[3] == -(-size[1] // fi.reduction), fi
    tapped = {fi.module for fi in infos}
    assert all(a in tapped and b in tapped for a, b in model.default_fsp_pairs)


def test_depths_grow_parameters():
    counts = [sum(p.numel() for p in create_model(f"resnet{d}").parameters()) for d in (8, 14, 20, 32)]
    assert counts == sorted(counts) and len(set(counts)) == 4
    assert create_model("resnet", depth=26).depth == 26


def test_unknown_model_and_bad_depth():
    with pytest.raises(KeyError, match="resnet20"):
        create_model("resnet21")
    with pytest.raises(ValueError, match="6n\\+2"):
        create_model("resnet", depth=10)
    with pytest.raises(TypeError, match="resnet8"):
        create_model("resnet8", colour=True)
    assert "resnet20" in list_models()


def test_grow_resnet_preserves_the_function():
    from fspladder.baselines import can_grow, grow_resnet

    torch.manual_seed(0)
    teacher = create_model("resnet8", in_chans=1, num_classes=5)
    for m in teacher.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    student = grow_resnet(teacher, create_model("resnet20", in_chans=1, num_classes=5))
    x = torch.randn(4, 1, 16, 16)
    torch.testing.assert_close(student.eval()(x), teacher.eval()(x), rtol=1e-5, atol=1e-5)
    assert not can_grow(teacher, create_model("resnet20", width=2, in_chans=1, num_classes=5))
