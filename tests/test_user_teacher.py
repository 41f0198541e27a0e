"""Issue 33: the small network a user already trained, taken as the teacher with its weights as they are.

The teachers here are trained by a plain PyTorch loop that uses no fspladder code (the architectures are a built-in
resnet8, built once with create_model as a user would import it, and a user's ``module:factory`` model), with the
user's own normalisation, and saved the ways PyTorch users save them."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import growth_user_model
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from conftest import write_idx
from safetensors.torch import save_file

from fspladder import DataSplits, create_model, load_config, run_ladder
from fspladder.check import check_config
from fspladder.checkpoint import CheckpointError
from fspladder.cli import main
from fspladder.config import read_config_data
from fspladder.distributed import DistInfo
from fspladder.rung import init_rung, teacher_digest
from fspladder.runner import ResumeError, _Run
from fspladder.teacher_source import fit_state_dict

MEAN, STD = 0.5, 0.5  # the users' normalisation ([-1, 1] inputs): not the data's own statistics
RAW = (0.0, 1 / 255)  # a network trained on raw 0..255 pixel values, in fspladder's [0, 1] units
TINY = "growth_user_model:tiny_growable"  # a user's model (with a growth family), by module:factory
MODELS = {"resnet8": ("resnet8", "resnet14"), "tiny": (TINY, TINY)}  # name: (teacher spec, student spec)
STUDENT_KW = {"resnet8": {}, "tiny": {"depth": 2}}
FORMATS = ("state_dict", "lightning", "safetensors")


def _bars(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k is a bright bar at rows 3k..3k+2 on a dark noisy background (12x12 grey, 4 classes)."""
    y = rng.integers(0, 4, n).astype(np.uint8)
    x = rng.integers(0, 60, (n, 12, 12)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 3 * k: 3 * k + 3, :] = 220
    return x, y


def _user_inputs(x: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """The user's own preprocessing, torchvision's ToTensor then Normalize: (N, 1, 12, 12) floats."""
    return (torch.from_numpy(x).float().div(255).unsqueeze(1) - mean) / std


def _build(name: str) -> nn.Module:
    if name == "resnet8":
        return create_model("resnet8", in_chans=1, num_classes=4)
    return growth_user_model.tiny_growable(depth=1, width=8, in_chans=1, num_classes=4)


def _train_plain(name: str, x: np.ndarray, y: np.ndarray, mean: float, std: float) -> nn.Module:
    """A plain PyTorch loop: Adam, 3 epochs of batches of 50; no fspladder code."""
    torch.manual_seed(0)
    net = _build(name)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    xs, ys = _user_inputs(x, mean, std), torch.from_numpy(y).long()
    for _ in range(3):
        perm = torch.randperm(len(ys))
        for i in range(0, len(ys), 50):
            idx = perm[i: i + 50]
            loss = F.cross_entropy(net(xs[idx]), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def _save(net: nn.Module, path: Path, fmt: str) -> Path:
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if fmt == "state_dict":
        torch.save(state, path.with_suffix(".pt"))
        return path.with_suffix(".pt")
    if fmt == "lightning":  # a LightningModule holding the network as self.model, with the trainer's records
        torch.save({"epoch": 3, "global_step": 36, "pytorch-lightning_version": "2.4.0",
                    "state_dict": {f"model.{k}": v for k, v in state.items()},
                    "hyper_parameters": {"lr": 0.01}, "optimizer_states": []}, path.with_suffix(".ckpt"))
        return path.with_suffix(".ckpt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(path.with_suffix(".safetensors")))
    return path.with_suffix(".safetensors")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """The data on disk (an IDX folder), the users' networks and their files in every format."""
    root = tmp_path_factory.mktemp("user-teacher")
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = _bars(rng, 600), _bars(rng, 200)
    idx = root / "idx"
    idx.mkdir()
    write_idx(idx / "train-images-idx3-ubyte", xtr)
    write_idx(idx / "train-labels-idx1-ubyte", ytr)
    write_idx(idx / "t10k-images-idx3-ubyte", xte)
    write_idx(idx / "t10k-labels-idx1-ubyte", yte)
    nets = {name: _train_plain(name, xtr, ytr, MEAN, STD) for name in MODELS}
    files = {(name, fmt): _save(nets[name], root / f"{name}-{fmt}", fmt) for name in MODELS for fmt in FORMATS}
    raw = _train_plain("tiny", xtr, ytr, *RAW)
    with torch.no_grad():
        own_acc = {name: (net(_user_inputs(xte, MEAN, STD)).argmax(1) == torch.from_numpy(yte).long())
                   .double().mean().item() for name, net in nets.items()}
    return {"root": root, "idx": idx, "nets": nets, "files": files, "test": (xte, yte), "train": (xtr, ytr),
            "own_acc": own_acc, "raw": _save(raw, root / "raw", "state_dict")}


def _config(world: dict, path: Path, name: str, ckpt: Path, pre: tuple[float, float] | None = (MEAN, STD),
            **teacher: object) -> Path:
    """A user's config file for teacher ``ckpt`` (architecture ``name``) and one student, sized to run in seconds."""
    t_spec, s_spec = MODELS[name]
    cfg = {"data": {"name": "idx", "root": str(world["idx"]), "val_size": 100},
           "teacher": {"checkpoint": str(ckpt), "model": t_spec, **teacher},
           "rungs": [{"name": "target", "model": s_spec, "kwargs": STUDENT_KW[name]}],
           "stage1": {"epochs": 0.5, "batch_size": 50}, "stage2": {"epochs": 1, "batch_size": 50},
           "eval_batch_size": 200, "progress": False}
    if pre is not None:
        cfg["teacher"]["preprocessing"] = {"mean": [pre[0]], "std": [pre[1]]}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _one_line_error(capsys, *argv: str) -> str:
    """Run the CLI, expect exit 2 with a single error line and no traceback; return that line. (`run` announces
    its output folder on a line of its own first.)"""
    assert main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) >= 1 and all(line.startswith("fspladder run -> ") for line in lines[:-1]), lines
    err = lines[-1]
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.startswith(f"fspladder {argv[0]}: error: "), err
    return err


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_growth_starts_from_exactly_the_users_logits_on_its_preprocessing(world, tmp_path, name, fmt):
    """`run`'s own set-up (its checks, data, teacher and chain) and its growth init: the grown student's logits on
    the run's inputs are the user's network's on the user's own preprocessing."""
    cfg = load_config(_config(world, tmp_path / "my.yaml", name, world["files"][(name, fmt)]), ["recipe=grow"])
    run = _Run(cfg, tmp_path / "out", False, DistInfo(), None)
    run.prepare()
    data, (teacher, student) = run.data, run.chain
    assert data.mean == (MEAN,) and data.std == (STD,)  # the teacher's normalisation, not the data's
    assert run.other_classes is None and run.tck["source"]["format"] == fmt
    assert run.tck["source"]["prefix"] == ("model." if fmt == "lightning" else None)
    task = run.tasks[0]
    init_rung(teacher, student, task.recipe, task.seed, task.growth_noise)  # as the chain executor does
    xte, _ = world["test"]
    student.model.eval()
    with torch.no_grad():
        theirs = world["nets"][name](_user_inputs(xte, MEAN, STD))  # (200, 4)
        ours = student.model(run.ctx.prepare(data.test.read(torch.arange(len(data.test))), False, None))
    scale = theirs.abs().max().item()
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-5 * max(1.0, scale)), (ours - theirs).abs().max()


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_run_grow_and_patent_from_the_users_file_record_its_source_and_accuracy(world, tmp_path, name, fmt):
    ckpt = world["files"][(name, fmt)]
    config = _config(world, tmp_path / "my.yaml", name, ckpt)
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    for recipe in ("grow", "patent"):
        out = tmp_path / recipe
        assert main(["run", str(config), "--out", str(out), "--set", f"recipe={recipe}", "--no-report"]) == 0
        s = json.loads((out / "summary.json").read_text())
        t = s["teacher"]
        assert t["source"] == {"file": str(ckpt), "sha256": sha, "format": fmt,
                               "prefix": "model." if fmt == "lightning" else None, "added": None}
        # Measured on the run's test split with its preprocessing: what the user's own loop measured.
        assert t["test_acc"] == pytest.approx(world["own_acc"][name], abs=1e-12) and t["test_acc"] > 0.9
        assert 0.9 < t["val_acc"] <= 1.0
        assert t["preprocessing"] == {"mean": [MEAN], "std": [STD], "from": "teacher.preprocessing"}
        assert s["rungs"][0]["init"]["init"] == ("grow" if recipe == "grow" else "random")
        assert s["data"]["preprocessing"]["mean"] == [MEAN]  # the students' checkpoints record it too
        rung = torch.load(out / s["rungs"][0]["checkpoint"], weights_only=True)
        assert rung["meta"]["preprocessing"]["std"] == [STD]


def test_wrong_normalisation_is_flagged_by_check_and_the_right_one_is_not(world, tmp_path):
    raw = world["raw"]  # trained on raw 0..255 pixel values
    sets = ["data.name=idx", f"data.root={world['idx']}", "data.val_size=100", f"teacher.checkpoint={raw}",
            f"teacher.model={TINY}", f"rungs=[{{name: target, model: '{TINY}', kwargs: {{depth: 2}}}}]"]
    _, problems = check_config(read_config_data(None, sets))
    assert len(problems) == 1, problems
    p = problems[0]
    assert "near chance" in p and "preprocessing" in p and "class order" in p and "channels" in p, p
    acc = float(p.split(" scores ")[1].split()[0])
    assert acc < 0.37  # four classes: chance is about a quarter
    _, problems = check_config(read_config_data(None, sets + ["teacher.preprocessing.mean=[0.0]",
                                                              f"teacher.preprocessing.std=[{RAW[1]!r}]"]))
    assert problems == []


def test_a_trained_module_from_python_and_its_resume(world, tmp_path, capsys):
    (xtr, ytr), (xte, yte) = world["train"], world["test"]
    splits = DataSplits.from_tensors((xtr, ytr), (xte, yte), val_size=100)
    cfg = load_config(_config(world, tmp_path / "my.yaml", "tiny", world["files"][("tiny", "state_dict")]),
                      ["recipe=grow", "teacher.checkpoint=builtin:resnet8_fmnist", "teacher.model=null"])
    net = world["nets"]["tiny"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    s = run_ladder(cfg, tmp_path / "py", data=splits, teacher=net)
    assert s["teacher"]["source"] == {"format": "python object", "state_digest": teacher_digest(net)}
    assert s["teacher"]["test_acc"] == pytest.approx(world["own_acc"]["tiny"], abs=1e-12)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the caller's network untouched
    # The config's data, the teacher from Python: the run says so, and a CLI resume (which could only load
    # teacher.checkpoint) is refused in one line.
    s = run_ladder(cfg, tmp_path / "py2", teacher=net)
    assert s["teacher"]["source"]["format"] == "python object" and s["teacher"]["val_acc"] > 0.9
    saved = yaml.safe_load((tmp_path / "py2" / "resolved-config.yaml").read_text())
    assert "from_python" in saved["teacher"] and "checkpoint" not in saved["teacher"]
    assert saved["teacher"]["state_digest"] == teacher_digest(net)
    err = _one_line_error(capsys, "run", "--resume", str(tmp_path / "py2"))
    assert "teacher passed from Python" in err and "teacher=the same network" in err
    # From Python, a resume learns from the same network or is refused, before anything is read or written:
    # without teacher= (it would load teacher.checkpoint), with other weights, or with no digest to check.
    with pytest.raises(ResumeError, match="learned from a teacher passed from Python, not teacher.checkpoint"):
        run_ladder(cfg, tmp_path / "py2", resume=True)
    other = copy.deepcopy(net)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    with pytest.raises(ResumeError, match="weights of the teacher passed now differ from those the run learned"):
        run_ladder(cfg, tmp_path / "py2", resume=True, teacher=other)
    with pytest.raises(ResumeError, match="holds a finished run"):  # the same network passes this check
        run_ladder(cfg, tmp_path / "py2", resume=True, teacher=net)
    old = tmp_path / "older"
    old.mkdir()
    (old / "resolved-config.yaml").write_text(yaml.safe_dump(
        {**saved, "teacher": {k: v for k, v in saved["teacher"].items() if k != "state_digest"}}))
    with pytest.raises(ResumeError, match="cannot be checked"):
        run_ladder(cfg, old, resume=True, teacher=net)
    (old / "resolved-config.yaml").write_text(yaml.safe_dump({**saved, "teacher": {"checkpoint": "t.pt"}}))
    with pytest.raises(ResumeError, match="learned from teacher.checkpoint, not a network passed from Python"):
        run_ladder(cfg, old, resume=True, teacher=net)
    assert sorted(p.name for p in old.iterdir()) == ["resolved-config.yaml"]


def _malformed(world: dict, tmp: Path) -> dict[str, tuple[Path, list[str], str]]:
    """name: (file, extra --set, what the one line must say)."""
    good = world["files"][("resnet8", "state_dict")]
    cut = tmp / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cut_st = tmp / "cut.safetensors"
    st = world["files"][("resnet8", "safetensors")].read_bytes()
    cut_st.write_bytes(st[: len(st) // 2])
    pickled = tmp / "whole.pt"
    torch.save(world["nets"]["tiny"], pickled)
    tiny_weights = world["files"][("tiny", "state_dict")]
    wide = tmp / "wide.pt"
    torch.save(create_model("resnet8", width=2, in_chans=1, num_classes=4).state_dict(), wide)
    return {
        "truncated": (cut, [], "cut short"),
        "truncated safetensors": (cut_st, [], "cannot be read as a .safetensors file"),
        "pickled module": (pickled, [], "torch.save(model.state_dict(), path)"),
        "wrong keys": (tiny_weights, [], "keys are missing from the file"),
        "wrong prefix": (world["files"][("resnet8", "lightning")], ["teacher.prefix=net."],
                         "teacher.prefix: 'model.' makes every key fit"),
        "wrong shapes": (wide, [], "weights have other shapes"),
        "no architecture": (good, ["teacher.model=null"], "set teacher.model"),
    }


def test_every_malformed_file_is_one_line_exit_2_from_check_and_run(world, tmp_path, capsys):
    for case, (path, extra, says) in _malformed(world, tmp_path).items():
        config = _config(world, tmp_path / "my.yaml", "resnet8", path)
        sets = [a for s in extra for a in ("--set", s)]
        for cmd in (["run", str(config), "--out", str(tmp_path / "out")], ["check", str(config)]):
            if cmd[0] == "check":  # check lists every problem: one here, on its own line
                assert main([*cmd, *sets]) == 2
                err = capsys.readouterr().err
                assert says in err and "Traceback" not in err and err.count("teacher.checkpoint") >= 1, (case, err)
                continue
            err = _one_line_error(capsys, *cmd, *sets)
            assert says in err, (case, err)
            assert not (tmp_path / "out").exists()


def test_key_mismatch_names_missing_unexpected_and_the_prefix_that_fits():
    model = create_model("resnet8", in_chans=1, num_classes=4)
    state = model.state_dict()
    fitted, how = fit_state_dict({f"module.{k}": v for k, v in state.items()}, model, None, "f")
    assert set(fitted) == set(state) and how == {"prefix": "module.", "added": None}  # DataParallel's wrapper

    class Wrapper(nn.Module):  # the user's factory wraps the saved network: the prefix is added
        def __init__(self) -> None:
            super().__init__()
            self.net = create_model("resnet8", in_chans=1, num_classes=4)

    _, how = fit_state_dict(dict(state), Wrapper(), None, "f")
    assert how == {"prefix": None, "added": "net."}
    partial = {f"model.{k}": v for k, v in list(state.items())[:-2]}  # the classifier's weights left out
    with pytest.raises(CheckpointError) as e:
        fit_state_dict(partial, model, None, "f")
    msg = str(e.value)
    assert "2 of the model's" in msg and "fc.weight" in msg and "stripping 'model.'" in msg and "\n" not in msg


def test_train_exports_a_plain_state_dict_and_its_checkpoint_loads_in_plain_torch(world, tmp_path):
    save, export = tmp_path / "mine.pt", tmp_path / "mine.safetensors"
    assert main(["train", "--model", "resnet8", "--save", str(save), "--export-state-dict", str(export),
                 "--set", "data.name=idx", "--set", f"data.root={world['idx']}", "--set", "data.val_size=100",
                 "--set", "stage2.epochs=1", "--set", "stage2.batch_size=50", "--no-progress"]) == 0
    from safetensors.torch import load_file

    ours = torch.load(save, weights_only=True)["state_dict"]  # the tool's own checkpoint, in a user's code
    for state in (ours, load_file(str(export))):
        net = create_model("resnet8", in_chans=1, num_classes=4)
        net.load_state_dict(state)
        assert all(torch.equal(v, ours[k]) for k, v in net.state_dict().items())
    pt = tmp_path / "mine-export.pt"
    assert main(["train", "--model", "resnet8", "--save", str(tmp_path / "b.pt"), "--export-state-dict", str(pt),
                 "--set", "data.name=idx", "--set", f"data.root={world['idx']}", "--set", "data.val_size=100",
                 "--set", "stage2.epochs=1", "--set", "stage2.batch_size=50", "--no-progress"]) == 0
    assert set(torch.load(pt, weights_only=True)) == set(ours)


def test_the_bench_takes_a_trained_module_from_python(world, tmp_path, capsys):
    from fspladder.bench import run_bench

    cfg = load_config(_config(world, tmp_path / "my.yaml", "tiny", world["files"][("tiny", "state_dict")]),
                      ["teacher.checkpoint=builtin:resnet8_fmnist", "teacher.model=null", "bench.seeds=1",
                       "bench.budgets=[1.0]", "bench.arms=[scratch, grow]"])
    bench = run_bench(cfg, tmp_path / "bench", teacher=world["nets"]["tiny"])
    t = bench["teacher"]
    assert t["source"]["format"] == "python object"
    assert t["test_acc"] == pytest.approx(world["own_acc"]["tiny"], abs=1e-12)
    assert {r["arm"] for r in bench["runs"]} == {"scratch", "grow"}
    # its saved config names teacher.checkpoint, which it did not learn from: the CLI refuses to resume it
    before = sorted(p.name for p in (tmp_path / "bench").rglob("*"))
    capsys.readouterr()  # what the bench printed as it ran
    assert main(["bench", "--resume", str(tmp_path / "bench")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "that bench learned from a teacher passed from Python" in err[0], err
    assert "run_bench(cfg," in err[0] and sorted(p.name for p in (tmp_path / "bench").rglob("*")) == before


def test_a_training_scripts_checkpoint_dict_is_read_and_an_ambiguous_one_refused(tmp_path):
    from fspladder.teacher_source import read_weights

    state = create_model("resnet8", in_chans=1, num_classes=4).state_dict()
    torch.save({"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": []}},
               tmp_path / "a.pt")
    got, fmt = read_weights(tmp_path / "a.pt")
    assert fmt == "dict:model_state_dict" and set(got) == set(state)
    torch.save({"model": state, "ema": state}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="several sets of weights \\('model', 'ema'\\)"):
        read_weights(tmp_path / "b.pt")


def test_a_teacher_factory_that_does_not_import_is_a_problem_check_lists(world, tmp_path):
    good = world["files"][("resnet8", "state_dict")]
    sets = ["data.name=idx", f"data.root={world['idx']}", "data.val_size=100", f"teacher.checkpoint={good}",
            "teacher.model=no_such_module:net"]
    _, problems = check_config(read_config_data(None, sets))
    assert any("teacher.model 'no_such_module:net'" in p and "cannot import" in p for p in problems), problems


def test_two_prefixes_that_fit_with_different_weights_are_refused_naming_teacher_prefix():
    model = create_model("resnet8", in_chans=1, num_classes=4)
    state = model.state_dict()
    moved = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    both = {**{f"model.{k}": v for k, v in state.items()}, **{f"ema.{k}": v for k, v in moved.items()}}
    with pytest.raises(CheckpointError) as e:  # a Lightning file with the network and its EMA copy
        fit_state_dict(both, model, None, "f")
    msg = str(e.value)
    assert "several key prefixes fit" in msg and "'model.'" in msg and "'ema.'" in msg and "teacher.prefix" in msg
    fitted, how = fit_state_dict(both, model, "ema.", "f")  # named: no guess
    assert how["prefix"] == "ema." and all(torch.equal(fitted[k], moved[k]) for k in state)
    same = {**{f"model.{k}": v for k, v in state.items()}, **{f"ema.{k}": v for k, v in state.items()}}
    fitted, _ = fit_state_dict(same, model, None, "f")  # the same weights under both: either fits
    assert all(torch.equal(fitted[k], state[k]) for k in state)


def test_without_data_a_users_file_is_read_but_no_network_is_built_by_the_factorys_defaults(world, tmp_path):
    """The data failed, so the teacher cannot be sized for it: resnet8's defaults (3 channels, 10 classes) would
    make the file's weights look misshapen. Only what the file itself shows is checked."""
    good = world["files"][("resnet8", "state_dict")]
    sets = ["data.name=idx", f"data.root={tmp_path / 'nowhere'}", "data.val_size=100", f"teacher.checkpoint={good}",
            "teacher.model=resnet8"]
    _, problems = check_config(read_config_data(None, sets))
    assert problems and all(p.startswith("data") for p in problems), problems
    _, problems = check_config(read_config_data(None, sets + ["teacher.model=null"]))
    assert any(p.startswith("teacher.checkpoint") and "set teacher.model" in p for p in problems), problems
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _, problems = check_config(read_config_data(None, sets + [f"teacher.checkpoint={cut}"]))
    assert any(p.startswith("teacher.checkpoint") and "cut short" in p for p in problems), problems
