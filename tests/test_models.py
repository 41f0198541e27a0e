import pytest
import torch

from fspladder import FlowRecorder, create_model, list_models


@pytest.mark.parametrize("name,width,in_chans,size", [("resnet8", 1, 1, (28, 28)), ("resnet20", 2, 3, (32, 32)),
                                                      ("resnet14", 1, 3, (20, 24))])
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
