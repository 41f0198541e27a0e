"""End-to-end: train a tiny teacher, then a two-rung ladder, through the CLI and the API."""

import json
from pathlib import Path

import pytest
import torch

from fspladder import FsPair, create_model, parse_config, train_stage1
from fspladder.cli import main
from fspladder.data import FASHION_MNIST_DIR
from fspladder.engine import TrainContext
from fspladder.session import load_data

SMALL = ["--set", "data.name=idx", "--set", "data.val_size=100", "--set", "eval_batch_size=200",
         "--set", "stage1.batch_size=50", "--set", "stage2.batch_size=50", "--no-progress"]


def _root(idx_folder):
    return ["--set", f"data.root={idx_folder}"]


@pytest.fixture
def teacher(tmp_path, idx_folder):
    path = tmp_path / "teacher.pt"
    assert main(["train", "--model", "resnet8", "--save", str(path), "--set", "stage2.epochs=2",
                 *SMALL, *_root(idx_folder)]) == 0
    return path


def test_two_rung_ladder_end_to_end(tmp_path, idx_folder, teacher, capsys):
    out = tmp_path / "run"
    rc = main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}",
               "--set", "stage1.epochs=2", "--set", "stage2.epochs=2", *SMALL, *_root(idx_folder)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "target test accuracy" in printed and "student1" in printed
    summary = json.loads((out / "summary.json").read_text())
    params = [summary["teacher"]["params"]] + [r["params"] for r in summary["rungs"]]
    assert params == sorted(params) and len(set(params)) == 3
    for r in summary["rungs"]:
        assert r["stage1"]["fsp_loss_end"] < r["stage1"]["fsp_loss_start"], r["name"]
        assert len(r["stage2"]["val_acc"]) == 2 and len(r["stage2"]["test_acc"]) == 2
        assert (out / r["checkpoint"]).is_file()
    assert 0.0 <= summary["target"]["test_acc"] <= 1.0 and summary["total_seconds"] > 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [(x["rung"], x["stage"], x["epoch"]) for x in lines if "stage" in x]
    assert ("student1", 1, 1) in epochs and ("target", 2, 2) in epochs
    assert (out / "resolved-config.yaml").is_file()
    # The summary records what the teacher was trained with.
    assert summary["teacher"]["trained"]["command"].startswith("fspladder train")
    _check_report(out)
    # A second run into the same directory is refused and changes nothing there.
    before = (out / "summary.json").read_bytes()
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", *SMALL, *_root(idx_folder)]) == 2
    assert "already holds a run" in capsys.readouterr().err and (out / "summary.json").read_bytes() == before


def _check_report(out):
    """report.html exists, every image is embedded, and each one's PNG file is in the run directory."""
    import re

    page = (out / "report.html").read_text()
    imgs = re.findall(r"<img [^>]*>", page)
    names = re.findall(r"data-file='([^']+)'", page)
    assert len(imgs) == len(names) >= 4  # 2 heatmap figures, curves, time bars
    assert all("src='data:image/png;base64," in i for i in imgs)
    for n in names:
        assert (out / n).is_file() and (out / n).stat().st_size > 1000, n
    assert "report-fsp-1-student1.png" in names and "report-curves.png" in names
    assert "Config</h2>" in page and "Summary</h2>" in page
    prec = json.loads((out / "summary.json").read_text())["precision"]  # what "auto" resolved to, stated
    word = {"off": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}
    assert (f"Students trained in {word[prec['amp']]}; the frozen networks made stage-1 targets in "
            f"{word[prec['teacher_amp']]}") in page


def test_report_on_a_wrong_directory_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "neither summary.json" in capsys.readouterr().err


def test_stage1_lowers_fsp_loss_and_touches_only_layers_up_to_last_tap(idx_folder, teacher):
    from fspladder.checkpoint import load_model

    cfg = parse_config({"data": {"name": "idx", "root": str(idx_folder), "val_size": 100}})
    data = load_data(cfg)
    ctx = TrainContext(device=torch.device("cpu"), data=data, progress=False, eval_batch_size=200)
    prev, _ = load_model(teacher)
    student = create_model("resnet14", in_chans=1, num_classes=4)
    fc_before = student.fc.weight.clone()
    pairs = [FsPair.parse(p) for p in [("stem", "layer1"), ("layer1", "layer2")]]
    s1 = cfg.stage1
    s1.epochs, s1.batch_size = 3.0, 50
    rec = train_stage1(student, pairs, prev, pairs, s1, ctx, "s")
    assert rec.fsp_loss_end < 0.5 * rec.fsp_loss_start
    assert torch.equal(student.fc.weight, fc_before)  # the head is after the last tap
    assert len(rec.history) == 3


def test_bad_teacher_path_is_a_clear_cli_error(tmp_path, idx_folder, capsys):
    rc = main(["run", "--out", str(tmp_path / "r"), "--set", "teacher.checkpoint=/no/such.pt", *SMALL,
               *_root(idx_folder)])
    assert rc == 2
    assert "checkpoint /no/such.pt does not exist" in capsys.readouterr().err


def test_non_increasing_ladder_is_refused_before_training(tmp_path, idx_folder, teacher, capsys):
    out = tmp_path / "r"
    rc = main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}",
               "--set", "rungs.0.model=resnet20", "--set", "rungs.1.model=resnet14", *SMALL, *_root(idx_folder)])
    assert rc == 2
    assert "not larger" in capsys.readouterr().err
    assert not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text()


def test_bf16_autocast_trains_both_stages_with_float32_fsp(idx_folder, teacher):
    from fspladder.checkpoint import load_model

    cfg = parse_config({"data": {"name": "idx", "root": str(idx_folder), "val_size": 100}})
    ctx = TrainContext(device=torch.device("cpu"), data=load_data(cfg), progress=False, eval_batch_size=200,
                       amp="bf16")
    prev, _ = load_model(teacher)
    student = create_model("resnet14", in_chans=1, num_classes=4)
    pairs = [FsPair.parse(p) for p in student.default_fsp_pairs]
    s1, s2 = cfg.stage1, cfg.stage_for(cfg.rungs[-1], "stage2")
    s1.epochs, s1.batch_size, s2.epochs, s2.batch_size = 2.0, 50, 1, 50
    r1 = train_stage1(student, pairs, prev, pairs, s1, ctx, "s")
    assert r1.fsp_loss_end < r1.fsp_loss_start and r1.skipped_steps == 0
    from fspladder import train_stage2

    r2 = train_stage2(student, s2, ctx, "s")
    assert r2.skipped_steps == 0 and 0 <= r2.val_acc[-1] <= 1
    assert all(p.dtype == torch.float32 for p in student.parameters())  # autocast leaves weights in fp32


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (make test installs it)")
def test_default_ladder_on_a_small_slice_of_fashion_mnist(tmp_path):
    """The built-in default (shipped teacher, ResNet-8 -> 14 -> 20) on 1,024 real training images."""
    out = tmp_path / "fmnist"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--set", "data.train_subset=1024",
                 "--set", "data.test_subset=500", "--set", "stage1.epochs=0.5", "--set", "stage2.epochs=1",
                 "--set", "rungs.0.stage2.epochs=1"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["data"]["name"] == "fashion-mnist" and s["data"]["train"] == 1024
    assert s["teacher"]["test_acc"] > 0.85  # the shipped teacher, on 500 real test images
    assert [r["params"] for r in s["rungs"]] == sorted(r["params"] for r in s["rungs"])
    assert all(r["stage1"]["fsp_loss_end"] < r["stage1"]["fsp_loss_start"] for r in s["rungs"])


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (make test installs it)")
@pytest.mark.parametrize("config", sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*.yaml")))
def test_every_shipped_config_passes_check_with_its_bench(config, capsys):
    """The configs the docs tell users to run (and our results came from) are accepted by `check --bench`,
    so neither `run` nor `bench` refuses them later."""
    path = Path(__file__).parents[1] / "configs" / config
    assert main(["check", "--bench", str(path)]) == 0, capsys.readouterr().err
