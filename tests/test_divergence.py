"""Non-finite losses: skipped, rolled back, or stopped cleanly with good checkpoints kept."""

import json

import torch

from fspladder import create_model, load_model, save_checkpoint
from fspladder.cli import main


def _args(tmp_path, idx_folder, out):
    teacher = tmp_path / "t.pt"
    save_checkpoint(teacher, create_model("resnet8", in_chans=1, num_classes=4),
                    {"name": "resnet8", "kwargs": {"in_chans": 1, "num_classes": 4}})
    return ["run", "--out", str(out), "--no-progress", "--no-report", "--set", "data.name=idx",
            "--set", f"data.root={idx_folder}", "--set", "data.val_size=100", "--set", "stage1.batch_size=50",
            "--set", "stage2.batch_size=50", "--set", "stage2.epochs=1", "--set", f"teacher.checkpoint={teacher}"]


def _events(out, name):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if name in x]


def test_a_few_poisoned_batches_are_skipped(tmp_path, idx_folder, monkeypatch):
    monkeypatch.setenv("FSPLADDER_FAULT", "nan:stage1:student1:3")
    out = tmp_path / "run"
    assert main(_args(tmp_path, idx_folder, out)) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["rungs"][0]["stage1"]["skipped_steps"] == 3
    assert len(_events(out, "nonfinite_loss")) == 3 and not _events(out, "rollback")
    assert torch.isfinite(torch.cat([p.flatten()
                                     for p in load_model(out / "rung-1-student1.pt")[0].parameters()])).all()


def test_a_diverging_stage_rolls_back_then_stops_cleanly(tmp_path, idx_folder, monkeypatch, capsys):
    monkeypatch.setenv("FSPLADDER_FAULT", "nan:stage1:target:100000")
    out = tmp_path / "run"
    assert main(_args(tmp_path, idx_folder, out)) == 2
    err = capsys.readouterr().err
    assert "not finite for 10 steps in a row" in err and "Rolled back 2 time(s)" in err  # 10 = a whole epoch
    rollbacks = _events(out, "rollback")
    assert [r["lr_scale"] for r in rollbacks] == [0.5, 0.25]
    # The finished rung's checkpoint and the last saved state are intact and loadable.
    model, _ = load_model(out / "rung-1-student1.pt")
    assert sum(p.numel() for p in model.parameters()) > 0
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["rung"] == 1 and state["stage"] == 2
