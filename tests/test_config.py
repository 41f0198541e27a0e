import pytest

from fspladder.config import ConfigError, apply_overrides, load_config, parse_config
from fspladder.recipes import GROWN_LR, RANDOM_LR


def test_default_config_is_valid():
    cfg = parse_config({})
    assert cfg.teacher.checkpoint == "builtin:resnet8_fmnist"
    assert [r.name for r in cfg.rungs] == ["student1", "target"]


def test_unknown_key_is_refused_with_its_path_and_a_suggestion():
    with pytest.raises(ConfigError) as e:
        parse_config({"stage1": {"learning_rate": 0.1}})
    assert "stage1.learning_rate: unknown key" in str(e.value)
    with pytest.raises(ConfigError, match=r"rungs\[0\].modle: unknown key; did you mean 'model'"):
        parse_config({"rungs": [{"modle": "resnet20"}]})


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as e:
        parse_config({"seed": "zero", "stage2": {"epochs": 0, "lr": -1}, "data": {"crop_pad": -2},
                      "teacher": {"model": "resnet9", "checkpoint": "x.pt"}, "bogus": 1})
    msg = str(e.value)
    for part in ("seed must be int", "stage2.epochs must be an integer in [1, 10000], got 0",
                 "stage2.lr must be a finite number in (0, 10], got -1",
                 "data.crop_pad must be an integer in [0, 64], got -2", "teacher.model: unknown model 'resnet9'",
                 "bogus: unknown key"):
        assert part in msg, part
    assert len(e.value.problems) >= 6


def test_rung_overrides_are_validated_and_merged():
    cfg = parse_config({"rungs": [{"model": "resnet20", "stage2": {"epochs": 7}}]})
    assert cfg.stage_for(cfg.rungs[0], "stage2").epochs == 7
    # stage2.lr is null by default: the rung's recipe sets it (recipes.schedule_defaults).
    assert cfg.stage2.lr is None and cfg.stage_for(cfg.rungs[0], "stage2").lr == RANDOM_LR
    grown = parse_config({"recipe": "grow", "rungs": [{"model": "resnet20", "stage2": {"epochs": 7}}]})
    assert grown.stage_for(grown.rungs[0], "stage2").lr == GROWN_LR
    assert parse_config({"recipe": "grow", "stage2": {"lr": 0.1}, "rungs": [{"model": "resnet20"}]}).stage_for(
        grown.rungs[0], "stage2").lr == 0.1  # a value the user set wins
    with pytest.raises(ConfigError, match=r"rungs\[0\].stage1.epoch: unknown key"):
        parse_config({"rungs": [{"model": "resnet20", "stage1": {"epoch": 1}}]})


def test_set_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("stage2:\n  epochs: 2\n")
    cfg = load_config(p, ["stage2.epochs=4", "rungs.1.model=resnet32", "stage1.lr=3e-4"])
    assert cfg.stage2.epochs == 4 and cfg.rungs[1].model == "resnet32" and cfg.stage1.lr == 3e-4
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["stage2.epochs"])
    with pytest.raises(ConfigError, match="out of range"):
        apply_overrides({}, ["rungs.5.model=resnet8"])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping at top level"):
        load_config(bad)


def test_shipped_default_yaml_matches_the_built_in_default():
    from pathlib import Path

    from fspladder.config import config_to_dict

    path = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
    assert config_to_dict(load_config(path)) == config_to_dict(parse_config({}))


def test_the_old_tensorboard_key_says_what_to_write_instead():
    with pytest.raises(ConfigError, match=r"track: \[tensorboard\]") as e:
        parse_config({"tensorboard": "tb"})
    assert len(e.value.problems) == 1
    assert parse_config({"tensorboard": None}).track == []  # an old resolved config still loads


def test_an_unquoted_off_is_the_word_where_a_key_takes_it(tmp_path):
    """YAML 1.1 reads `off` as false: amp and teacher_amp take the word, so `--set amp=off` and `amp: off` in a
    file mean it, not a refusal of False; a key without that word still refuses the boolean."""
    cfg = load_config(None, ["amp=off", "teacher_amp=off"])
    assert cfg.amp == "off" and cfg.teacher_amp == "off"
    p = tmp_path / "c.yaml"
    p.write_text("amp: off\n")
    assert load_config(p).amp == "off"
    with pytest.raises(ConfigError, match="amp must be one of"):
        load_config(None, ["amp=true"])  # "on" is not one of amp's words
    with pytest.raises(ConfigError, match="schedule"):
        load_config(None, ["stage2.schedule=off"])
