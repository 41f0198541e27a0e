"""Issue 34, items 1, 5 and 6: names are paths (one rule for every name that becomes a file name, every write kept
inside its output folder), silent or misleading settings refused, and the clock and the report told the truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fspladder.check import check_config
from fspladder.cli import main
from fspladder.config import ConfigError, load_config, read_config_data
from fspladder.estimate import EpochLines, Estimate, Phase, RunClock
from fspladder.names import NAME_MAX, UnsafePathError, check_name, inside, name_problem, safe_name
from fspladder.outputs import SESSION_SECONDS, prior_seconds

SMALL = ["--set", "data.name=idx", "--set", "data.val_size=100", "--set", "eval_batch_size=200",
         "--set", "stage1.batch_size=50", "--set", "stage2.batch_size=50", "--set", "stage1.epochs=0.25",
         "--set", "stage2.epochs=1", "--set", "rungs.0.stage2.epochs=1", "--no-progress", "--no-report"]
TRAVERSALS = ["x/../../../../escaped", "../../evil", "a/b", "..", ".", "/abs", "a\\b", "-lead", ".hidden",
              "x" * (NAME_MAX + 1), "tab\tname"]


def _tiny(tiny_teacher) -> list[str]:
    _, idx, teacher = tiny_teacher
    return ["--set", f"teacher.checkpoint={teacher}", "--set", f"data.root={idx}", *SMALL]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _one_error_line(err: str, command: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"fspladder {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- the rule and the helper ---------------------------------------------------------------------------------------

def test_the_name_rule_accepts_plain_names_and_refuses_everything_that_is_not_one_file_name():
    for good in ("student1", "target", "ladder-cached", "resnet20.w2", "A_b-c.d", "x" * NAME_MAX):
        assert name_problem(good, "k") is None and check_name(good, "k") == good
    for bad in TRAVERSALS + ["", "a:b", "a b"]:
        why = name_problem(bad, "rungs[0].name")
        assert why is not None and why.startswith("rungs[0].name ") and "letters, digits" in why, bad
        with pytest.raises(UnsafePathError):
            check_name(bad, "k")
    assert name_problem(3, "k") is not None
    # The fix it names is itself a valid name (and a model spec names its rung by it)
    for text in TRAVERSALS + ["pkg.module:factory", "::", ""]:
        assert name_problem(safe_name(text), "k") is None, text
    assert safe_name("pkg.module:factory") == "pkg.module-factory"


def test_inside_refuses_any_path_that_leaves_the_output_folder(tmp_path):
    out = tmp_path / "out"
    assert inside(out, "rung-1-a.pt") == out / "rung-1-a.pt"
    assert inside(out, "runs", "x__seed0__budget1.json") == out / "runs" / "x__seed0__budget1.json"
    for parts in [("..", "a"), ("x/../../y",), ("/etc/passwd",), ("a/..",), (".",), ("",),
                  ("flow-1-x/../../../../escaped.npz",)]:
        with pytest.raises(UnsafePathError, match="not inside the output folder"):
            inside(out, *parts)
    # A folder inside that is a link to elsewhere does not lead out either
    (tmp_path / "elsewhere").mkdir()
    out.mkdir()
    (out / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePathError):
        inside(out, "link", "file.json")
    assert not any((tmp_path / "elsewhere").iterdir())


# --- names from a config, a bench variant, a resumed run --------------------------------------------------------

@pytest.mark.parametrize("name", TRAVERSALS)
def test_a_rung_name_that_is_not_a_file_name_is_a_config_problem_naming_the_key(name):
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"rungs.0.name={json.dumps(name)}"])
    assert any(p.startswith("rungs[0].name ") for p in e.value.problems), e.value.problems


def test_a_bench_variant_name_that_is_not_a_file_name_is_a_config_problem():
    for name in ("../evil", "a/b", ".."):
        with pytest.raises(ConfigError) as e:
            load_config(None, [f"bench.variants={{{json.dumps(name)}: {{arm: scratch}}}}"])
        assert any("bench.variants" in p and "file name" in p for p in e.value.problems), e.value.problems
    assert "mine" in load_config(None, ["bench.variants={mine: {arm: scratch}}"]).bench.variants


def test_a_model_spec_names_its_rung_by_a_safe_name():
    cfg = load_config(None, ["rungs=[{model: resnet14}, {model: 'custom_models:plain_cnn'}]"])
    assert [r.name for r in cfg.rungs] == ["resnet14", "custom_models-plain_cnn"]


def test_run_with_a_traversing_rung_name_exits_2_in_one_line_and_writes_nothing(tiny_teacher, tmp_path, capsys):
    base = tmp_path / "a" / "b" / "c" / "d"
    base.mkdir(parents=True)
    before = _files(tmp_path)
    out = base / "run"
    code = main(["run", "--out", str(out), *_tiny(tiny_teacher), "--set",
                 "recipe=scratch", "--set", "rungs.0.name=x/../../../../escaped"])
    err = capsys.readouterr().err
    assert code == 2
    line = _one_error_line(err, "run")
    assert "rungs[0].name" in line and "->" not in err  # the folder is named only once every check has passed
    assert _files(tmp_path) == before  # nothing at all: neither --out nor anything above it


def test_check_reports_a_rung_name_with_a_separator(tiny_teacher, capsys):
    assert main(["check", *_tiny(tiny_teacher)[:-2], "--set", "rungs.0.name=a/b"]) == 2
    err = capsys.readouterr().err
    assert "rungs[0].name 'a/b' cannot be a file name" in err and "e.g. 'a-b'" in err


def test_bench_with_a_traversing_variant_name_exits_2_and_writes_nothing(tiny_teacher, tmp_path, capsys):
    before = _files(tmp_path)
    code = main(["bench", "--out", str(tmp_path / "bench"), *_tiny(tiny_teacher)[:-1], "--seeds", "1",
                 "--arms", "scratch", "--set", "bench.variants={../../evil: {arm: scratch}}"])
    assert code == 2
    assert "bench.variants" in _one_error_line(capsys.readouterr().err, "bench")  # no '-> DIR' before it
    assert _files(tmp_path) == before


def _fake_run(out: Path, rungs: list[dict], cfg_overrides: list[str]) -> None:
    """A killed run's folder as a resume reads it: its resolved config and an unfinished summary."""
    import yaml

    from fspladder.config import config_to_dict

    out.mkdir(parents=True)
    (out / "resolved-config.yaml").write_text(yaml.safe_dump(config_to_dict(load_config(None, cfg_overrides))))
    (out / "summary.json").write_text(json.dumps({"rungs": rungs}))


def test_a_resumed_runs_summary_cannot_lead_a_checkpoint_outside_the_run(tiny_teacher, tmp_path, capsys):
    _, idx, teacher = tiny_teacher
    out = tmp_path / "deep" / "run"
    _fake_run(out, [{"name": "student1", "checkpoint": "../../outside.pt"}],
              [f"teacher.checkpoint={teacher}", f"data.root={idx}", "data.name=idx", "data.val_size=100"])
    before = {p: p.stat().st_mtime_ns if p.is_file() else None for p in _files(tmp_path)}
    assert main(["run", "--resume", str(out)]) == 2
    assert "not inside the output folder" in _one_error_line(capsys.readouterr().err, "run")
    # no file made or changed, not even metrics.jsonl (the folder's own probe for writability leaves nothing)
    assert {p: p.stat().st_mtime_ns if p.is_file() else None for p in _files(tmp_path)} == before


def test_names_read_back_from_a_resumed_run_follow_the_rule(tmp_path, capsys):
    out = tmp_path / "run"
    _fake_run(out, [{"name": "../../evil", "checkpoint": "rung-1-x.pt"}], [])
    assert main(["run", "--resume", str(out)]) == 2
    assert "a rung's name" in _one_error_line(capsys.readouterr().err, "run")
    # A resolved config edited to carry such a name is refused by the config's own rule
    (out / "resolved-config.yaml").write_text((out / "resolved-config.yaml").read_text().replace(
        "name: student1", "name: ../../evil"))
    assert main(["run", "--resume", str(out)]) == 2
    assert "rungs[0].name" in _one_error_line(capsys.readouterr().err, "run")
    # A bench's saved config likewise
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench-config.yaml").write_text("bench: {variants: {'../x': {arm: scratch}}}\n")
    assert main(["bench", "--resume", str(bench)]) == 2
    assert "bench.variants" in _one_error_line(capsys.readouterr().err, "bench")


def test_a_resumed_state_naming_a_rung_the_chain_lacks_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    _fake_run(out, [], [])
    for rung, stage in (("../../evil", 2), (7, 2), (True, 1), (1, 3)):
        torch.save({"format": "fspladder-state-v2", "rung": rung, "stage": stage}, out / "state.pt")
        assert main(["run", "--resume", str(out)]) == 2
        assert "which this run's chain does not have" in _one_error_line(capsys.readouterr().err, "run")
    assert sorted(p.name for p in out.iterdir()) == ["resolved-config.yaml", "state.pt", "summary.json"]


def test_a_run_config_built_in_python_is_held_to_the_rule_before_anything_is_written(tiny_teacher, tmp_path):
    from fspladder.runner import run_ladder

    _, idx, teacher = tiny_teacher
    cfg = load_config(None, [f"teacher.checkpoint={teacher}", f"data.root={idx}", "data.name=idx",
                             "data.val_size=100", "recipe=scratch", "progress=false"])
    cfg.rungs[0].name = "../../evil"  # past the parser
    with pytest.raises(UnsafePathError):
        run_ladder(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_tracker_folders_stay_inside_the_run(tmp_path):
    from fspladder.tracking import _Runs, _TensorBoard

    made: list[str] = []

    class Writer:
        def __init__(self, path: str) -> None:
            made.append(path)

        def add_scalar(self, *a) -> None:
            pass

        def flush(self) -> None:
            pass

    tb = _TensorBoard.__new__(_TensorBoard)
    tb.root, tb.runs, tb.writers, tb._writer = tmp_path / "tensorboard", _Runs(True), {}, Writer
    tb({"event": "arm_start", "seed": 0})
    for rung in ("ladder/target", "../../evil", "a/../../b"):
        tb({"rung": rung, "stage": 2, "epoch": 1, "train_loss": 1.0, "val_acc": 0.5})
    root = (tmp_path / "tensorboard").resolve()
    assert len(made) == 3 and all(root in Path(p).resolve().parents for p in made), made


def test_a_report_of_a_summary_with_a_traversing_name_writes_nothing_outside(tmp_path):
    from fspladder.report import heatmaps

    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(UnsafePathError):  # flow-1-x/../../../evil.npz: above the run
        heatmaps(run, {"rungs": [{"name": "x/../../../evil", "learns_from": "teacher"}]})
    # flow-1-../../evil.npz stays inside (the run's own evil.npz, absent): nothing to draw, nothing written
    assert heatmaps(run, {"rungs": [{"name": "../../evil", "learns_from": "teacher"}]}) == []
    assert _files(tmp_path) == {run}


# --- item 5: silent or misleading ----------------------------------------------------------------------------------

def test_stage1_epochs_0_with_a_stage1_recipe_is_refused_naming_the_fix():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["stage1.epochs=0"])
    assert any("stage1.epochs is 0 with recipe patent" in p and "use recipe scratch" in p
               for p in e.value.problems), e.value.problems
    with pytest.raises(ConfigError) as e:
        load_config(None, ["rungs.1.stage1={epochs: 0}"])
    assert [p.split(" ")[0] for p in e.value.problems] == ["rungs[1].stage1.epochs"]
    with pytest.raises(ConfigError) as e:
        load_config(None, ["plan.probe_stage1_epochs=0"])
    assert "plan.probe_stage1_epochs is 0" in e.value.problems[0]
    load_config(None, ["stage1.epochs=0", "recipe=scratch"])  # no stage 1 asked for: nothing to refuse
    load_config(None, ["stage1.epochs=0", "recipe=grow"])
    load_config(None, ["plan.probe_stage1_epochs=0", "plan.recipes=[grow, scratch]"])
    with pytest.raises(ConfigError, match="the plan may choose patent"):
        load_config(None, ["stage1.epochs=0", "recipe=scratch", "plan.intermediates=auto"])
    planning = load_config(None, ["stage1.epochs=0", "recipe=scratch"]).stage1_epochs_problems(planning=True)
    assert planning and "ladder-w2s" not in planning[0] and "patent" in planning[0]  # default plan.recipes


def test_plan_refuses_stage1_epochs_0_for_the_recipes_it_may_choose(capsys):
    assert main(["plan", "--set", "stage1.epochs=0", "--set", "recipe=scratch"]) == 2
    assert "the plan may choose patent" in _one_error_line(capsys.readouterr().err, "plan")


def test_check_bench_refuses_a_stage1_arm_with_stage1_epochs_0(tiny_teacher):
    _, idx, teacher = tiny_teacher
    data = read_config_data(None, [f"teacher.checkpoint={teacher}", f"data.root={idx}", "data.name=idx",
                                   "data.val_size=100", "recipe=scratch", "stage1.epochs=0",
                                   "bench.arms=[scratch, direct]"])
    _, problems = check_config(data, bench=True)
    assert any(p.startswith("bench arm direct: stage1.epochs is 0") for p in problems), problems
    assert not any("scratch" in p.split(":")[0] for p in problems)


def test_the_shipped_configs_do_not_rely_on_stage1_epochs_0():
    root = Path(__file__).parent.parent / "configs"
    for path in sorted(root.glob("*.yaml")):
        load_config(path)  # each one parses: no recipe with a stage 1 given zero epochs


def test_layers_refuses_an_image_size_the_vit_patch_does_not_divide(capsys):
    assert main(["layers", "vit_tiny", "--input-shape", "3,30,30"]) == 2
    line = _one_error_line(capsys.readouterr().err, "layers")
    assert "30x30" in line and "4x4 patches" in line
    assert main(["layers", "vit_tiny", "--input-shape", "3,32,32"]) == 0


def test_a_refusal_that_names_img_size_is_not_retried_without_it():
    from fspladder.models import create_for_data
    from fspladder.models.registry import ModelBuildError

    with pytest.raises(ModelBuildError, match="not a whole number of 4x4 patches"):
        create_for_data("vit_tiny", 3, 10, image_size=(30, 30))
    model, kw = create_for_data("vit_tiny", 3, 10, image_size=(28, 28))
    assert kw["img_size"] == 28


def test_the_models_memory_is_estimated_and_a_model_that_cannot_fit_is_refused(monkeypatch):
    from fspladder import memory

    assert memory.training_bytes(1000, 2, False, False) == 1000 * 4 * 3  # grads + Adam's two moments
    assert memory.training_bytes(1000, 1, True, True) == 1000 * 4 * (1 + 1 + 1 + 2)  # + EMA + CPU snapshot
    monkeypatch.setattr(memory, "free_bytes", lambda device: 8 * 2**30)
    big = int(1.2e9)
    note, warning, problem = memory.model_memory(torch.device("cpu"), big + 10**6,
                                                 [("target", big, memory.training_bytes(big, 1, False, True))])
    assert "1,201,000,000 parameters" in note and warning is None
    assert problem is not None and "choose smaller models" in problem and "8,192 MiB are free" in problem
    note, warning, problem = memory.model_memory(torch.device("cpu"), 10**6, [("t", 10**6, 12 * 10**6)])
    assert warning is None and problem is None
    note, warning, problem = memory.model_memory(torch.device("cpu"), 10**8, [("t", 10**8, 5 * 2**30)])
    assert problem is None and warning is not None and "more than half" in warning
    monkeypatch.setattr(memory, "free_bytes", lambda device: None)
    assert memory.model_memory(torch.device("cpu"), big, [("t", big, big * 8)])[1:] == (None, None)


def test_check_refuses_models_that_cannot_fit_in_free_memory(tiny_teacher, monkeypatch):
    from fspladder import memory

    _, idx, teacher = tiny_teacher
    data = read_config_data(None, [f"teacher.checkpoint={teacher}", f"data.root={idx}", "data.name=idx",
                                   "data.val_size=100"])
    notes: list[str] = []
    _, problems = check_config(data, notes)
    assert not problems and any(n.startswith("models: ") and "parameters in the chain" in n for n in notes)
    monkeypatch.setattr(memory, "free_bytes", lambda device: 5 * 2**20)  # the data (72 kB) fits, the models not
    _, problems = check_config(data)
    assert [p for p in problems if p.startswith("models: ")], problems


def test_an_empty_out_is_refused_in_one_line_and_nothing_is_written(tiny_teacher, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for cmd in (["run"], ["bench"], ["plan"]):
        assert main([*cmd, "--out", "", *_tiny(tiny_teacher)[:-1]]) == 2
        line = _one_error_line(capsys.readouterr().err, cmd[0])
        assert "--out is empty" in line
    assert main(["predict", str(tiny_teacher[2]), str(tmp_path), "--out", ""]) == 2
    assert "--out is empty" in _one_error_line(capsys.readouterr().err, "predict")
    assert not (tmp_path / "runs").exists() and not list(tmp_path.iterdir())
    from fspladder.outputs import OutputError
    from fspladder.runner import run_ladder

    with pytest.raises(OutputError):
        run_ladder(load_config(None, []), "")


def test_train_refuses_an_empty_export_state_dict_before_it_trains(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "resnet8", "--save", "t.pt", "--export-state-dict", ""]) == 2
    assert "--export-state-dict is empty" in _one_error_line(capsys.readouterr().err, "train")
    assert not list(tmp_path.iterdir())


def test_a_resumed_runs_summary_fspladder_did_not_write_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    _fake_run(out, [], [])
    for text in (b"\x80\x81 binary", b"{not json", b"[1, 2]", b'{"rungs": "abc"}',
                 b'{"rungs": [{"checkpoint": "rung-1-a.pt"}]}', b'{"rungs": [3]}'):
        (out / "summary.json").write_bytes(text)
        assert main(["run", "--resume", str(out)]) == 2
        line = _one_error_line(capsys.readouterr().err, "run")
        assert "summary.json is not a summary fspladder wrote" in line and "another --out" in line, (text, line)
    (out / "summary.json").write_text('{"rungs": [], "target": 3}')  # finished, its accuracy unreadable
    assert main(["run", "--resume", str(out)]) == 2
    assert "holds a finished run; there is nothing to resume" in _one_error_line(capsys.readouterr().err, "run")
    assert sorted(p.name for p in out.iterdir()) == ["resolved-config.yaml", "summary.json"]


def test_a_bench_json_fspladder_did_not_write_is_one_line_for_resummarize_and_frontier(tmp_path, capsys):
    d = tmp_path / "b"
    d.mkdir()
    for text in (b"\x80\x81\xfe binary", json.dumps({"runs": [], "summary": {}}).encode(),
                 json.dumps({"runs": [], "summary": {}, "arms": "scratch", "budgets": [1.0]}).encode()):
        (d / "bench.json").write_bytes(text)
        for flag in ("--resummarize", "--frontier"):
            assert main(["bench", flag, str(d)]) == 2
            line = _one_error_line(capsys.readouterr().err, "bench")
            assert f"{flag} {d}: bench.json" in line, line
    assert sorted(p.name for p in d.iterdir()) == ["bench.json"]


# --- item 6: the clock, the resumed seconds, the report, train's lines --------------------------------------------

def test_the_clock_times_the_stage_in_progress_by_its_own_pace():
    """The issue's line: after epoch 1 of 8, "~0.5 s left". Stage 1 ran ten times faster than profiled; stage 2 runs
    at its predicted pace (0.2 s a step, 10 steps an epoch). One ratio for the whole job shrank stage 2's seven
    epochs to a few seconds; the stage's own pace gives them back."""
    now = [0.0]
    est = Estimate(phases=[Phase("target", 1, 10, 1, 60.0, 6.0), Phase("target", 2, 80, 8, 16.0, 0.2)], before=4.0)
    lines: list[str] = []
    clock = RunClock(est, write=lines.append, clock=lambda: now[0])
    clock.on_stage(("target", 1))
    clock.on_step("target", 1, 0, 10)
    for step in range(1, 11):
        now[0] += 0.6  # 6 s in all against 60 predicted
        clock.on_step("target", 1, step, 10)
    clock({"rung": "target", "stage": 1, "epoch": 1, "fsp_loss_train": 3.0})
    clock.on_stage(("target", 2))
    clock.on_step("target", 2, 0, 80)
    for step in range(1, 11):
        now[0] += 0.2
        clock.on_step("target", 2, step, 80)
    clock({"rung": "target", "stage": 2, "epoch": 1, "train_loss": 1.0, "val_acc": 0.5})
    true_left = 70 * 0.2
    assert clock.remaining() == pytest.approx(true_left, rel=0.05)
    assert lines[-1].startswith("target stage 2 epoch 1/8") and "~14 s left" in lines[-1], lines[-1]
    # The whole job's ratio alone (the old clock) would have said about a fifth of it
    k = 0.05 * est.rest
    assert true_left * (now[0] + k) / (60 + 2 + k) < true_left / 4
    # A later stage not yet begun still takes the whole job's ratio
    est2 = Estimate(phases=[Phase("a", 2, 10, 1, 10.0, 1.0), Phase("b", 2, 10, 1, 10.0, 1.0)])
    now[0] = 0.0
    clock2 = RunClock(est2, write=lines.append, clock=lambda: now[0])
    clock2.on_stage(("a", 2))
    clock2.on_step("a", 2, 0, 10)
    for step in range(1, 11):
        now[0] += 2.0  # twice its prediction
        clock2.on_step("a", 2, step, 10)
    k2 = 0.05 * 20
    assert clock2.remaining() == pytest.approx(10.0 * (20 + k2) / (10 + k2))


def test_a_resumed_run_counts_what_the_killed_session_spent_before_its_log_opened(tmp_path):
    """The killed session printed "11 s so far": 8 s of loading, checking and profiling before its log opened,
    then 3 s of training. seconds_before_resume was 2.9 s: only the log's own span was counted."""
    recs = [{"time": 100.0, "event": "run_start", "resume": False, SESSION_SECONDS: 8.0},
            {"time": 101.5, "rung": "student1", "stage": 1, "epoch": 1},
            {"time": 103.0, "rung": "student1", "stage": 2, "epoch": 1},
            {"time": 200.0, "event": "run_start", "resume": True, SESSION_SECONDS: 2.0},
            {"time": 201.0, "rung": "target", "stage": 1, "epoch": 1}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs[:3]) + '{"time": 103.5, "cut')
    assert prior_seconds(path) == pytest.approx(11.0)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert prior_seconds(path) == pytest.approx(11.0 + 3.0)
    # Logs written before session_seconds existed still read as before
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != SESSION_SECONDS}) + "\n" for r in recs))
    assert prior_seconds(path) == pytest.approx(3.0 + 1.0)


def test_a_run_names_its_folder_after_the_checks_and_records_its_session_seconds(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *_tiny(tiny_teacher), "--set", "recipe=grow"]) == 0
    err = capsys.readouterr().err
    assert f"fspladder run -> {out}" in err
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["event"] == "run_start" and start[SESSION_SECONDS] > 0

    # item 6: a grow run had no stage 1, so its report has no stage-1 panels
    from fspladder import report

    figs = []
    real_save = report._save

    def keep(fig, path):
        figs.append([ax.get_title() for ax in fig.axes])
        return real_save(fig, path)

    summary = json.loads((out / "summary.json").read_text())
    metrics = report._read_metrics(out)
    report._save = keep
    try:
        report.curves(out, summary, metrics)
        assert figs[-1] and "Stage 1: FSP loss" not in figs[-1], figs
        assert figs[-1].count("Stage 2: validation and test accuracy") == 2
        fake = [{"event": "stage1_step", "rung": "target", "seconds": 0.1, "step": 1, "fsp_loss": 2.0}]
        report.curves(out, summary, metrics + fake)
        assert figs[-1].count("Stage 1: FSP loss") == 2
    finally:
        report._save = real_save
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()


def test_train_prints_a_line_per_epoch_when_its_output_is_piped(tiny_teacher, tmp_path, capsys):
    _, idx, _ = tiny_teacher
    assert main(["train", "--model", "resnet8", "--save", str(tmp_path / "t.pt"), "--set", "data.name=idx",
                 "--set", f"data.root={idx}", "--set", "data.val_size=100", "--set", "stage2.batch_size=50",
                 "--set", "stage2.epochs=2"]) == 0  # progress on: capsys's stderr is no terminal, as in a pipe
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if " epoch " in x]
    assert [x.split(":")[0] for x in lines] == ["resnet8 stage 2 epoch 1/2", "resnet8 stage 2 epoch 2/2"], err
    assert all("train_loss" in x and "val_acc" in x and "so far" in x for x in lines)


def test_epoch_lines_skip_events_and_step_records():
    lines: list[str] = []
    t = [0.0]
    ep = EpochLines(3, write=lines.append, clock=lambda: t[0])
    ep({"event": "run_start"})
    ep({"event": "stage1_step", "rung": "a", "stage": 1, "step": 3})
    t[0] = 2.5
    ep({"rung": "a", "stage": 2, "epoch": 1, "train_loss": 0.5, "val_acc": 0.75})
    assert lines == ["a stage 2 epoch 1/3: train_loss 0.5, val_acc 0.75 | 2.5 s so far"]
