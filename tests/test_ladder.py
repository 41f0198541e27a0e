import pytest

from fspladder import LadderError, Rung, create_model, validate_ladder
from fspladder.ladder import default_pairs


def rung(name: str, model_name: str, **kw) -> Rung:
    m = create_model(model_name, in_chans=1, **kw)
    return Rung(name, m, default_pairs(m))


def test_valid_depth_ladder_returns_fsp_shapes():
    shapes = validate_ladder([rung("t", "resnet8"), rung("s", "resnet14"), rung("target", "resnet20")], (1, 28, 28))
    assert shapes[0] == [(16, 16), (16, 32), (32, 64)] and shapes[0] == shapes[2]


def test_non_increasing_ladder_is_refused_naming_both_networks():
    with pytest.raises(LadderError) as e:
        validate_ladder([rung("teacher", "resnet8"), rung("big", "resnet20"), rung("target", "resnet14")], (1, 28, 28))
    msg = str(e.value)
    assert "target" in msg and "big" in msg and "not larger" in msg and "claim 3" in msg


def test_equal_size_is_refused():
    with pytest.raises(LadderError, match="not larger"):
        validate_ladder([rung("teacher", "resnet14"), rung("target", "resnet14")], (1, 28, 28))


def test_channel_mismatch_is_refused_naming_the_pair():
    with pytest.raises(LadderError) as e:
        validate_ladder([rung("teacher", "resnet8"), rung("wide", "resnet20", width=2)], (1, 28, 28))
    msg = str(e.value)
    assert "pair 0: wide (stem, layer1) gives 32x32, teacher (stem, layer1) gives 16x16" in msg
    assert "pair 2:" in msg and "channel counts must match" in msg and len(e.value.problems) == 1  # one message


def test_needs_a_student_and_real_taps():
    with pytest.raises(LadderError, match="at least one student"):
        validate_ladder([rung("teacher", "resnet8")], (1, 28, 28))
    m = create_model("resnet20", in_chans=1)
    from fspladder import FsPair

    bad = Rung("target", m, [FsPair.parse(["stem", "layer_one"])])
    with pytest.raises(LadderError, match="layer_one"):
        validate_ladder([rung("teacher", "resnet8"), bad], (1, 28, 28))
