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
    with pytest.raises(TypeError, match="6n\\+2"):  # ModelBuildError: a user error, with the model's own reason
        create_model("resnet", depth=10)
    with pytest.raises(TypeError, match="resnet8"):
        create_model("resnet8", colour=True)
    assert "resnet20" in list_models()


def test_growth_preserves_the_function_deeper_wider_and_both():
    """Net2Net growth: the grown network gives the previous network's logits to float32 rounding."""
    from fspladder.growth import grow, growth_problem

    torch.manual_seed(0)
    for (dt, wt), (ds, ws) in (((8, 1), (20, 1)), ((8, 1), (8, 2)), ((8, 1), (20, 2)), ((14, 2), (26, 3))):
        teacher = create_model("resnet", depth=dt, width=wt, in_chans=1, num_classes=5)
        for m in teacher.modules():  # non-trivial BN parameters and statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        student = create_model("resnet", depth=ds, width=ws, in_chans=1, num_classes=5)
        rec = grow(teacher, student)
        assert rec["deeper"] == (ds > dt) and rec["wider"] == (ws > wt)
        x = torch.randn(4, 1, 16, 16)
        with torch.no_grad():
            a, b = student.eval()(x), teacher.eval()(x)
        assert ((a - b).norm() / b.norm()).item() < 1e-5, ((dt, wt), (ds, ws))
    wide, narrow = create_model("resnet20", width=2, in_chans=1), create_model("resnet20", in_chans=1)
    assert "narrower" in growth_problem(wide, narrow) and "init: random" in growth_problem(wide, narrow)
    assert "another family" in growth_problem(create_model("vgg8"), create_model("resnet20"))
    assert growth_problem(narrow, wide) is None


def test_split_noise_breaks_the_symmetry_of_copies_but_not_the_function():
    from fspladder.growth import grow

    torch.manual_seed(0)
    teacher, student = create_model("resnet8", in_chans=1), create_model("resnet8", width=2, in_chans=1)
    grow(teacher, student, noise=0.1, seed=3)
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        a, b = student.eval()(x), teacher.eval()(x)
    assert ((a - b).norm() / b.norm()).item() < 1e-5
    w = student.layer1[0].conv2.weight  # (32, 32, 3, 3): input channel i and its copy i + 16 carry unequal shares
    assert not torch.allclose(w[:, 0], w[:, 16])
    # ... which add up to the teacher's weight (output channel 0 is a copy of the teacher's channel 0)
    torch.testing.assert_close(w[0, 0] + w[0, 16], teacher.layer1[0].conv2.weight[0, 0])
