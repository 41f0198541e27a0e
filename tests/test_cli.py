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
