"""Issue 17: what a new user ran into, each reproduced, and the general rule: an error the user can cause ends
in one clear message naming the problem and the fix, with nothing written and nothing already trained lost."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import bench_args, make_idx_folder, train_tiny_teacher, write_cifar10, write_idx
from hypothesis import given
from hypothesis import strategies as st

from fspladder.check import check_config
from fspladder.cli import main
from fspladder.config import (
    BenchConfig,
    DataConfig,
    PlanConfig,
    RunConfig,
    Stage1Config,
    Stage2Config,
    numeric_fields,
    read_config_data,
)
from fspladder.data import DataFileError, DataSplits, load_cifar, load_idx_folder, load_image_folder
from fspladder.errors import FspladderError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    idx = make_idx_folder(root)
    return root, idx, train_tiny_teacher(root / "teacher.pt", idx)


def _folder(root: Path, classes=("cat", "dog", "emu"), n_train=8, n_test=2, mode="RGB", skip=()):
    from PIL import Image

    for part, n in (("train", n_train), ("test", n_test)):
        for k, cls in enumerate(classes):
            p = root / part / cls
            p.mkdir(parents=True, exist_ok=True)
            if (part, cls) in skip:
                continue
            for i in range(n):
                Image.new(mode, (12, 12), (60 * k, 10 * i, 30) if mode == "RGB" else 60 * k).save(p / f"{i}.png")
    return root


# 2. RGB data with the built-in 1-channel teacher
def test_rgb_data_with_a_grey_teacher_is_one_clear_message_and_writes_nothing(tmp_path, capsys):
    data = _folder(tmp_path / "imgs")
    args = ["--set", "data.name=folder", "--set", f"data.root={data}", "--set", "data.val_size=3",
            "--set", "data.image_size=16"]
    assert main(["check", *args]) == 2
    err = capsys.readouterr().err
    assert "reads 1-channel images but the data (folder:imgs) has 3 channels" in err
    assert "fspladder train" in err and "data.channels: 1" in err and "Traceback" not in err
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *args]) == 2
    assert "reads 1-channel images" in capsys.readouterr().err
    assert not out.exists()  # no config.yaml left behind, nothing at all
    assert main(["check", *args, "--set", "data.channels=1"]) == 0  # the second way out works


# 3. NaN and out-of-range numbers; metrics.jsonl stays strict JSON
def test_nan_learning_rates_and_negative_weight_decay_are_named_before_training(tiny, capsys):
    root, idx, teacher = tiny
    for key in ("stage2.lr=nan", "stage1.lr=nan", "stage1.epochs=nan", "stage1.weight_decay=-0.1"):
        out = root / f"nan-{key.split('=')[0]}"
        assert main(["run", "--out", str(out), "--set", key, "--set", f"teacher.checkpoint={teacher}",
                     *bench_args(idx)]) == 2
        err = capsys.readouterr().err
        assert key.split("=")[0] + " must be a finite number" in err and "Traceback" not in err
        assert not out.exists()


def test_metrics_log_never_holds_a_bare_nan(tmp_path):
    from fspladder.outputs import MetricsLog

    log = MetricsLog(tmp_path / "m.jsonl")
    log({"event": "nonfinite_loss", "fsp_loss": float("nan"), "x": [float("inf"), 1.0]})
    log.close()

    def strict(c):
        raise ValueError(f"non-standard JSON constant {c}")

    rec = json.loads((tmp_path / "m.jsonl").read_text(), parse_constant=strict)
    assert rec["fsp_loss"] is None and rec["x"] == [None, 1.0]


# 4. Wrong data goes through silently
def test_an_empty_class_folder_is_refused(tmp_path):
    root = _folder(tmp_path / "d", skip={("train", "dog"), ("test", "dog")})
    with pytest.raises(DataFileError, match=r"class folder .*dog holds no images"):
        load_image_folder(root, image_size=8, val_size=3)


def test_a_class_with_test_images_only_is_refused(tmp_path):
    root = _folder(tmp_path / "d")
    extra = root / "test" / "fox"
    extra.mkdir()
    (root / "test" / "cat" / "0.png").rename(extra / "0.png")
    with pytest.raises(DataFileError, match=r"test has class folders \['fox'\] that train lacks"):
        load_image_folder(root, image_size=8, val_size=3)


def test_data_classes_work_for_folders_and_cifar_and_are_checked_for_idx(tmp_path, idx_folder):
    from fspladder.config import load_config
    from fspladder.session import load_data

    root = _folder(tmp_path / "d")
    cfg = load_config(None, ["data.name=folder", f"data.root={root}", "data.val_size=2", "data.classes=[2, 0]"])
    s = load_data(cfg)
    assert s.num_classes == 2 and s.class_names == ["emu", "cat"] and set(s.train.y.tolist()) <= {0, 1}
    with pytest.raises(DataFileError, match=r"data.classes: \[7\] do not exist in idx, whose labels are 0..3"):
        load_idx_folder(idx_folder, val_size=100, classes=[1, 7])
    # IDX labels with a gap (no class 2): refused, naming the classes that would keep the others
    tr = np.random.default_rng(0).integers(0, 255, (60, 8, 8)).astype(np.uint8)
    folder = tmp_path / "gap"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", tr)
    write_idx(folder / "train-labels-idx1-ubyte", np.array([0, 1, 3] * 20, dtype=np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte", tr[:9])
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([0, 1, 3] * 3, dtype=np.uint8))
    with pytest.raises(DataFileError, match=r"class\(es\) 2 \('2'\) have no training images.*data.classes"):
        load_idx_folder(folder, val_size=5)
    assert load_idx_folder(folder, val_size=5, classes=[0, 1, 3]).num_classes == 3


def test_a_cifar_label_beyond_the_class_count_fails_in_check_not_in_train(tmp_path):
    d = write_cifar10(tmp_path, labels=[i % 10 for i in range(39)] + [12])
    with pytest.raises(DataFileError, match=r"labels lie outside 0..9 \(e.g. 12\)"):
        load_cifar(d, 10, val_size=20)
    _, problems = check_config(read_config_data(None, ["data.name=cifar10", f"data.root={d}", "data.val_size=20"]))
    assert any("outside 0..9" in p for p in problems)


# 12. A data file can run code
class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_a_crafted_cifar_pickle_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = write_cifar10(tmp_path)
    with open(d / "data_batch_2", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, f)
    with pytest.raises(DataFileError, match=r"data_batch_2 was refused: it asks for posix.system"):
        load_cifar(d, 10, val_size=20)
    assert not (tmp_path / "pwned-by-pickle").exists()
    assert load_cifar(write_cifar10(tmp_path / "ok"), 10, val_size=20).num_classes == 10  # real batches still load


# 5. The user's files are never overwritten
def test_a_run_into_the_users_own_folder_keeps_their_config(tiny, capsys):
    root, idx, teacher = tiny
    exp = root / "exp"
    exp.mkdir()
    mine = "# my comments\nstage2: {epochs: 1}\nstage1: {epochs: 0.5}\nrungs: [{name: target, model: resnet14}]\n"
    (exp / "config.yaml").write_text(mine)
    assert main(["run", str(exp / "config.yaml"), "--out", str(exp), "--set", f"teacher.checkpoint={teacher}",
                 *bench_args(idx), "--no-report"]) == 0
    assert (exp / "config.yaml").read_text() == mine and (exp / "resolved-config.yaml").is_file()


def test_train_never_overwrites_a_checkpoint_and_refuses_a_folder_before_training(tiny, capsys):
    root, idx, teacher = tiny
    before = teacher.read_bytes()
    assert main(["train", "--model", "resnet8", "--save", str(teacher), *bench_args(idx)]) == 2
    assert "already exists and fspladder never overwrites a file" in capsys.readouterr().err
    assert teacher.read_bytes() == before
    folder = root / "a-folder"
    folder.mkdir()
    assert main(["train", "--model", "resnet8", "--save", str(folder), "--set", "stage2.epochs=50",
                 *bench_args(idx)]) == 2  # refused at once: 50 epochs would take minutes
    assert "is a folder; give a file name" in capsys.readouterr().err


# 6. Outputs usable on their own
def test_checkpoints_describe_themselves_and_predict_uses_them(tiny, tmp_path, capsys):
    root, idx, teacher = tiny
    out = root / "selfdesc"
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", "--set", "stage1.epochs=0.5",
                 "--set", "stage2.epochs=1", "--set", "rungs.0.stage2.epochs=1", *bench_args(idx), "--no-report"]) == 0
    ck = torch.load(out / "rung-2-target.pt", weights_only=True)
    prep = ck["meta"]["preprocessing"]
    assert prep["input_shape"] == [1, 12, 12] and len(prep["mean"]) == 1 and prep["num_classes"] == 4
    assert prep["class_names"] == ["0", "1", "2", "3"] and prep["source"]["kind"] == "idx"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["preprocessing"] == prep
    # Scoring the config's test set with the checkpoint alone gives the run's own test accuracy.
    cfg = tmp_path / "data.yaml"
    cfg.write_text(f"data: {{name: idx, root: {idx}, val_size: 100}}\n")
    capsys.readouterr()
    assert main(["predict", str(out / "rung-2-target.pt"), "--data", str(cfg)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["accuracy"] == pytest.approx(summary["target"]["test_acc"]) and res["images"] == 200
    # Classifying image files: the same answers as the network gives the same images in memory.
    from PIL import Image

    from fspladder.data import read_idx

    imgs = np.array(read_idx(next(idx.glob("t10k-images*")))[:6])
    files = []
    for i, a in enumerate(imgs):
        files.append(tmp_path / "imgs" / f"{i}.png")
        files[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(a).save(files[-1])
    csv = tmp_path / "pred.csv"
    assert main(["predict", str(out / "rung-2-target.pt"), str(tmp_path / "imgs"), "--out", str(csv)]) == 0
    rows = csv.read_text().splitlines()[1:]
    from fspladder.predict import load_for_inference

    model, p = load_for_inference(out / "rung-2-target.pt")
    x = (torch.from_numpy(imgs).unsqueeze(1).float() / 255 - p["mean"][0]) / p["std"][0]
    expect = model(x).argmax(1).tolist()
    got = {Path(r.split(",")[0]).name: int(r.split(",")[2]) for r in rows}
    assert [got[f"{i}.png"] for i in range(6)] == expect
    assert main(["predict", str(out / "rung-2-target.pt"), str(tmp_path / "imgs"), "--out", str(csv)]) == 2


# 8. Models from other libraries
def test_torchvision_style_factories_and_tuple_outputs_work(tiny):
    root, idx, teacher = tiny
    out = root / "tv"
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", "--set", "recipe=w2s",
                 "--set", "rungs=[{name: target, model: 'custom_models:torchvision_style'}]",
                 "--set", "stage2.epochs=1", *bench_args(idx), "--no-report"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["rungs"][0]["kwargs"] == {"num_classes": 4}  # in_chans, which it refuses, was left out
    out = root / "tuple"
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", "--set", "recipe=w2s",
                 "--set", "rungs=[{name: target, model: 'custom_models:logits_and_features'}]",
                 "--set", "stage2.epochs=1", *bench_args(idx), "--no-report"]) == 0


def test_train_takes_model_kwargs(tiny, capsys):
    root, idx, _ = tiny
    path = root / "wide-teacher.pt"
    assert main(["train", "--model", "resnet", "--kwargs", "{depth: 14, width: 2}", "--save", str(path),
                 "--set", "stage2.epochs=1", *bench_args(idx)]) == 0
    ck = torch.load(path, weights_only=True)
    assert ck["model"]["kwargs"]["depth"] == 14 and ck["model"]["kwargs"]["width"] == 2
    assert main(["train", "--model", "resnet", "--kwargs", "[1, 2]", "--save", str(root / "x.pt"),
                 *bench_args(idx)]) == 2
    assert "--kwargs must be a mapping" in capsys.readouterr().err


def test_a_model_whose_output_is_not_logits_fails_in_check(tiny):
    root, idx, teacher = tiny
    _, problems = check_config(read_config_data(None, [
        "data.name=idx", f"data.root={idx}", "data.val_size=100", f"teacher.checkpoint={teacher}",
        "rungs=[{name: target, model: 'custom_models:returns_a_string'}]"]))
    assert len(problems) == 1 and "the model's forward returned str, not logits" in problems[0]


# 9. Python API: own tensors and Datasets
def test_the_python_api_takes_own_tensors_and_datasets(tiny):
    from fspladder import load_config, run_ladder
    from fspladder.engine import TrainContext

    root, idx, teacher = tiny
    base = load_idx_folder(idx, val_size=100)
    own = DataSplits.from_tensors((base.train.x, base.train.y), (base.test.x, base.test.y),
                                  val=(base.val.x.float() / 255, base.val.y))
    assert torch.equal(own.val.x, base.val.x) and own.mean == base.mean
    cfg = load_config(None, [f"teacher.checkpoint={teacher}", "stage1.epochs=0.5", "stage2.epochs=1",
                             "rungs.0.stage2.epochs=1", "stage1.batch_size=50", "stage2.batch_size=50",
                             "progress=false"])
    s = run_ladder(cfg, root / "api", data=own)
    assert s["data"]["train"] == 500 and s["data"]["name"] == "tensors"
    ds = torch.utils.data.TensorDataset(base.train.x.float() / 255, base.train.y)
    assert len(DataSplits.from_datasets(ds, ds, val_size=50).train) == 450
    with pytest.raises(DataFileError, match=r"is a DataLoader; pass its dataset"):
        DataSplits.from_datasets(torch.utils.data.DataLoader(ds), ds)
    with pytest.raises(DataFileError, match=r"must be DataSplits, got TensorDataset.*from_datasets"):
        TrainContext(device=torch.device("cpu"), data=ds)
    with pytest.raises(DataFileError, match=r"floats outside \[0, 1\]"):
        DataSplits.from_tensors((base.train.x.float(), base.train.y), (base.test.x, base.test.y))


# 10. The report
def test_report_shows_the_runs_own_time_every_panel_and_val_accuracy(tiny):
    root, idx, teacher = tiny
    out = root / "report"
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", "--set", "stage1.epochs=0.5",
                 "--set", "stage2.epochs=1", "--set", "rungs.0.stage2.epochs=1", *bench_args(idx)]) == 0
    page = (out / "report.html").read_text()
    assert "val accuracy" in page and "recipe (init/stage 1/guidance)" in page
    assert "the teacher was trained earlier in" in page and "not drawn" in page
    cfg_dump = page.split("Config</h2><pre>")[1].split("</pre>")[0]
    assert "bench:" not in cfg_dump and "plan:" not in cfg_dump and "stage1:" in cfg_dump
    assert "\r" not in (out / "metrics.jsonl").read_text()  # no progress bars in logs off a terminal


# The general rule, as properties
def _bad_values(rng, is_int: bool):
    """Values outside a key's declared range, plus non-numbers."""
    vals = [float("nan"), float("inf"), float("-inf"), "abc", [1], True]
    if rng.lo > -1:
        vals.append(-1)
    if not rng.holds(0):
        vals.append(0)
    vals.append(rng.hi * 10 + 10 if math.isfinite(rng.hi) else 1e308)
    return [int(v) if is_int and isinstance(v, float) and math.isfinite(v) else v for v in vals]


SECTIONS = {"": RunConfig, "data.": DataConfig, "stage1.": Stage1Config, "stage2.": Stage2Config, "bench.": BenchConfig,
            "plan.": PlanConfig, "rungs.1.stage2.": Stage2Config}
NUMERIC = [(prefix + name, rng, cls) for prefix, cls in SECTIONS.items() for name, rng in numeric_fields(cls).items()]


def test_every_numeric_key_declares_a_range():
    import dataclasses
    import typing

    for cls in set(SECTIONS.values()):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = str(hints[f.name])
            if ("int" in tp or "float" in tp) and "bool" not in tp and "str" not in tp or f.name == "seed":
                assert "range" in f.metadata, f"{cls.__name__}.{f.name} has no declared range"


def _yaml(v) -> str:
    if isinstance(v, float) and math.isnan(v):
        return ".nan"
    if isinstance(v, float) and math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    return json.dumps(v)


@given(st.sampled_from(NUMERIC), st.data())
def test_check_names_every_bad_number_and_run_refuses_it_before_training(tiny, tmp_path_factory, key_rng, data):
    import typing

    root, idx, teacher = tiny
    key, rng, cls = key_rng
    is_int = "int" in str(typing.get_type_hints(cls)[key.split(".")[-1]])
    value = data.draw(st.sampled_from(_bad_values(rng, is_int)))
    listed = key.endswith(("budgets", "pair_weights"))
    sets = [f"{key}={'[' + _yaml(value) + ']' if listed else _yaml(value)}"]
    base = ["data.name=idx", f"data.root={idx}", f"teacher.checkpoint={teacher}"] + \
        ([] if key == "data.val_size" else ["data.val_size=100"])
    _, problems = check_config(read_config_data(None, base + sets))
    leaf = key.split(".")[-1]
    assert any(leaf in p for p in problems), (sets, problems)
    out = tmp_path_factory.mktemp("refused") / "out"
    assert main(["run", "--out", str(out), "--no-progress", *[a for s in base + sets for a in ("--set", s)]]) == 2
    assert not out.exists()


@pytest.mark.parametrize("argv", [
    ["run", "--bogus"], ["run", "--resume"], ["bench", "--seeds", "two"], ["bench", "--preset", "huge"],
    ["train"], ["train", "--model", "resnet8"], ["layers"], ["layers", "resnet8", "--num-classes", "x"],
    ["plan", "--time-budget", "soon"], ["report"], ["predict"], ["check", "a.yaml", "b.yaml"], ["frobnicate"],
])
def test_malformed_arguments_are_a_usage_error_not_a_traceback(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("argv,expected", [
    (["bench", "--budgets", "0,2", "--out", "{tmp}/b"], "each item of bench.budgets must be a finite number in (0, 1]"),
    (["bench", "--arms", "ladder,nope", "--out", "{tmp}/b"], "bench.arms: unknown arms ['nope']"),
    (["layers", "resnet8", "--input-shape", "1,28"], "--input-shape must be three positive integers"),
    (["layers", "resnet9"], "unknown model 'resnet9'"),
    (["run", "--set", "stage2.epochs", "--out", "{tmp}/r"], "expected key=value"),
    (["run", "--set", "rungs.7.model=resnet8", "--out", "{tmp}/r"], "index 7 is out of range"),
    (["run", "--resume", "{tmp}/nowhere"], "no resolved-config.yaml there"),
    (["bench", "--resume", "{tmp}/nowhere"], "no bench-config.yaml there"),
    (["run", "{tmp}/missing.yaml", "--out", "{tmp}/r"], "config file {tmp}/missing.yaml does not exist"),
    (["run", "{tmp}", "--out", "{tmp}/r"], "it is a folder: give the YAML file inside it"),
    (["report", "{tmp}"], "holds neither summary.json"),
    (["predict", "{tmp}/none.pt", "x.png"], "does not exist"),
    (["plan", "--set", "plan.recipes=[patentt]"], "unknown recipe 'patentt'"),
    (["train", "--model", "resnet", "--kwargs", "{depth: 10}", "--save", "{tmp}/t.pt"], "6n+2"),
])
def test_bad_argument_values_get_one_message(argv, expected, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected.replace("{tmp}", str(tmp_path)) in err and "Traceback" not in err, err
    assert not (tmp_path / "b").exists() and not (tmp_path / "r").exists() and not (tmp_path / "t.pt").exists()


def test_an_internal_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    import fspladder.cli as cli

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "_cmd_models", broken)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError: a bug" in err and "please report it" in err


def test_the_cli_runs_as_a_module_without_a_traceback_on_user_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fspladder", "run", "--set", "stage2.lr=-1",
                        "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "stage2.lr must be a finite number in (0, 10]" in r.stderr
    assert "Traceback" not in r.stderr


# Issue 25: the cases a fresh user found after the rule was in place (the fuzzer, test_fuzz.py, looks for more)
def test_run_out_an_existing_file_or_an_unwritable_place_is_one_message(tiny, tmp_path, capsys):
    root, idx, teacher = tiny
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    for out, expected in ((afile, "is a file, not a folder"), (afile / "sub", "is a file, so no folder can be made"),
                          (Path("/proc/fspladder-test"), "cannot write into /proc")):
        assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", *bench_args(idx)]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and "internal error" not in err, err
    assert afile.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("weights", ["[1, 2]", "[1, 2, 3, 4]"])
def test_pair_weights_of_the_wrong_length_are_refused_by_check_and_run(tiny, tmp_path, weights, capsys):
    root, idx, teacher = tiny
    sets = [f"stage1.pair_weights={weights}", "data.name=idx", f"data.root={idx}", "data.val_size=100",
            f"teacher.checkpoint={teacher}"]
    _, problems = check_config(read_config_data(None, sets))
    assert problems and all("stage1.pair_weights lists" in p and "has 3 FSP pairs" in p for p in problems), problems
    assert main(["run", "--out", str(tmp_path / "r"), *[a for s in sets for a in ("--set", s)]]) == 2
    assert "one weight per pair" in capsys.readouterr().err and not (tmp_path / "r").exists()
    _, problems = check_config(read_config_data(None, sets[1:] + ["stage1.pair_weights=[1, 2, 0.5]"]))
    assert problems == []


def test_a_train_subset_without_every_class_is_refused_naming_the_smallest_that_works(tiny, tmp_path, capsys):
    root, idx, teacher = tiny
    sets = ["data.name=idx", f"data.root={idx}", "data.val_size=100", f"teacher.checkpoint={teacher}"]
    _, problems = check_config(read_config_data(None, sets + ["data.train_subset=2"]))
    assert len(problems) == 1 and "data.train_subset=2 keeps the first 2 training images" in problems[0]
    need = int(problems[0].split("at least ")[1].split()[0])
    assert check_config(read_config_data(None, sets + [f"data.train_subset={need}"]))[1] == []
    assert check_config(read_config_data(None, sets + [f"data.train_subset={need - 1}"]))[1]
    assert main(["run", "--out", str(tmp_path / "r"), *[a for s in sets + ["data.train_subset=2"]
                                                        for a in ("--set", s)]]) == 2
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("extra,expected", [
    (["--top", "0"], "--top must be at least 1"), (["--top", "-1"], "--top must be at least 1"),
    (["--top", "0", "--out", "{tmp}/top0.csv"], "--top must be at least 1"),
    (["--top", "2", "--out", "{tmp}/top2.csv"], "--out writes each image's top class only"),
    (["--out", "{tmp}/no/such/dir/../x.csv"], None), (["--out", "{tmp}"], "it is a folder"),
    (["--split", "val"], "apply to --data CONFIG"),
])
def test_predict_arguments_are_checked_before_anything_is_classified_or_written(tiny, tmp_path, extra, expected,
                                                                               capsys):
    from PIL import Image

    root, idx, teacher = tiny
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(img)
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    rc = main(["predict", str(teacher), str(img), *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if expected is None:  # a folder that does not exist yet is made for the CSV
        assert rc == 0 and (tmp_path / "no" / "such" / "x.csv").read_text().startswith("file,class")
        return
    assert rc == 2 and expected in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png"]  # no header-only CSV left behind


def test_channels_last_tensors_are_read_as_channels_last_and_a_layout_with_no_channel_axis_is_named():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 12, 12, 1), dtype=np.uint8)  # numpy / TensorFlow layout (N, H, W, C)
    y = np.arange(40) % 4
    s = DataSplits.from_tensors((x, y), (x[:8], y[:8]), val_size=8)
    assert s.in_chans == 1 and s.image_size == (12, 12)
    assert torch.equal(DataSplits.from_tensors((x.transpose(0, 3, 1, 2), y), (x[:8].transpose(0, 3, 1, 2), y[:8]),
                                               val_size=8).train.x, s.train.x)
    rgb = rng.integers(0, 256, (40, 12, 12, 3), dtype=np.uint8)
    assert DataSplits.from_tensors((rgb, y), (rgb[:8], y[:8]), val_size=8).in_chans == 3
    with pytest.raises(DataFileError, match=r"no axis of 1 to 4 channels; give \(N, C, H, W\).*\(N, H, W, C\)"):
        DataSplits.from_tensors((rng.random((40, 12, 12, 12)), y), (rng.random((8, 12, 12, 12)), y[:8]))
    for kw, msg in (({"val_size": 0}, "val_size must be an integer >= 1"), ({"num_classes": 2}, "a label is 3"),
                    ({"class_names": ["a"]}, "1 names for 4 classes"), ({"seed": -1}, "seed must be")):
        with pytest.raises(DataFileError, match=msg):
            DataSplits.from_tensors((x, y), (x[:8], y[:8]), **{"val_size": 8, **kw})


def test_a_run_on_own_tensors_records_that_data_and_why_the_teacher_has_no_accuracy(tiny, capsys):
    import yaml

    from fspladder import load_config, run_ladder

    root, idx, teacher = tiny
    base = load_idx_folder(idx, val_size=100)
    own = DataSplits.from_tensors((base.train.x.permute(0, 2, 3, 1).numpy(), base.train.y),
                                  (base.test.x, base.test.y), val_size=100, name="my-bars")
    cfg = load_config(None, [f"teacher.checkpoint={teacher}", "stage1.epochs=0.25", "stage2.epochs=1",
                             "rungs=[{name: target, model: resnet14}]", "stage1.batch_size=50",
                             "stage2.batch_size=50", "progress=false"])
    out = root / "own-data"
    s = run_ladder(cfg, out, data=own)
    saved = yaml.safe_load((out / "resolved-config.yaml").read_text())
    assert "fashion-mnist" not in json.dumps(saved["data"]) and saved["data"]["from_python"] == "my-bars"
    assert "fashion-mnist" not in json.dumps(s["config"]["data"]) and s["data"]["name"] == "my-bars"
    assert "val_acc" in s["teacher"] or "not measured" in s["teacher"]["no_accuracy"]
    assert main(["run", "--resume", str(out)]) == 2
    assert "trained on data passed from Python" in capsys.readouterr().err
    with pytest.raises(FspladderError, match="run_ladder takes a RunConfig"):
        run_ladder({"stage2": {"epochs": 1}}, root / "dict-config")


def test_an_empty_or_malformed_device_is_one_message(capsys):
    """Found by the deep fuzz profile (seed 7): torch's own error for device '' was a traceback."""
    from fspladder.cli import main

    for value in ("''", "cuda:x"):  # YAML: the empty string, and a device torch cannot parse
        assert main(["check", "--set", f"device={value}"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "device must be auto, cpu, cuda or cuda:N" in err
