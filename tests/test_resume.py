"""Kill a real `fspladder run` with SIGKILL at several points, resume it, compare with an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from fspladder import create_model, save_checkpoint

KILL_POINTS = [
    ("kill:stage1:student1:2", "mid-stage-1"),
    ("kill:stage2:target:2", "mid-stage-2"),
    ("kill:rung-done:student1", "between rungs"),
    ("kill:write:state.pt", "during a checkpoint write"),
    ("kill:write:rung-2-target.pt", "during the target's checkpoint write"),
]


def _cmd(idx_folder, teacher, out, *extra):
    return [sys.executable, "-m", "fspladder", "run", "--out", str(out), "--no-progress", "--no-report",
            "--set", "data.name=idx", "--set", f"data.root={idx_folder}", "--set", "data.val_size=100",
            "--set", "stage1.batch_size=50", "--set", "stage2.batch_size=50", "--set", "stage1.epochs=2",
            "--set", "stage2.epochs=2", "--set", f"teacher.checkpoint={teacher}", *extra]


def _run(cmd, fault=None):
    env = {**os.environ, "FSPLADDER_FAULT": fault or ""}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _epoch_records(out):
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [(x["rung"], x["stage"], x["epoch"]) for x in lines if "stage" in x and "epoch" in x]


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import make_idx_folder

    root = tmp_path_factory.mktemp("resume")
    idx = make_idx_folder(root)
    teacher = root / "teacher.pt"
    torch.manual_seed(0)
    save_checkpoint(teacher, create_model("resnet8", in_chans=1, num_classes=4),
                    {"name": "resnet8", "kwargs": {"in_chans": 1, "num_classes": 4}})
    ref = root / "ref"
    r = _run(_cmd(idx, teacher, ref))
    assert r.returncode == 0, r.stderr
    return root, idx, teacher, ref


@pytest.mark.parametrize("fault,where", KILL_POINTS, ids=[w for _, w in KILL_POINTS])
def test_killed_run_resumes_to_the_same_weights(setup, fault, where):
    root, idx, teacher, ref = setup
    out = root / fault.replace(":", "_")
    killed = _run(_cmd(idx, teacher, out), fault)
    assert killed.returncode == -signal.SIGKILL, (where, killed.returncode, killed.stderr[-2000:])
    assert not (out / "summary.json").is_file() or "target" not in json.loads((out / "summary.json").read_text())
    resumed = _run([sys.executable, "-m", "fspladder", "run", "--resume", str(out), "--no-progress", "--no-report"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Bitwise the same weights as the uninterrupted run, for every rung.
    for name in ("rung-1-student1.pt", "rung-2-target.pt"):
        a, b = _weights(ref / name), _weights(out / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), (where, name)
    # Work lost: epochs that completed before the kill but ran again after it.
    done, again = _epoch_records(ref), _epoch_records(out)
    lost = len(again) - len(done)
    print(f"{where}: {lost} completed epoch(s) redone after the resume (plus the unfinished part of one)")
    assert 0 <= lost <= 1 and set(again) == set(done)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] and summary["target"]["test_acc"] == json.loads(
        (ref / "summary.json").read_text())["target"]["test_acc"]
    assert not list(out.glob(".*.tmp"))


def test_resume_refuses_a_foreign_state_file(setup, capsys):
    from fspladder.cli import main

    root, idx, teacher, ref = setup
    out = root / "foreign"
    killed = _run(_cmd(idx, teacher, out), "kill:stage2:target:1")
    assert killed.returncode == -signal.SIGKILL
    (out / "state.pt").write_bytes(b"garbage")
    assert main(["run", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "state.pt cannot be read" in err and "delete it" in err
    assert (out / "rung-1-student1.pt").is_file()  # the finished rung is untouched


def test_resume_needs_a_run_directory(tmp_path, capsys):
    from fspladder.cli import main

    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "no resolved-config.yaml there" in capsys.readouterr().err


def test_joint_stage2_resumes_to_the_same_weights(setup):
    """stage2.fsp_weight reads the previous rung in every stage-2 step; a resume must rebuild it."""
    root, idx, teacher, _ = setup
    joint = ("--set", "recipe=patent-joint", "--set", "stage2.fsp_weight=0.01")
    ref, out = root / "joint-ref", root / "joint-killed"
    assert _run(_cmd(idx, teacher, ref, *joint)).returncode == 0
    killed = _run(_cmd(idx, teacher, out, *joint), "kill:stage2:target:2")
    assert killed.returncode == -signal.SIGKILL
    resumed = _run([sys.executable, "-m", "fspladder", "run", "--resume", str(out), "--no-progress", "--no-report"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(ref / "rung-2-target.pt"), _weights(out / "rung-2-target.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = _weights(setup[3] / "rung-2-target.pt")
    assert not all(torch.equal(a[k], plain[k]) for k in a)  # the FSP term did change the training
    epochs = [json.loads(x) for x in (ref / "metrics.jsonl").read_text().splitlines() if '"stage": 2' in x]
    assert all(e["fsp_loss_train"] > 0 for e in epochs)


def test_a_run_killed_in_the_targets_stage2_resumes_to_a_report_and_counts_its_whole_time(setup):
    """Issue 17.1: the resumed run exits 0, writes report.html, and its total_seconds include the killed session."""
    root, idx, teacher, ref = setup
    out = root / "report-after-resume"
    killed = _run(_cmd(idx, teacher, out), "kill:stage2:target:2")
    assert killed.returncode == -signal.SIGKILL
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    start = next(x for x in lines if x.get("event") == "run_start")
    # the log's span, plus what the session spent before its log opened (loading, checks): its clock counted both
    before = lines[-1]["time"] - start["time"] + start["session_seconds"]
    assert before > lines[-1]["time"] - start["time"] > 0
    resumed = _run([sys.executable, "-m", "fspladder", "run", "--resume", str(out), "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / "report.html").is_file() and "target test accuracy" in resumed.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["seconds_before_resume"] == pytest.approx(before, abs=0.01)
    assert s["total_seconds"] > s["seconds_before_resume"]
    # A second --resume of the finished run is refused and changes nothing.
    snapshot = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    again = _run([sys.executable, "-m", "fspladder", "run", "--resume", str(out), "--no-progress"])
    assert again.returncode == 2 and "holds a finished run" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == snapshot
    # `fspladder report` reads the resumed run's metrics (its "resumed" event has a stage but no seconds).
    from fspladder.cli import main

    assert main(["report", str(out)]) == 0


@pytest.fixture(scope="module")
def idx_and_teacher(tmp_path_factory):
    """The tiny data and teacher alone (``setup`` also trains its reference run)."""
    from conftest import make_idx_folder

    root = tmp_path_factory.mktemp("resume-schedule")
    teacher = root / "teacher.pt"
    torch.manual_seed(0)
    save_checkpoint(teacher, create_model("resnet8", in_chans=1, num_classes=4),
                    {"name": "resnet8", "kwargs": {"in_chans": 1, "num_classes": 4}})
    return root, make_idx_folder(root), teacher


def test_resume_refuses_a_stage2_begun_on_another_schedule(idx_and_teacher):
    """Issue 32 changed scratch's and grow's default schedule (cosine -> wsd): a run of them killed mid stage 2
    under the old default must not continue on the new curve. Its state records the schedule the stage began
    with; a state recording another one (the old default, simulated) is refused in one line, nothing changed,
    and the untampered state resumes."""
    root, idx, teacher = idx_and_teacher
    out = root / "schedule-moved"
    scratch = ("--set", "recipe=scratch", "--set", "rungs=[{name: target, model: resnet14}]")
    killed = _run(_cmd(idx, teacher, out, *scratch), "kill:stage2:target:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["stage"] == 2 and state["result"]["schedule"]["shape"] == "wsd"  # scratch's default, recorded
    original = (out / "state.pt").read_bytes()
    old = {**state, "result": {**state["result"],
                               "schedule": {**state["result"]["schedule"], "shape": "cosine", "decay_fraction": None}}}
    torch.save(old, out / "state.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    refused = _run([sys.executable, "-m", "fspladder", "run", "--resume", str(out), "--no-progress", "--no-report"])
    assert refused.returncode == 2, refused.stderr[-3000:]
    line = refused.stderr.strip().splitlines()[-1]  # (the preflight's warnings on tiny data may come first)
    assert line.startswith("fspladder run: error: ") and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.count("error") == 1 and "shape cosine -> wsd" in line
    assert "fspladder version that started it" in line and "start a new run" in line and "nothing was changed" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # A stage begun with a weight average (its weights among the state's modules, its decay recorded) is not
    # continued without one either.
    averaged = {**state, "modules": {**state["modules"], "ema": state["modules"]["model"]},
                "result": {**state["result"], "ema": 0.99}}
    torch.save(averaged, out / "state.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    refused = _run([sys.executable, "-m", "fspladder", "run", "--resume", str(out), "--no-progress", "--no-report"])
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    line = refused.stderr.strip().splitlines()[-1]
    assert "ema 0.99 -> None" in line and "shape" not in line and "nothing was changed" in line, line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # A state of an older version, without the record, says nothing; the untampered one resumes.
    (out / "state.pt").write_bytes(original)
    resumed = _run([sys.executable, "-m", "fspladder", "run", "--resume", str(out), "--no-progress", "--no-report"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    target = json.loads((out / "summary.json").read_text())["rungs"][-1]["stage2"]
    assert target["schedule"]["shape"] == "wsd" and len(target["val_acc"]) == 2
