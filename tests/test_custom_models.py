"""Ladders of user models named `module:factory`, with taps from the config."""

import json

import pytest

from fspladder import create_model
from fspladder.cli import main

PAIRS = "[[stem, stage1], [down:input, stage2]]"


def _common(idx_folder):
    return ["--set", "data.name=idx", "--set", f"data.root={idx_folder}", "--set", "data.val_size=100",
            "--set", "eval_batch_size=200", "--set", "stage1.batch_size=50", "--set", "stage2.batch_size=50",
            "--no-progress"]


def test_ladder_of_module_factory_models_runs_both_stages(tmp_path, idx_folder):
    teacher = tmp_path / "t.pt"
    assert main(["train", "--model", "custom_models:plain_cnn", "--save", str(teacher),
                 "--set", "stage2.epochs=1", *_common(idx_folder)]) == 0
    out = tmp_path / "run"
    rungs = (f"[{{name: mid, model: 'custom_models:plain_cnn', kwargs: {{blocks: 2}}, pairs: {PAIRS}}}, "
             f"{{name: big, model: 'custom_models:plain_cnn', kwargs: {{blocks: 3}}, pairs: {PAIRS}}}]")
    assert main(["run", "--out", str(out), "--no-report", "--set", f"teacher.checkpoint={teacher}",
                 "--set", f"teacher.pairs={PAIRS}", "--set", f"rungs={rungs}", "--set", "stage1.epochs=2",
                 "--set", "stage2.epochs=1", *_common(idx_folder)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert [r["model"] for r in s["rungs"]] == ["custom_models:plain_cnn"] * 2
    for r in s["rungs"]:
        assert r["stage1"]["fsp_loss_end"] < r["stage1"]["fsp_loss_start"]
        assert len(r["stage2"]["test_acc"]) == 1


def test_layers_works_on_a_factory_spec(capsys):
    assert main(["layers", "custom_models:plain_cnn", "--input-shape", "1,12,12"]) == 0
    out = capsys.readouterr().out
    assert "stage2.0.0" in out and "(16, 6, 6)" in out


def test_factory_without_in_chans_and_bad_specs():
    assert create_model("custom_models:fixed_cnn", blocks=2).stage1[1] is not None
    with pytest.raises(KeyError, match="cannot import module 'no_such_module'"):
        create_model("no_such_module:f")
    with pytest.raises(KeyError, match="has no attribute 'nope'"):
        create_model("custom_models:nope")
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        create_model("custom_models:not_a_model")


def test_run_refuses_a_model_without_default_pairs(tmp_path, idx_folder, capsys):
    from fspladder import save_checkpoint

    t = tmp_path / "t.pt"
    save_checkpoint(t, create_model("resnet8", in_chans=1, num_classes=4),
                    {"name": "resnet8", "kwargs": {"in_chans": 1, "num_classes": 4}})
    rc = main(["run", "--out", str(tmp_path / "r"), "--set", f"teacher.checkpoint={t}",
               "--set", "rungs=[{model: 'custom_models:plain_cnn', kwargs: {blocks: 4, width: 16}}]",
               *_common(idx_folder)])
    assert rc == 2
    assert "declares no default_fsp_pairs" in capsys.readouterr().err
