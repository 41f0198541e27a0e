import json

import pytest
from conftest import bench_args, train_tiny_teacher

from fspladder.bench import summarize, time_to_target
from fspladder.cli import main


def test_time_to_target_interpolates_bounds_and_misses():
    t = time_to_target([(10, 0.5), (20, 0.7), (40, 0.9)], 0.8)
    assert t["seconds"] == pytest.approx(30.0) and t["how"] == "interpolated"
    assert time_to_target([(20, 0.7), (10, 0.85)], 0.8) == {"seconds": 10, "how": "at_most"}
    assert time_to_target([(10, 0.5), (20, 0.6)], 0.8) == {"seconds": None, "how": "not reached"}


def _run(arm, seed, budget, acc, sec, pre=0.0):
    return {"arm": arm, "seed": seed, "budget": budget, "epochs": round(4 * budget), "val_acc": [acc],
            "test_acc": [acc - 0.01],
            "train_acc": acc + 0.02, "target_seconds": sec, "pipeline_seconds": sec + pre}


def test_summarize_uses_scratch_full_budget_as_default_target():
    runs = [_run("scratch", s, b, a, t) for s in (0, 1) for b, a, t in ((0.5, 0.80, 50), (1.0, 0.90, 100))]
    runs += [_run("direct", s, b, a, t, pre=20) for s in (0, 1) for b, a, t in ((0.5, 0.88, 50), (1.0, 0.92, 100))]
    s = summarize(runs, ["scratch", "direct"], [0.5, 1.0], teacher_val_acc=0.89)
    assert s["thresholds"] == {"scratch": pytest.approx(0.90), "teacher": 0.89}
    assert s["scratch_above_teacher"] == pytest.approx(0.01) and s["scratch_passes_teacher"]
    d = s["arms"]["direct"]
    assert d["budgets"]["1.0"]["gap"][0] == pytest.approx(0.03)
    # direct: 0.88 at 50 s, 0.92 at 100 s: measured, it reaches 0.90 at the full budget (100 s target clock,
    # 120 s pipeline clock); interpolated, at 75 s on the target clock and 95 s on the pipeline clock
    t = d["time_to_target"]["scratch"]
    assert t["target_seconds"]["seconds"] == pytest.approx(100.0) and t["target_seconds"]["budget"] == 1.0
    assert t["target_seconds"]["how"] == "measured" and t["pipeline_seconds"]["seconds"] == pytest.approx(120.0)
    assert t["target_seconds"]["ratio_to_scratch_full"] == pytest.approx(1.0)
    inter = t["target_seconds"]["interpolated"]
    assert inter["seconds"] == pytest.approx(75.0) and inter["ratio_to_scratch_full"] == pytest.approx(0.75)
    assert t["pipeline_seconds"]["interpolated"]["seconds"] == pytest.approx(95.0)
    # in epochs: 0.88 after 2, 0.92 after 4 -> 4 measured, 3 interpolated (0.75 of scratch's 4)
    assert t["epochs"]["seconds"] == pytest.approx(4.0)
    assert t["epochs"]["interpolated"]["ratio_to_scratch_full"] == pytest.approx(0.75)
    # the teacher's 0.89: direct's 0.92 at 100 s is the first budget run to reach it; interpolated 62.5 s
    assert d["time_to_target"]["teacher"]["target_seconds"]["seconds"] == pytest.approx(100.0)
    assert d["time_to_target"]["teacher"]["target_seconds"]["interpolated"]["seconds"] == pytest.approx(62.5)
    assert s["arms"]["scratch"]["time_to_target"]["teacher"]["target_seconds"]["seconds"] == pytest.approx(100.0)


def test_bench_end_to_end_small(tmp_path, idx_folder):
    common = bench_args(idx_folder)
    teacher = train_tiny_teacher(tmp_path / "t.pt", idx_folder)
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--seeds", "2", "--budgets", "0.5,1", "--set", "stage2.epochs=2",
                 "--set", "stage1.epochs=0.5", "--set", "rungs.0.stage2.epochs=1",
                 "--set", f"teacher.checkpoint={teacher}", "--set", "bench.variants=" + json.dumps(
                     {"ladder-cached": {"arm": "ladder", "set": {"stage1.augment": False, "stage1.cache_teacher": True,
                                                                 "stage1.images": 100, "stage2.lr": 0.02,
                                                                 "teacher_amp": "off"}}}),
                 "--set", "teacher_amp=bf16", *common]) == 0
    bench = json.loads((out / "bench.json").read_text())
    # The fair baseline (issue 32): scratch gets the cosine of direct, ladder and soft, and ladder-cached's peak.
    assert bench["arms"] == ["scratch", "direct", "ladder", "soft", "grow", "ladder-cached", "scratch-cosine",
                             "scratch-cosine-lr0.02"]
    assert bench["fair_baseline_added"] == {"scratch-cosine": "the schedule of direct, ladder, soft",
                                            "scratch-cosine-lr0.02": "the schedule of ladder-cached"}
    assert "The fair-baseline rule added these scratch variants" in (out / "bench.md").read_text()
    assert set(bench["summary"]["baseline"]["compared"]) == {"scratch", "scratch-cosine", "scratch-cosine-lr0.02"}
    assert not bench["summary"]["baseline"]["unmatched"]
    # The teacher trained on all 500 training images, the arms on the same 500: equal fingerprints.
    prot = bench["protocol"]
    assert prot["same_training_images"] and prot["arms_fingerprint"] == prot["teacher_fingerprint"]
    assert set(bench["summary"]["thresholds"]) == {"scratch", "teacher"}
    assert len(bench["runs"]) == 8 * 2 * 2
    cached = [r for r in bench["runs"] if r["arm"] == "ladder-cached"]
    assert all(r["base_arm"] == "ladder" and r["stage1_seconds"] > 0 for r in cached)
    # A variant's engine settings take effect: each arm trains under its own resolved precision.
    assert bench["precision"]["ladder-cached"] == {"amp": "off", "teacher_amp": "off"}
    assert bench["precision"]["ladder"] == {"amp": "off", "teacher_amp": "bf16"}
    # The test set is scored once, after the last epoch of each budget.
    assert all(r["test_acc"][-1] is not None and r["test_acc"][:-1] == [None] * (r["epochs"] - 1)
               for r in bench["runs"])
    for r in bench["runs"]:
        assert len(r["val_acc"]) == r["epochs"] == (1 if r["budget"] == 0.5 else 2)
        assert r["pipeline_seconds"] >= r["target_seconds"] > 0
        if r["arm"] == "ladder":
            assert r["pre_seconds"] > r["stage1_seconds"] > 0  # intermediates count on the pipeline clock
    md = (out / "bench.md").read_text()
    for arm, a in bench["summary"]["arms"].items():
        acc = a["budgets"]["1.0"]["test_acc"][0]
        assert f"| {arm} |" in md and f"{acc:.4f}" in md
    assert "Time to the **teacher** threshold" in md and "Time to the **scratch** threshold" in md
    assert "the same images" in md
    assert (out / "curves.png").stat().st_size > 1000
    assert "**ladder-cached**: ladder with `stage1.augment: false`" in md and '`stage2.lr: 0.02`' in md


def test_bench_variants_are_checked_before_training():
    from fspladder.config import ConfigError, load_config

    bad = {"scratch": {"arm": "scratch"}, "v-data": {"arm": "ladder", "set": {"data.train_subset": 10}},
           "v-cl": {"arm": "ladder", "set": {"channels_last": False}},
           "v-arm": {"arm": "ladders"}, "v-key": {"arm": "ladder", "set": {"stage1.imgs": 10}},
           "v-cache": {"arm": "direct", "set": {"stage1.cache_teacher": True}}}
    with pytest.raises(ConfigError) as e:
        load_config(None, ["bench.variants=" + json.dumps(bad)])
    msg = str(e.value)
    assert "bench.variants.scratch: a variant needs its own name" in msg
    assert "v-data.set: ['data.train_subset'] would change what every arm shares" in msg
    assert "v-cl.set: ['channels_last'] would change what every arm shares" in msg
    assert "bench.variants.v-arm must be a mapping" in msg
    assert "bench.variants.v-key.set:" in msg and "imgs" in msg and "images" in msg
    assert "bench.variants.v-cache.set:" in msg and "augment: false" in msg


def test_a_bench_killed_by_sigkill_resumes_to_the_same_runs(tmp_path, idx_folder):
    """Issue 16: each run's record is written atomically as it finishes; --resume keeps them and runs the rest."""
    import os
    import signal
    import subprocess
    import sys

    teacher = train_tiny_teacher(tmp_path / "t.pt", idx_folder)
    args = ["--seeds", "1", "--budgets", "0.5,1", "--arms", "scratch,ladder,grow", "--set", "stage2.epochs=2",
            "--set", "stage1.epochs=0.5", "--set", "rungs.0.stage2.epochs=1", "--set", f"teacher.checkpoint={teacher}",
            *bench_args(idx_folder), "--no-report"]

    def bench(out, fault="", resume=False):
        cmd = [sys.executable, "-m", "fspladder", "bench", *(["--resume", str(out), "--no-report", "--no-progress"]
                                                             if resume else ["--out", str(out), *args])]
        return subprocess.run(cmd, env={**os.environ, "FSPLADDER_FAULT": fault}, capture_output=True, text=True,
                              timeout=600)

    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert bench(ref).returncode == 0
    killed = bench(out, "kill:bench-run:ladder:0:0.5")  # right after the ladder's first budget was recorded
    assert killed.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == [
        "ladder__seed0__budget0.5.json", "scratch__seed0__budget0.5.json", "scratch__seed0__budget1.json"]
    resumed = bench(out, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = (json.loads((d / "bench.json").read_text()) for d in (ref, out))
    key = lambda r: (r["arm"], r["seed"], r["budget"], r["val_acc"], r["test_acc"], r["train_acc"])  # noqa: E731
    assert [key(r) for r in a["runs"]] == [key(r) for r in b["runs"]] and len(a["runs"]) == 8  # + scratch-cosine
    assert b["summary"]["arms"].keys() == a["summary"]["arms"].keys()
    # A finished bench is not resumed again, and nothing in it changes.
    before = (out / "bench.json").read_bytes()
    again = bench(out, resume=True)
    assert again.returncode == 2 and "holds a finished bench" in again.stderr
    assert (out / "bench.json").read_bytes() == before


def test_check_finds_what_the_bench_would_refuse(tmp_path, idx_folder, capsys):
    """`fspladder check --bench` checks the bench's arms as the bench will (a config it accepts is not refused
    by the bench later); plain `check` checks what `run` does, which needs no stage 1 here."""
    teacher = train_tiny_teacher(tmp_path / "t.pt", idx_folder)
    args = ["--set", "recipe=grow", "--set", "rungs=" + json.dumps([{"name": "target", "model": "resnet14",
                                                                      "kwargs": {"width": 2}}]),
            "--set", f"teacher.checkpoint={teacher}", *bench_args(idx_folder)[:-1]]
    assert main(["check", *args]) == 0  # grow widens: the run is fine
    capsys.readouterr()
    assert main(["check", *args, "--set", "bench.arms=[scratch, direct]"]) == 0
    assert main(["check", "--bench", *args, "--set", "bench.arms=[scratch, direct]"]) == 2
    err = capsys.readouterr().err
    assert "bench arm direct" in err and "project_channels" in err and "bench arm scratch" not in err
    assert main(["check", "--bench", *args, "--set", "bench.arms=[scratch, direct]",
                 "--set", "stage1.project_channels=true"]) == 0
    capsys.readouterr()  # an arm whose recipe cannot apply is skipped by the bench, and check says so beforehand
    assert main(["check", "--bench", *args, "--set", "bench.arms=[scratch, grow-fsp]"]) == 0
    out = capsys.readouterr().out
    assert "arm grow-fsp will be skipped" in out and "equal widths" in out and "arm scratch" not in out


def test_extension_reads_each_run_schedule_at_its_own_budget(tmp_path, idx_folder, capsys):
    """A budget shorter than the warm-up records the warm-up it ran (clipped to its epochs): the same arm under
    the same code is not a changed schedule, and a foreign file in runs/ is no traceback."""
    teacher = train_tiny_teacher(tmp_path / "t.pt", idx_folder)
    common = ["--seeds", "1", "--set", "stage2.epochs=2", "--set", "stage2.warmup_epochs=1.5", "--set",
              f"teacher.checkpoint={teacher}", *bench_args(idx_folder), "--no-report"]
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--arms", "scratch", "--budgets", "0.5,1", *common]) == 0
    runs = json.loads((out / "bench.json").read_text())["runs"]
    assert sorted(r["schedule"]["warmup_epochs"] for r in runs) == [1.0, 1.5]  # 0.5 of 2 epochs: 1 of warm-up
    import shutil

    shutil.rmtree(out / "runs")  # a bench kept without runs/ (a repository ignores it): bench.json holds them
    (out / "runs").mkdir()
    (out / "runs" / "notes.json").write_text("[not a run")
    capsys.readouterr()
    assert main(["bench", "--out", str(out), "--arms", "scratch", "--budgets", "0.5,1", "--seeds", "2",
                 *common[2:], "--extend", str(out)]) == 2  # --out and --extend together: the usual refusal
    assert main(["bench", "--arms", "scratch", "--budgets", "0.5,1", "--seeds", "2", *common[2:],
                 "--extend", str(out)]) == 0, capsys.readouterr().err
    again = json.loads((out / "bench.json").read_text())["runs"]
    assert len(again) == 4 and [r for r in again if r["seed"] == 0] == runs  # kept, not trained again


def test_extend_adds_arms_to_a_finished_bench_and_keeps_its_runs(tmp_path, idx_folder, capsys):
    """`bench --extend DIR` trains only what DIR lacks and summarises all; it refuses a config whose other settings
    differ (the old runs would not compare) without changing anything; a killed extension resumes."""
    import os
    import signal
    import subprocess
    import sys

    import torch

    teacher = train_tiny_teacher(tmp_path / "t.pt", idx_folder)
    common = ["--seeds", "1", "--set", "stage2.epochs=1", "--set", "stage1.epochs=0.5",
              "--set", f"teacher.checkpoint={teacher}", *bench_args(idx_folder), "--no-report"]
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--arms", "scratch", "--budgets", "1", *common]) == 0
    first = json.loads((out / "bench.json").read_text())
    frozen = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    for bad, why in ((["--arms", "scratch,direct", "--budgets", "1", "--set", "stage2.lr=0.05"], "stage2.lr differ"),
                     (["--arms", "direct", "--budgets", "1"], "arms ['scratch'] are missing"),
                     (["--arms", "scratch,direct", "--budgets", "0.5"], "must keep them"),
                     (["--arms", "scratch,direct", "--out", str(tmp_path / "x")], "drop --out")):
        assert main(["bench", *common, *bad, "--extend", str(out)]) == 2
        assert why in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == frozen  # nothing was changed
    # A recipe default that changed since the runs trained (issue 32: scratch's wsd) leaves the config the same;
    # the runs' own records of their schedule tell, and the arm would train under its old name with another one.
    import shutil

    older = tmp_path / "older"
    shutil.copytree(out, older)
    rec = next((older / "runs").glob("scratch__*.json"))
    r = json.loads(rec.read_text())
    assert r["schedule"]["shape"] == "wsd" and r["schedule"]["decay_fraction"] == 0.5  # scratch's default now
    rec.write_text(json.dumps({**r, "schedule": {**r["schedule"], "shape": "cosine", "decay_fraction": None}}))
    frozen_older = {p.name: p.read_bytes() for p in older.rglob("*") if p.is_file()}
    assert main(["bench", *common, "--arms", "scratch,direct", "--budgets", "0.5,1", "--extend", str(older)]) == 2
    err = capsys.readouterr().err
    assert "scratch (shape cosine -> wsd, decay_fraction None -> 0.5)" in err and "start a new bench" in err
    assert {p.name: p.read_bytes() for p in older.rglob("*") if p.is_file()} == frozen_older
    # The weight average is part of it: a run recorded with one (the same curve) is not continued without one.
    rec.write_text(json.dumps({**r, "ema": 0.99}))
    assert main(["bench", *common, "--arms", "scratch,direct", "--budgets", "0.5,1", "--extend", str(older)]) == 2
    err = capsys.readouterr().err
    assert "scratch (ema 0.99 -> None)" in err and "shape" not in err.split("scratch (ema")[1].split(")")[0]
    rec.write_text(json.dumps({**r, "schedule": {**r["schedule"], "shape": "cosine", "decay_fraction": None}}))
    # Nothing left to train under the old name: new arms may join it, and its run keeps its own schedule.
    assert main(["bench", *common, "--arms", "scratch,direct", "--budgets", "0.5,1", "--extend", str(older),
                 "--set", "bench.arm_budgets.scratch=[1]"]) == 0, capsys.readouterr().err
    kept = json.loads((older / "bench.json").read_text())
    # the fair baseline reads scratch's recorded cosine: direct's cosine is not missing, nothing is added
    assert [(r["arm"], r["schedule"]["shape"]) for r in kept["runs"]] == [
        ("scratch", "cosine"), ("direct", "cosine"), ("direct", "cosine")] and kept["fair_baseline_added"] == {}
    assert main(["bench", *common, "--arms", "direct", "--extend", str(tmp_path / "none")]) == 2
    assert "no bench-config.yaml there" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert main(["bench", "--resume", str(out)]) == 2 and "--extend" in capsys.readouterr().err
    assert main(["bench", "--resume", str(out), "--arms", "direct"]) == 2 and "drop" in capsys.readouterr().err

    # Without CONFIG the bench's own; the intermediate rung may change (no arm of the bench goes through it).
    # Killed in the new arm's training, the extension is continued by --resume.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the bench's thread count: its machine

    def bench(*args, fault=""):
        return subprocess.run([sys.executable, "-m", "fspladder", "bench", *args, "--no-report", "--no-progress"],
                              env={**env, "FSPLADDER_FAULT": fault}, capture_output=True, text=True, timeout=600)

    killed = bench("--extend", str(out), "--arms", "scratch,direct", "--set", "rungs.0.stage2.epochs=1",
                   fault="kill:stage2:direct/1.0:1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "summary" not in json.loads((out / "bench.json").read_text())
    resumed = bench("--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    bench_ = json.loads((out / "bench.json").read_text())
    trio = ["scratch", "direct", "scratch-cosine"]  # the extension added the fair baseline's scratch-cosine
    assert bench_["arms"] == trio and set(bench_["summary"]["arms"]) == set(trio)
    assert [r["arm"] for r in bench_["runs"]] == trio
    assert bench_["runs"][0] == first["runs"][0]  # the finished run is kept, not retrained
    assert bench_["seconds"] >= first["seconds"] + bench_["runs"][1]["pipeline_seconds"]  # every session counts
    # An extension that runs through counts the sessions before it too.
    assert main(["bench", "--extend", str(out), "--arms", "scratch,direct,soft", "--no-report", "--no-progress"]) == 0
    third = json.loads((out / "bench.json").read_text())
    assert [r["arm"] for r in third["runs"]] == ["scratch", "direct", "soft", "scratch-cosine"] and "summary" in third
    assert third["seconds"] >= bench_["seconds"] + third["runs"][2]["pipeline_seconds"]
