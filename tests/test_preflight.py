"""Issue 34: one preflight. Every refusal ``check`` gives, ``run``, ``bench`` and ``plan`` give too, from the same
function (``fspladder.check.preflight``) and before any work: exit 2, one line, nothing written; ``train``
refuses the same way what concerns the network it trains (its output, the data, keys nothing reads)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import bench_args
from custom_models import BAD_OUTPUT_MODELS

from fspladder import DataSplits
from fspladder.check import preflight
from fspladder.cli import main
from fspladder.config import ModelConfig, load_config
from fspladder.errors import FspladderError
from fspladder.models import module_device, probe_logits
from fspladder.runner import run_ladder, train_network


def _call(argv: list[str], cwd: Path) -> tuple[int, str]:
    out = io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            rc = main(argv)
    finally:
        os.chdir(old)
    return rc, out.getvalue()


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _error_lines(out: str) -> list[str]:
    """What a refusal printed, but the announcement of the output folder (`fspladder run -> DIR`)."""
    return [ln for ln in out.splitlines() if ln.strip() and " -> " not in ln.split(":")[0]]


@pytest.fixture(scope="module")
def base(tiny_teacher) -> list[str]:
    root, idx, teacher = tiny_teacher
    return [*bench_args(idx), "--set", f"teacher.checkpoint={teacher}", "--set", "stage2.epochs=1",
            "--set", "rungs.0.stage2.epochs=1", "--set", "stage1.epochs=0.25", "--set", "bench.arms=[scratch]",
            "--set", "bench.seeds=1", "--set", "bench.budgets=[1]", "--set", "plan.planning_budget=5"]


# Each kind of refusal `check` gives, as --set items on the tiny data (ResNet-8 teacher, 4 classes, 1 channel).
REFUSALS = {
    "model output (feature map)": ["rungs.1.model=custom_models:feature_map"],
    "model output (a string)": ["rungs.1.model=custom_models:returns_a_string"],
    "unknown model": ["rungs.1.model=resnet9"],
    "unknown tap": ["rungs.1.pairs=[[stem, nowhere], [layer1, layer2], [layer2, layer3]]"],
    "FSP channels differ": ["rungs.1.kwargs={width: 2}"],
    "ladder order": ["rungs.0.model=resnet20", "rungs.1.model=resnet14"],
    "teacher missing": ["teacher.checkpoint=no-such-teacher.pt"],
    "data too small for val_size": ["data.val_size=600"],
    "key nothing reads": ["stage2.kd_alpha=0.5"],
    "growth across families": ["recipe=grow", "rungs.1.model=custom_models:plain_cnn"],
    "growth across classes": ["recipe=grow", "data.classes=[0, 1]"],
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_run_bench_and_plan_refuse_what_check_refuses_in_one_line_with_nothing_written(kind, base, tmp_path):
    sets = [a for s in REFUSALS[kind] for a in ("--set", s)]
    for cmd in (["run", "--out", "o", "--no-report"], ["bench", "--out", "o", "--no-report"], ["plan", "--out", "o"]):
        # what `check` lists (`check --bench` for the bench: its arms too), each problem on one line
        rc, out = _call(["check", *base, *sets, *(["--bench"] if cmd[0] == "bench" else [])], tmp_path)
        problems = [ln[4:] for ln in out.splitlines() if ln.startswith("  - ")]
        assert rc == 2 and problems, out
        if cmd[0] != "bench":
            assert len(problems) == 1, out  # one kind of refusal at a time
        before = _files(tmp_path)
        rc, out = _call([cmd[0], *base, *sets, *cmd[1:]], tmp_path)
        lines = _error_lines(out)
        assert rc == 2 and "Traceback" not in out, (cmd[0], out)
        if len(problems) == 1:  # one line, in check's words
            assert len(lines) == 1 and problems[0] in lines[0], (cmd[0], out, problems)
        else:  # a heading, then check's problems one a line
            assert [ln[4:] for ln in lines[1:]] == problems, (cmd[0], out, problems)
        assert _files(tmp_path) == before, cmd[0]  # no metrics.jsonl, resolved-config.yaml, plan.json...


@pytest.mark.parametrize("model", BAD_OUTPUT_MODELS + ["resnet9"])
def test_train_refuses_a_network_check_would_refuse_before_it_trains(model, base, tmp_path):
    rc, out = _call(["train", *base, "--model", model, "--save", "t.pt"], tmp_path)
    lines = _error_lines(out)
    assert rc == 2 and len(lines) == 1 and "Traceback" not in out, out
    assert model in lines[0]
    assert _files(tmp_path) == set()
    if model == "custom_models:feature_map":  # the case: check and run refuse it in the same words
        assert "returns logits of shape (2, 64, 6, 6)" in lines[0] and "pass num_classes" in lines[0]


@pytest.mark.parametrize("sets", [["data.val_size=600"], ["stage2.kd_alpha=0.5"]])
def test_train_refuses_the_config_problems_that_concern_it(sets, base, tmp_path):
    rc, out = _call(["train", *base, "--set", sets[0], "--model", "resnet8", "--save", "t.pt"], tmp_path)
    assert rc == 2 and len(_error_lines(out)) == 1, out
    assert sets[0].split("=")[0] in out and _files(tmp_path) == set()


def test_python_api_refuses_before_writing(base, tiny_teacher, tmp_path):
    root, idx, teacher = tiny_teacher
    sets = [base[i + 1] for i, a in enumerate(base) if a == "--set"]
    cfg = load_config(None, [*sets, "rungs.1.model=custom_models:feature_map"])
    with pytest.raises(FspladderError, match="pass num_classes"):
        run_ladder(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(FspladderError, match="pass num_classes"):
        train_network(load_config(None, sets), ModelConfig(model="custom_models:feature_map"), tmp_path / "t.pt")
    assert not (tmp_path / "t.pt").exists()
    pf = preflight(load_config(None, sets))  # what the commands reuse: the data and the teacher, checked
    assert pf.problems == [] and pf.data is not None and pf.teacher is not None and len(pf.data.train) == 500


def test_batch_and_size_warnings_name_the_key_and_the_real_size(base, tmp_path):
    # 500 training images: a batch of 600 is larger than the set, 100 gives 5 steps per epoch
    rc, out = _call(["check", *base, "--set", "stage2.batch_size=600", "--set", "stage1.batch_size=100"], tmp_path)
    assert rc == 0, out
    assert "note: stage2.batch_size=600 is larger than the 500 training images" in out
    assert "note: stage1.batch_size=100 gives 5 step(s) per epoch on 500 training images" in out
    rc, out = _call(["run", *base, "--set", "stage2.batch_size=600", "--set", "rungs.0.stage2.batch_size=50",
                     "--out", "o", "--no-report"], tmp_path)
    assert rc == 0, out
    warned = [ln for ln in out.splitlines() if ln.startswith("warning: ")]
    assert len(warned) == 1 and "stage2.batch_size=600" in warned[0], out
    rc, out = _call(["check", *base, "--set", "data.train_subset=20"], tmp_path)
    assert rc == 0 and "note: data: 20 training images for 4 classes (data.train_subset=20)" in out, out


def test_val_size_beyond_the_data_names_the_key_and_the_real_size(base, tmp_path):
    rc, out = _call(["check", *base, "--set", "data.val_size=0"], tmp_path)
    assert rc == 2 and "data.val_size" in out and "training images =" not in out, out  # no "-4,856 images" note
    rc, out = _call(["check", *base, "--set", "data.val_size=599"], tmp_path)  # one training image left
    assert rc == 2 and "data.val_size=599 holds out 599 of the 600 training images" in out, out


def test_a_small_folder_reports_its_real_size_never_a_negative_one(tmp_path):
    """The issue's case: 144 images in a folder, val_size left at its default (5,000) or set to 0."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "imgs"
    for k in range(4):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(36):
            Image.fromarray(np.full((8, 8), 7 * i + k, np.uint8)).save(root / f"c{k}" / f"{i}.png")
    data = ["--set", "data.name=folder", "--set", f"data.root={root}", "--set", "data.image_size=8",
            "--set", "data.channels=1"]
    rc, out = _call(["check", *data], tmp_path)
    assert rc == 2 and "-4," not in out and "training images =" not in out, out
    assert "data.val_size is 5,000 (the default when the key is not set), but folder:imgs has" in out, out
    rc, out = _call(["check", *data, "--set", "data.val_size=0"], tmp_path)
    assert rc == 2 and "data.val_size must be" in out and "training images" not in out, out


class _Fails(nn.Module):
    """A user's trained teacher whose forward fails in its own code, or returns no logits."""

    def __init__(self, what: object) -> None:
        super().__init__()
        self.fc = nn.Linear(144, 4)
        self.what = what

    def forward(self, x):
        if isinstance(self.what, BaseException):
            raise self.what
        return self.what


class _NoParameters(nn.Module):
    def forward(self, x):  # (B, 1, 12, 12) -> (B, 4): no parameters and no buffers to find a device by
        return x.flatten(1)[:, :4]


class _SmallBatchesOnly(nn.Module):
    """Passes the two-image probe, returns no logits on the batches the teacher is scored on."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(144, 4)

    def forward(self, x):
        return self.fc(x.flatten(1)) if len(x) <= 2 else None


def _sets(base: list[str]) -> list[str]:
    return [base[i + 1] for i, a in enumerate(base) if a == "--set"]


@pytest.mark.parametrize("what", [ValueError("bad input"), AssertionError(), KeyError("layer"), IndexError("i"),
                                  StopIteration(), TypeError("t"), None, "logits"], ids=repr)
def test_a_python_teacher_whose_forward_fails_is_one_teacher_problem_never_a_traceback(what, base, tmp_path):
    cfg = load_config(None, _sets(base))
    pf = preflight(cfg, teacher_module=_Fails(what))
    assert len(pf.problems) == 1 and pf.problems[0].startswith("teacher: "), pf.problems
    assert "cannot run on the data's images 1x12x12" in pf.problems[0] and "\n" not in pf.problems[0]
    with pytest.raises(FspladderError):  # the CLI's exit 2, one line
        run_ladder(cfg, tmp_path / "out", teacher=_Fails(what))
    assert not (tmp_path / "out").exists()


def test_a_teacher_without_parameters_or_logits_on_real_batches_is_checked_without_a_traceback(base):
    out, why = probe_logits(_NoParameters(), (1, 12, 12))  # no parameter to take a device from: the CPU
    assert why is None and out is not None and tuple(out.shape) == (2, 4)
    assert module_device(_NoParameters()) == torch.device("cpu")
    cfg = load_config(None, _sets(base))
    pf = preflight(cfg, teacher_module=_NoParameters())  # scored on the CPU; whatever it finds, no exception
    assert pf.teacher is not None or any(p.startswith("teacher") for p in pf.problems), pf.problems
    pf = preflight(cfg, teacher_module=_SmallBatchesOnly())  # the probe passes; scoring it meets None
    assert len(pf.problems) == 1 and pf.problems[0].startswith("teacher: "), pf.problems
    assert "returned NoneType, not logits" in pf.problems[0]


def test_a_model_too_large_to_allocate_is_a_rung_problem_naming_its_size(base):
    # 3.2M channels: one 3x3 convolution of them asks for ~343,000 GiB, beyond any address space
    pf = preflight(load_config(None, [*_sets(base), "rungs.1.kwargs={width: 200000}"]))
    assert len(pf.problems) == 1, pf.problems
    p = pf.problems[0]
    assert p.startswith("rungs[1] (target): ") and "too large to build here: out of memory" in p, p
    assert "'width': 200000" in p and "GiB" in p and "smaller model" in p


def test_splits_from_python_that_the_teachers_preprocessing_refuses_are_not_replaced_by_the_configs_data(base):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (300, 12, 12)).astype(np.uint8), rng.integers(0, 4, 300).astype(np.uint8)
    splits = DataSplits.from_tensors((x[:200], y[:200]), (x[200:], y[200:]), val_size=50)
    cfg = load_config(None, [*_sets(base), "teacher.preprocessing.channels=3", "data.val_size=600"])  # unloadable
    pf = preflight(cfg, data=splits)
    data = [p for p in pf.problems if p.startswith("data")]
    assert len(data) == 1 and "teacher.preprocessing.channels is 3" in data[0], pf.problems
    assert "val_size" not in " ".join(pf.problems) and pf.data is None  # cfg.data was not loaded instead
