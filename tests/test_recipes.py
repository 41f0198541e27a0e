"""Recipes (issue 15): every init / stage-1 / guidance option runs end to end, kd-early switches as specified,
impossible combinations are refused with one clear message each."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from conftest import bench_args, train_tiny_teacher

from fspladder import create_model, save_checkpoint
from fspladder.check import check_config
from fspladder.cli import main
from fspladder.config import Stage2Config, read_config_data
from fspladder.engine import EarlySwitch, Stage2Result
from fspladder.engine.loop import lr_factor
from fspladder.recipes import ARMS, GROWN_LR, PRESETS, RECIPE_DEFAULT_KEYS, Recipe, parse_recipe, schedule_defaults

SMALL = ["--set", "stage1.epochs=0.5", "--set", "stage2.epochs=2", "--set", "rungs.0.stage2.epochs=1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from conftest import make_idx_folder

    root = tmp_path_factory.mktemp("recipes")
    idx = make_idx_folder(root)
    return root, idx, train_tiny_teacher(root / "teacher.pt", idx)


def test_early_switch_stops_when_the_student_passes_the_previous_network():
    r = Stage2Result(epochs=5, steps=50)
    sw = EarlySwitch(r, previous_val_acc=0.80, total_steps=50, until=0.9)
    seq = [0.55, 0.78, 0.80, 0.83, 0.86]  # passes (strictly) after epoch 4
    for epoch, acc in enumerate(seq, start=1):
        for step in range((epoch - 1) * 10, epoch * 10):
            sw.at_step(step, epoch)
        sw.at_epoch_end(epoch, epoch * 10, acc)
        if epoch < 4:
            assert sw.on, epoch
    assert not sw.on and r.kd_off["epoch"] == 4 and r.kd_off["step"] == 40 and r.kd_off["val_acc"] == 0.83
    assert "passed the previous network's" in r.kd_off["reason"]


def test_early_switch_stops_at_the_configured_fraction_at_the_latest():
    r = Stage2Result(epochs=4, steps=40)
    sw = EarlySwitch(r, previous_val_acc=0.99, total_steps=40, until=0.5)
    for epoch, acc in enumerate([0.5, 0.6, 0.7, 0.8], start=1):
        for step in range((epoch - 1) * 10, epoch * 10):
            switched = sw.at_step(step, epoch)
            assert switched == (step == 20)
        sw.at_epoch_end(epoch, epoch * 10, acc)
    assert r.kd_off["step"] == 20 and r.kd_off["epoch"] == 3 and "kd_until" in r.kd_off["reason"]


def test_presets_and_mappings_parse_and_bad_ones_name_the_fix():
    assert parse_recipe("ladder")[0] == PRESETS["patent"] == Recipe()
    assert parse_recipe({"init": "grow", "guidance": "kd-early"})[0] == Recipe("grow", "fsp", "kd-early")
    _, problems = parse_recipe({"init": "grwo", "colour": 1})
    assert any("unknown part(s) ['colour']" in p for p in problems)
    assert any("recipe.init must be one of random, grow, got 'grwo'" in p for p in problems)
    assert "did you mean grow-w2s" in parse_recipe("grow-w2", "rungs[1].recipe")[1][0]
    assert set(ARMS) >= {"scratch", "direct", "ladder", "soft", "grow", "grow-fsp", "w2s", "ladder-w2s", "grow-w2s"}


@pytest.mark.parametrize("recipe", sorted(PRESETS))
def test_every_recipe_runs_end_to_end(tiny, recipe):
    root, idx, teacher = tiny
    out = root / f"run-{recipe}"
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", "--set", f"recipe={recipe}",
                 *SMALL, *bench_args(idx), "--no-report"]) == 0
    s = json.loads((out / "summary.json").read_text())
    r = PRESETS[recipe]
    for rung in s["rungs"]:
        assert rung["recipe"] == r.as_dict()
        assert (rung["stage1"] is not None) == (r.stage1 == "fsp")
        assert rung["init"]["init"] == r.init and rung["stage2"]["guidance"] == r.guidance
        assert len(rung["stage2"]["val_acc"]) == rung["stage2"]["epochs"]
    if r.init == "grow":
        assert s["rungs"][0]["init"]["new_blocks"] == ("fresh" if r.stage1 == "fsp" else "identity")
    if r.guidance == "kd-early":
        assert all(rung["stage2"]["previous_val_acc"] is not None for rung in s["rungs"])
        lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        offs = [x for x in lines if x.get("event") == "kd_off"]
        assert len(offs) == sum(rung["stage2"]["kd_off"] is not None for rung in s["rungs"]) >= 1


def test_a_rung_may_name_its_own_recipe(tiny):
    root, idx, teacher = tiny
    out = root / "mixed"
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", "--set", "rungs.1.recipe=grow-w2s",
                 *SMALL, *bench_args(idx), "--no-report"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert [r["recipe"]["init"] for r in s["rungs"]] == ["random", "grow"]
    assert s["rungs"][1]["init"]["from"] == "resnet14 width 1"


def _problems(idx, teacher, *sets):
    return check_config(read_config_data(None, ["data.name=idx", f"data.root={idx}", "data.val_size=100",
                                                f"teacher.checkpoint={teacher}", *sets]))[1]


def test_check_refuses_impossible_combinations_with_one_message_each(tiny, tmp_path):
    root, idx, teacher = tiny
    vgg = tmp_path / "vgg.pt"
    save_checkpoint(vgg, create_model("vgg8", in_chans=1, num_classes=4), {"name": "vgg8",
                                                                          "kwargs": {"in_chans": 1, "num_classes": 4}})
    cases = {
        # growth from another family
        ("recipe=grow", f"teacher.checkpoint={vgg}"):
            "cannot grow from teacher: growth needs two networks of one growth family",
        # growth into a narrower network
        ("recipe=grow", "rungs=[{name: t, model: resnet8, kwargs: {width: 2}}, {name: u, model: resnet56}]"):
            "the student is narrower than the network before it",
        # grow-fsp aligns new blocks only: widths must match
        ("recipe=grow-fsp", "rungs=[{name: t, model: resnet20, kwargs: {width: 2}}]"):
            "grown from teacher, and that needs equal widths, got width 1 -> 2; "
            "use recipe grow (function-preserving, wider too), or patent with stage1.project_channels: true",
        # joint FSP term on mismatched shapes
        ("recipe=patent-joint", "stage1.project_channels=true",
         "rungs=[{name: t, model: resnet20, kwargs: {width: 2}}]"):
            "the joint FSP term compares",
        # FSP stage 1 on a wider student without projections
        ("rungs=[{name: t, model: resnet20, kwargs: {width: 2}}]",): "or use a recipe without stage 1, e.g. grow",
        # a recipe key nothing reads
        ("stage2.kd_alpha=0.5",): "stage2.kd_alpha is set to 0.5, but no recipe here uses it",
    }
    for sets, expected in cases.items():
        problems = _problems(idx, teacher, *sets)
        assert len(problems) == 1 and expected in problems[0], (sets, problems)
    # soft targets from a teacher of other classes
    other = tmp_path / "other.pt"
    assert main(["train", "--model", "resnet8", "--save", str(other), "--set", "stage2.epochs=1",
                 "--set", "data.classes=[1, 0, 2, 3]", *bench_args(idx)]) == 0
    problems = _problems(idx, other, "recipe=w2s")
    assert len(problems) == 1 and "soft targets need the previous network to predict the data's classes" in problems[0]
    assert _problems(idx, other, "recipe=patent") == []  # FSP transfer across classes is the patent's [0102]
    # and run refuses them the same way, before writing anything
    out = root / "refused"
    assert main(["run", "--out", str(out), "--set", "data.name=idx", "--set", f"data.root={idx}",
                 "--set", "data.val_size=100", "--set", f"teacher.checkpoint={vgg}", "--set", "recipe=grow"]) == 2
    assert not out.exists()


def test_width_growth_bench_has_a_grow_arm_and_w2s_arms_run(tiny):
    root, idx, teacher = tiny
    out = root / "bench-width"
    assert main(["bench", "configs/width.yaml", "--out", str(out), "--seeds", "1", "--budgets", "1",
                 "--set", f"teacher.checkpoint={teacher}", "--set", "stage2.epochs=1", "--set", "stage1.epochs=0.5",
                 *bench_args(idx), "--no-report"]) == 0
    b = json.loads((out / "bench.json").read_text())
    assert "grow" in b["arms"] and not b["skipped"]
    grow = next(r for r in b["runs"] if r["arm"] == "grow")
    assert grow["init"]["wider"] and not grow["init"]["deeper"] and grow["lr"] == pytest.approx(GROWN_LR)
    out = root / "bench-w2s"
    assert main(["bench", "--out", str(out), "--seeds", "1", "--budgets", "1", "--arms", "w2s,ladder-w2s,grow-w2s",
                 "--set", f"teacher.checkpoint={teacher}", *SMALL, *bench_args(idx), "--no-report"]) == 0
    b = json.loads((out / "bench.json").read_text())
    assert b["arms"] == ["w2s", "ladder-w2s", "grow-w2s"] and len(b["runs"]) == 3
    assert {r["recipe"]["guidance"] for r in b["runs"]} == {"kd-early"}
    ladder = next(r for r in b["runs"] if r["arm"] == "ladder-w2s")
    assert ladder["chain"] and ladder["stage1_seconds"] > 0


def test_growth_then_training_starts_at_the_previous_networks_accuracy(tiny):
    """A grown target's first evaluation equals its teacher's: the function is preserved on real data too."""
    root, idx, teacher = tiny
    from fspladder import load_config
    from fspladder.engine import evaluate
    from fspladder.growth import grow
    from fspladder.rung import load_teacher, student_rung
    from fspladder.session import context_for, load_data

    cfg = load_config(None, ["data.name=idx", f"data.root={idx}", "data.val_size=100", f"teacher.checkpoint={teacher}"])
    data = load_data(cfg)
    ctx = context_for(cfg, torch.device("cpu"), data)
    t, _ = load_teacher(cfg)
    target = student_rung(cfg.rungs[-1], data, 0)
    target.model.load_state_dict(create_model("resnet20", in_chans=1, num_classes=4).state_dict())
    grow(t.model, target.model, noise=0.1, seed=1)
    assert evaluate(target.model, data.val, ctx) == evaluate(t.model, data.val, ctx)


# Issue 35: recipe behaviour is asked of Recipe (grows, has_stage1, soft_targets, ...), never of its part strings.
_PARTS = {"init", "stage1", "guidance"}
_SRC = Path(__file__).resolve().parents[1] / "src" / "fspladder"


def _is_part(node: ast.AST) -> bool:
    """``x.init`` / ``x.stage1`` / ``x.guidance``, or ``x["init"]`` etc. (a recipe stored as a mapping)."""
    if isinstance(node, ast.Attribute):
        return node.attr in _PARTS
    return (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
            and node.slice.value in _PARTS)


def _is_str(node: ast.AST) -> bool:
    """A string constant, or a tuple/list/set of them (``in ("kd", "kd-early")``)."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return bool(node.elts) and all(_is_str(e) for e in node.elts)
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def recipe_string_tests(tree: ast.AST) -> list[int]:
    """Lines of ``tree`` that compare a recipe part with a string: ==, !=, in, not in, startswith, endswith."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for op, a, b in zip(node.ops, sides, sides[1:]):
                # ``"epochs" in rung.stage1`` asks a rung's override mapping, not a recipe: only a part on the
                # left of ``in`` is a recipe test
                membership = isinstance(op, (ast.In, ast.NotIn))
                if _is_part(a) and _is_str(b) or not membership and _is_str(a) and _is_part(b):
                    lines.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith") and _is_part(node.func.value)):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_the_scan_finds_each_form_of_string_test():
    src = ('a = r.init == "grow"\nb = "fsp" != r.stage1\nc = r.guidance in ("kd", "kd-early")\n'
           'd = r.guidance.startswith("kd")\ne = rec["init"] == "random"\nf = r.grows\ng = r.init == other\n'
           'h = r.name == "grow"\ni = "epochs" in rung.stage1\n')
    assert recipe_string_tests(ast.parse(src)) == [1, 2, 3, 4, 5]


def test_no_module_but_recipes_compares_recipe_parts_with_strings():
    offenders = []
    for path in sorted(_SRC.rglob("*.py")):
        if path.name == "recipes.py" and path.parent == _SRC:  # it defines the strings and the properties
            continue
        text = path.read_text()
        lines = text.splitlines()
        offenders += [f"{path.relative_to(_SRC.parent)}:{n}: {lines[n - 1].strip()}"
                      for n in recipe_string_tests(ast.parse(text, str(path)))]
    assert not offenders, ("compare recipes through Recipe's properties (grows, has_stage1, soft_targets, "
                           "joint_flow, ...; add one to recipes.Recipe if missing), not part strings:\n  "
                           + "\n  ".join(offenders))


def test_each_recipe_default_is_written_once_in_schedule_defaults():
    """Stage2Config leaves every recipe key null and ``resolved`` copies schedule_defaults, nothing else."""
    bare = Stage2Config(epochs=3)
    assert all(getattr(bare, k) is None for k in RECIPE_DEFAULT_KEYS)
    for name, recipe in PRESETS.items():
        table = schedule_defaults(recipe)
        assert set(table) == set(RECIPE_DEFAULT_KEYS), name
        got = bare.resolved(recipe)
        assert {k: getattr(got, k) for k in RECIPE_DEFAULT_KEYS} == table, name
        # what the engine reads is never left null by a resolved config
        assert None not in (got.lr, got.warmup_epochs, got.schedule, got.decay_fraction, got.ema), name
        # and what only some recipes read is set exactly for them
        assert (table["kd_temperature"] is not None) == recipe.soft_targets, name
        assert (table["kd_until"] is not None) == recipe.soft_targets_early, name
        assert (table["fsp_weight"] is not None) == recipe.joint_flow, name
        assert (table["growth_noise"] is not None) == recipe.grows, name
    with pytest.raises(ValueError, match="wsd needs decay_fraction"):
        lr_factor(5, 10, 0, 0.0, "wsd")
