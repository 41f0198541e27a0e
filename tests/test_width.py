"""Width growth: learned 1x1 projections align a wider student's taps in stage 1."""

import json

import torch

from fspladder import create_model, save_checkpoint
from fspladder.align import ChannelAligner
from fspladder.cli import main
from fspladder.flow import FlowRecorder, flow_of
from fspladder.ladder import default_pairs


def test_aligner_is_identity_when_channels_match_and_projects_otherwise():
    same = ChannelAligner([(16, 32)], [(16, 32)])
    assert same.is_identity and not list(same.parameters())
    wide = ChannelAligner([(32, 64), (64, 128)], [(16, 32), (32, 64)])
    model = create_model("resnet20", width=2, in_chans=1)
    pairs = default_pairs(model)[1:]
    with FlowRecorder(model, [t for p in pairs for t in (p.first, p.second)]) as rec:
        model(torch.randn(2, 1, 16, 16))
    g = wide.flows(rec.features, pairs)
    assert [tuple(x.shape) for x in g] == [(2, 16, 32), (2, 32, 64)]
    assert [tuple(x.shape) for x in flow_of(rec.features, pairs)] == [(2, 32, 64), (2, 64, 128)]


def test_width_growing_ladder_runs_and_stage1_loss_falls(tmp_path, idx_folder):
    teacher = tmp_path / "t.pt"
    save_checkpoint(teacher, create_model("resnet20", in_chans=1, num_classes=4),
                    {"name": "resnet20", "kwargs": {"in_chans": 1, "num_classes": 4}})
    out = tmp_path / "run"
    common = ["--set", "data.name=idx", "--set", f"data.root={idx_folder}", "--set", "data.val_size=100",
              "--set", "stage1.batch_size=50", "--set", "stage2.batch_size=50", "--no-progress", "--no-report"]
    # Without projections the ladder is refused, naming the fix.
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}",
                 "--set", "rungs=[{name: wide, model: resnet20, kwargs: {width: 2}}]", *common]) == 2
    # `fspladder check` agrees with `run` on both.
    wide = ["--set", f"teacher.checkpoint={teacher}",
            "--set", "rungs=[{name: wide, model: resnet20, kwargs: {width: 2}}]", *common[:-2]]
    assert main(["check", *wide]) == 2
    assert main(["check", *wide, "--set", "stage1.project_channels=true"]) == 0
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}",
                 "--set", "rungs=[{name: wide, model: resnet20, kwargs: {width: 2}}]",
                 "--set", "stage1.project_channels=true", "--set", "stage1.epochs=3", "--set", "stage2.epochs=1",
                 *common]) == 0
    s = json.loads((out / "summary.json").read_text())
    r = s["rungs"][0]
    assert r["projected_channels"] and r["params"] > 3 * s["teacher"]["params"]
    assert r["stage1"]["fsp_loss_end"] < 0.5 * r["stage1"]["fsp_loss_start"]
    # The saved target is the plain wide ResNet: no projection weights in it.
    ck = torch.load(out / r["checkpoint"], weights_only=True)
    assert not any("first" in k or "second" in k for k in ck["state_dict"])
