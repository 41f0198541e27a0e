from fspladder.cli import main


def test_layers_lists_names_and_shapes(capsys):
    assert main(["layers", "resnet20", "--input-shape", "1,28,28"]) == 0
    out = capsys.readouterr().out
    assert "layer2.2.conv2" in out and "(32, 14, 14)" in out and "(64, 7, 7)" in out
    assert "default FSP pairs: (stem, layer1)" in out


def test_unknown_model_and_bad_config_key_exit_2(capsys, tmp_path):
    assert main(["layers", "resnet21", "--input-shape", "1,28,28"]) == 2
    assert "did you mean" in capsys.readouterr().err.lower()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stage2:\n  epocs: 3\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "stage2.epocs: unknown key; did you mean 'epochs'" in capsys.readouterr().err


def test_check_reports_five_different_mistakes_at_once(tmp_path, idx_folder, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"""
data: {{name: idx, root: {idx_folder}, val_size: 100, crop_pad: -1}}
stage1: {{lr: -0.01}}
stage2: {{epocs: 3}}
teacher: {{checkpoint: {tmp_path}/missing-teacher.pt}}
rungs:
  - {{name: s1, model: resnet14, pairs: [[stem, layer1], [layer1, layer2], [layer2, layr3]]}}
  - {{name: target, model: resnet200}}
""")
    assert main(["check", str(cfg)]) == 2
    err = capsys.readouterr().err
    for part in ("stage1.lr must be a finite number in (0, 10], got -0.01", "stage2.epocs: unknown key",
                 "data.crop_pad must be an integer in [0, 64], got -1",
                 "unknown model 'resnet200'", "missing-teacher.pt does not exist", "'layr3' (closest: layer3"):
        assert part in err, part
    assert "6 problem(s)" in err


def test_check_passes_a_good_config_and_catches_a_bad_ladder(tmp_path, idx_folder, capsys):
    from fspladder import create_model, save_checkpoint

    teacher = tmp_path / "t.pt"
    save_checkpoint(teacher, create_model("resnet8", in_chans=1, num_classes=4),
                    {"name": "resnet8", "kwargs": {"in_chans": 1, "num_classes": 4}})
    base = ["--set", "data.name=idx", "--set", f"data.root={idx_folder}", "--set", "data.val_size=100",
            "--set", f"teacher.checkpoint={teacher}"]
    assert main(["check", *base]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["check", *base, "--set", "rungs.1.model=resnet8"]) == 2
    assert "not larger" in capsys.readouterr().err
