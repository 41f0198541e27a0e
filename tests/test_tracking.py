"""Experiment tracking (issue 26): a tiny run's TensorBoard event files and MLflow runs, read back with the trackers'
own readers, hold the same per-epoch values as metrics.jsonl; a tracker that is not installed is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fspladder.cli import main
from fspladder.config import ConfigError, parse_config
from fspladder.tracking import epoch_scalars, flatten_params

SMALL = ["--set", "data.name=idx", "--set", "data.val_size=100", "--set", "eval_batch_size=200",
         "--set", "stage1.batch_size=50", "--set", "stage2.batch_size=50", "--no-progress", "--no-report"]




def _run(tiny_teacher, out: Path, track: str) -> list[dict]:
    _, idx, teacher = tiny_teacher
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", "--set", f"data.root={idx}",
                 "--set", "stage2.epochs=2", "--set", "rungs.0.stage2.epochs=1", "--set", f"track={track}",
                 *SMALL]) == 0
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _epochs(lines: list[dict], rung: str, stage: int, key: str) -> list[tuple[int, float]]:
    return [(x["epoch"], x[key]) for x in lines
            if x.get("rung") == rung and x.get("stage") == stage and "event" not in x and x.get(key) is not None]


def test_tensorboard_event_files_hold_the_metrics(tiny_teacher, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    lines = _run(tiny_teacher, out, "[tensorboard]")
    for rung in ("student1", "target"):
        acc = EventAccumulator(str(out / "tensorboard" / rung))
        acc.Reload()
        tags = set(acc.Tags()["scalars"])
        assert {"stage1/fsp_loss_train", "stage1/fsp_loss_step", "stage1/fsp_loss_pair0_step", "stage2/val_acc",
                "stage2/test_acc", "stage2/lr", "stage2/seconds", "stage2/loss_step"} <= tags, tags
        for stage, key in ((1, "fsp_loss_train"), (2, "val_acc"), (2, "test_acc"), (2, "train_loss"), (2, "lr")):
            want = _epochs(lines, rung, stage, key)
            got = [(e.step, e.value) for e in acc.Scalars(f"stage{stage}/{key}")]
            assert [s for s, _ in got] == [s for s, _ in want] and want
            for (_, g), (_, w) in zip(got, want):  # event files store float32
                assert g == pytest.approx(w, rel=1e-6, abs=1e-7)
        # Per-pair FSP losses sum to the step's loss.
        steps = [x for x in lines if x.get("event") == "stage1_step" and x["rung"] == rung]
        assert steps and all(sum(x["fsp_loss_pairs"]) == pytest.approx(x["fsp_loss"], rel=1e-4) for x in steps)


def test_mlflow_runs_hold_the_metrics_and_the_config(tiny_teacher, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    lines = _run(tiny_teacher, out, "[mlflow]")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads a file store only when allowed
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("fspladder")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    parent = runs.pop(f"fspladder run {out.name}")
    assert set(runs) == {"student1", "target"}
    assert parent.data.params["stage2.epochs"] == "2" and parent.data.params["rungs.0.model"] == "resnet14"
    for rung, run in runs.items():
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["track"] == '["mlflow"]' and run.data.params["rung.recipe.stage1"] == "fsp"
        for stage, key in ((1, "fsp_loss_train"), (2, "val_acc"), (2, "test_acc"), (2, "train_loss")):
            want = _epochs(lines, rung, stage, key)
            got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, f"stage{stage}/{key}"))
            assert [s for s, _ in got] == [s for s, _ in want] and want
            assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-12)
        assert client.get_metric_history(run.info.run_id, "stage2/loss_step")


def test_a_tracker_that_is_not_installed_is_refused_with_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'fspladder\[track\]'") as e:
        parse_config({"track": ["mlflow"]})
    assert len(e.value.problems) == 1 and "mlflow" in e.value.problems[0]
    with pytest.raises(ConfigError, match="one of"):
        parse_config({"track": ["wandb"]})


def test_records_map_to_tracker_scalars():
    assert epoch_scalars({"rung": "t", "stage": 2, "epoch": 3, "val_acc": 0.5, "test_acc": None, "lr": 0.1,
                          "soft_targets": True}) == (3, {"stage2/val_acc": 0.5, "stage2/lr": 0.1})
    assert epoch_scalars({"event": "stage1_step", "rung": "t", "step": 7, "fsp_loss": 2.0,
                          "fsp_loss_pairs": [1.5, 0.5]}) == (7, {"stage1/fsp_loss_step": 2.0,
                                                                 "stage1/fsp_loss_pair0_step": 1.5,
                                                                 "stage1/fsp_loss_pair1_step": 0.5})
    assert epoch_scalars({"event": "rung_start", "rung": "t"}) is None
    assert flatten_params({"a": {"b": 1}, "rungs": [{"m": "x"}], "l": [1, 2]}) == {"a.b": "1", "rungs.0.m": "x",
                                                                                  "l": "[1, 2]"}
