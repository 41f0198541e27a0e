"""Non-patent combinations (issue 9): growth + FSP alignment (recipe grow-fsp), and joint CE + FSP in stage 2
(guidance joint)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import bench_args, train_tiny_teacher

from fspladder import create_model
from fspladder.check import check_config
from fspladder.cli import main
from fspladder.config import ConfigError, Stage2Config, load_config, read_config_data
from fspladder.engine import FlowTarget, fsp_eval_loss, train_stage2
from fspladder.growth import grow, grown_copies
from fspladder.ladder import default_pairs
from fspladder.recipes import PRESETS


def test_growth_without_identities_copies_the_teacher_and_keeps_new_blocks_fresh():
    torch.manual_seed(0)
    teacher, student = create_model("resnet8", num_classes=10), create_model("resnet20", num_classes=10)
    fresh = copy.deepcopy(student)
    grow(teacher, student, identity=False)
    copied = grown_copies(teacher, student)
    assert len(copied) == 2 + 3  # stem, head, one block per section (ResNet-8 has one block per section)
    t_states = [teacher.stem, teacher.fc, teacher.layer1[0], teacher.layer2[0], teacher.layer3[0]]
    for s_mod, t_mod in zip(copied, t_states):
        for a, b in zip(s_mod.state_dict().values(), t_mod.state_dict().values()):
            torch.testing.assert_close(a, b)
    for name in ("layer1", "layer2", "layer3"):
        for i in (1, 2):  # new blocks: untouched, so not identities (bn2's scale is 1, not 0)
            new, orig = getattr(student, name)[i], getattr(fresh, name)[i]
            for a, b in zip(new.state_dict().values(), orig.state_dict().values()):
                torch.testing.assert_close(a, b)
            assert bool((new.bn2.weight == 1).all())


def test_joint_stage2_keeps_the_student_nearer_the_previous_flow(tiny_pair):
    ctx, prev, student = tiny_pair
    pairs_s, pairs_p = default_pairs(student), default_pairs(prev)
    cfg = Stage2Config(epochs=2, batch_size=50, lr=0.05, warmup_epochs=0.0).resolved(PRESETS["scratch"])
    plain, joint = copy.deepcopy(student), copy.deepcopy(student)
    r_plain = train_stage2(plain, cfg, ctx, "plain", seed=1, eval_test=False)
    r_joint = train_stage2(joint, cfg, ctx, "joint", seed=1, eval_test=False,
                           guidance=FlowTarget(pairs_s, prev, pairs_p, weight=1.0, norm="element"))
    assert r_plain.fsp_weight is None and r_joint.fsp_weight == 1.0 and r_joint.guidance == "joint"
    d_plain = fsp_eval_loss(plain, pairs_s, prev, pairs_p, ctx.data.val, ctx)
    d_joint = fsp_eval_loss(joint, pairs_s, prev, pairs_p, ctx.data.val, ctx)
    assert d_joint < 0.5 * d_plain, (d_joint, d_plain)
    # The hooks are gone afterwards: the models run without recording anything.
    assert not student._forward_hooks and not any(m._forward_hooks for m in joint.modules())
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in prev.modules())


def test_fsp_weight_is_checked(idx_folder):
    with pytest.raises(ConfigError, match=r"stage2.fsp_weight must be a finite number in \(0, 1e\+09\], got -1"):
        load_config(None, ["stage2.fsp_weight=-1"])
    data = ["data.name=idx", f"data.root={idx_folder}", "data.val_size=100"]
    # Set where no rung's recipe reads it: refused, naming the recipe that would.
    _, problems = check_config(read_config_data(None, [*data, "stage2.fsp_weight=0.001"]))
    assert any("stage2.fsp_weight is set to 0.001, but no recipe here uses it (only guidance joint does)" in p
               for p in problems), problems
    _, problems = check_config(read_config_data(None, [*data, "recipe=patent-joint", "stage2.fsp_weight=0.001"]))
    assert problems == []
    assert load_config(None, ["recipe=patent-joint"]).stage_for(load_config(None).rungs[1], "stage2",
                                                                "patent-joint").fsp_weight == 1e-3


def test_train_refuses_fsp_weight(tmp_path, idx_folder, capsys):
    code = main(["train", "--model", "resnet8", "--save", str(tmp_path / "t.pt"), "--set", "data.name=idx",
                 "--set", f"data.root={idx_folder}", "--set", "stage2.fsp_weight=0.1", "--no-progress"])
    assert code == 2
    assert "stage2.fsp_weight is set to 0.1, but `fspladder train` trains with cross-entropy alone, which does not " \
        "use it (only guidance joint does)" in capsys.readouterr().err
    assert not (tmp_path / "t.pt").exists()


def test_a_validation_split_larger_than_the_data_is_a_clear_error(tmp_path, idx_folder, capsys):
    code = main(["train", "--model", "resnet8", "--save", str(tmp_path / "t.pt"), "--set", "data.name=idx",
                 "--set", f"data.root={idx_folder}", "--no-progress"])
    assert code == 2
    assert "data.val_size is 5,000 (the default when the key is not set), but the data has 600 training images; " \
        "set data.val_size between 1 and 599" in capsys.readouterr().err
    assert not (tmp_path / "t.pt").exists()


def test_bench_grow_fsp_arm_and_joint_variants(tmp_path, idx_folder):
    common = bench_args(idx_folder)
    teacher = train_tiny_teacher(tmp_path / "t.pt", idx_folder)
    out = tmp_path / "bench"
    variants = {"grow-joint": {"arm": "grow", "recipe": "grow-joint"},
                "direct-joint": {"arm": "direct", "recipe": "patent-joint", "set": {"stage2.fsp_weight": 0.002}}}
    assert main(["bench", "--out", str(out), "--seeds", "1", "--budgets", "1", "--arms", "scratch,grow-fsp",
                 "--set", "stage2.epochs=1", "--set", "stage1.epochs=0.5", "--set", f"teacher.checkpoint={teacher}",
                 "--set", "bench.variants=" + json.dumps(variants), *common]) == 0
    bench = json.loads((out / "bench.json").read_text())
    # scratch-cosine: the fair baseline gives scratch the cosine its other arms train with (scratch's own is wsd)
    assert bench["arms"] == ["scratch", "grow-fsp", "grow-joint", "direct-joint", "scratch-cosine"]
    runs = {r["arm"]: r for r in bench["runs"]}
    g = runs["grow-fsp"]
    assert g["base_arm"] == "grow-fsp" and g["stage1_seconds"] > 0 and g["pipeline_seconds"] > g["target_seconds"]
    assert g["fsp_loss_end"] < g["fsp_loss_start"]  # the new blocks learned the teacher's flow
    assert runs["grow-joint"]["pre_seconds"] == 0 and runs["direct-joint"]["stage1_seconds"] > 0
    assert runs["grow-joint"]["recipe"] == {"init": "grow", "stage1": "none", "guidance": "joint"}
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    joint_epochs = [r for r in log if r.get("stage") == 2 and "fsp_loss_train" in r]
    assert {r["rung"].split("/")[0] for r in joint_epochs} == {"grow-joint", "direct-joint"}


def test_bench_refuses_fsp_weight_on_soft(tmp_path, idx_folder, capsys):
    code = main(["bench", "--out", str(tmp_path / "b"), "--arms", "scratch", "--set", "data.name=idx",
                 "--set", "data.val_size=100",
                 "--set", f"data.root={idx_folder}", "--no-progress", "--set", "bench.variants=" + json.dumps(
                     {"soft-joint": {"arm": "soft", "set": {"stage2.fsp_weight": 0.001}}})])
    assert code == 2
    assert "bench.variants.soft-joint sets stage2.fsp_weight, which its recipe soft" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_bench_refuses_a_joint_term_whose_fsp_shapes_differ_before_training(tmp_path, idx_folder, capsys):
    out = tmp_path / "b"
    code = main(["bench", "--out", str(out), "--arms", "scratch", "--set", "rungs.1.kwargs={width: 2}",
                 *bench_args(idx_folder), "--set", "bench.variants=" + json.dumps(
                     {"scratch-joint": {"arm": "scratch", "recipe": {"stage1": "none", "guidance": "joint"}}})])
    assert code == 2
    err = capsys.readouterr().err
    assert "the joint FSP term compares target's FSP matrices [(32, 32), (32, 64), (64, 128)] with teacher's " \
        "[(16, 16), (16, 32), (32, 64)], which differ" in err
    assert not out.exists()  # refused before any arm trained
