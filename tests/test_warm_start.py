"""Warm-start levers for grown networks (issue 23): the schedule shape, the weight average, the growth split noise.

Each key is tested for what it does, for being recorded, and for being refused with one message where the
rung's recipe does not read it.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import bench_args
from hypothesis import given
from hypothesis import strategies as st

from fspladder.check import check_config
from fspladder.cli import main
from fspladder.config import Stage2Config, read_config_data
from fspladder.engine import train_stage2
from fspladder.engine.loop import lr_factor
from fspladder.recipes import PRESETS

SMALL = ["--set", "stage1.epochs=0.5", "--set", "stage2.epochs=2", "--set", "rungs.0.stage2.epochs=1"]




@given(total=st.integers(1, 5000), warm_share=st.floats(0, 1), floor=st.floats(0, 1), frac=st.floats(0.01, 1))
def test_wsd_holds_the_peak_then_decays_linearly_to_the_floor(total, warm_share, floor, frac):
    warmup = int(warm_share * total)
    f = [lr_factor(s, total, warmup, floor, "wsd", frac) for s in range(total)]
    after = f[warmup:]
    assert all(a >= b - 1e-12 for a, b in zip(after, after[1:]))  # never rises after warm-up
    assert all(floor - 1e-12 <= x <= 1 + 1e-12 for x in after)
    n = total - warmup
    stable = [x for s, x in zip(range(warmup, total), after) if (s - warmup) / max(1, n) <= 1 - frac]
    assert all(x == 1.0 for x in stable) and len(stable) >= 1 if n else True
    if total > warmup:  # a schedule with steps after its warm-up ends at the floor
        assert lr_factor(total, total, warmup, floor, "wsd", frac) == pytest.approx(floor, abs=1e-12)


@given(total=st.integers(1, 3000), warm_share=st.floats(0, 1), floor=st.floats(0, 1))
def test_the_cosine_is_the_closed_form_it_always_was(total, warm_share, floor):
    """The default shape: the patent recipe's schedule is unchanged by the new keys."""
    warmup = int(warm_share * total)
    for s in range(0, total, max(1, total // 50)):
        old = (s + 1) / warmup if s < warmup else \
            floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, total - warmup))))
        assert lr_factor(s, total, warmup, floor) == old


def test_a_weight_average_keeps_the_start_and_is_what_the_stage_ends_with(tiny_pair):
    ctx, _, student = tiny_pair
    start = {k: v.clone() for k, v in student.state_dict().items()}
    cfg = Stage2Config(epochs=1, batch_size=50, lr=0.5, warmup_epochs=0.0, ema=0.999999).resolved(PRESETS["scratch"])
    r = train_stage2(student, cfg, ctx, "s", seed=0)
    assert r.ema == 0.999999 and len(r.val_acc_raw) == len(r.val_acc) == 1
    for k, v in student.state_dict().items():  # the average barely moved off the start
        if v.is_floating_point():
            scale = start[k].abs().max().clamp_min(1.0)
            assert (v - start[k]).abs().max() <= 1e-3 * scale, k
    # without the average the same stage moves the weights
    moved = tiny_pair[2]
    moved.load_state_dict(start)
    bare = Stage2Config(epochs=1, batch_size=50, lr=0.5, warmup_epochs=0.0)
    # the engine has no defaults of its own (recipes.schedule_defaults is their one place): unresolved is refused
    with pytest.raises(ValueError, match=r"resolved Stage2Config \(schedule, decay_fraction, ema unset\)"):
        train_stage2(moved, bare, ctx, "s", seed=0)
    train_stage2(moved, bare.resolved(PRESETS["scratch"]), ctx, "s", seed=0)
    assert max((v - start[k]).abs().max().item() for k, v in moved.state_dict().items() if v.is_floating_point()) > 1e-2


def test_keys_are_recorded_in_summary_and_bench(tiny_teacher):
    root, idx, teacher = tiny_teacher
    out = root / "run-wsd"
    assert main(["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", "--set", "recipe=grow",
                 "--set", "stage2.decay_fraction=0.3", "--set", "stage2.ema=0.9",  # wsd: growth's default
                 "--set", "stage2.growth_noise=0.3", *SMALL, *bench_args(idx), "--no-report"]) == 0
    s = json.loads((out / "summary.json").read_text())
    target = s["rungs"][-1]
    assert target["stage2"]["schedule"]["shape"] == "wsd" and target["stage2"]["schedule"]["decay_fraction"] == 0.3
    assert target["stage2"]["ema"] == 0.9 and target["init"]["noise"] == 0.3
    out = root / "bench-warm"
    assert main(["bench", "--out", str(out), "--seeds", "1", "--budgets", "0.5,1", "--arms", "scratch,grow",
                 "--set", f"teacher.checkpoint={teacher}", "--set", "rungs=[{name: target, model: resnet14}]",
                 "--set", "stage2.epochs=2", "--set", "bench.arm_budgets={scratch: [1], grow: [1], grow-ema: [0.5, 1]}",
                 "--set", "bench.variants={grow-ema: {arm: grow, set: {stage2.ema: 0.9, stage2.growth_noise: 0}}}",
                 *bench_args(idx), "--no-report"]) == 0
    bench = json.loads((out / "bench.json").read_text())
    assert sorted((r["arm"], r["budget"]) for r in bench["runs"]) == \
        [("grow", 1), ("grow-ema", 0.5), ("grow-ema", 1), ("scratch", 1),  # arm_budgets: the full budget only
         ("scratch-wsd-ema0.9", 0.5), ("scratch-wsd-ema0.9", 1)]  # the fair baseline: grow-ema's weight average
    assert bench["summary"]["thresholds"]["scratch"] == max(
        r["val_acc"][-1] for r in bench["runs"] if r["arm"].startswith("scratch") and r["budget"] == 1)
    runs = {r["arm"]: r for r in bench["runs"] if r["budget"] == 1}
    assert runs["grow"]["ema"] is None and runs["grow"]["schedule"]["shape"] == "wsd"
    assert runs["grow-ema"]["ema"] == 0.9 and runs["grow-ema"]["growth_noise"] == 0
    assert runs["grow-ema"]["init"]["noise"] == 0 and len(runs["grow-ema"]["val_acc_raw"]) == 2


def test_arm_budgets_must_name_an_arm_and_some_of_the_budgets(tiny_teacher):
    root, idx, teacher = tiny_teacher
    for sets, expected in [(("bench.arm_budgets={scrach: [1.0]}",),
                            "no arm or variant of this bench is called 'scrach'"),
                           (("bench.arm_budgets={scratch: [0.3]}",), "must list some of bench.budgets")]:
        problems = _problems(idx, teacher, *sets)
        assert len(problems) == 1 and expected in problems[0], problems


def _problems(idx, teacher, *sets):
    return check_config(read_config_data(None, ["data.name=idx", f"data.root={idx}", "data.val_size=100",
                                                f"teacher.checkpoint={teacher}", *sets]))[1]


@pytest.mark.parametrize("sets,expected", [
    (("stage2.growth_noise=0.2",), "stage2.growth_noise is set to 0.2, but no recipe here uses it (only recipes "
                                   "with init grow do)"),
    (("recipe=grow", "rungs.0.recipe=patent", "rungs.0.stage2={growth_noise: 0.2}"),
     "rungs[0].stage2.growth_noise is set, but rung student1's recipe"),
    (("stage2.decay_fraction=0.3",), "decay_fraction is set, but the schedule is cosine"),
    (("stage2.schedule=cosine", "stage2.decay_fraction=0.3"), "stage2.decay_fraction is read by schedule wsd only"),
])
def test_a_key_its_recipe_does_not_read_is_refused_with_one_message(tiny_teacher, sets, expected):
    root, idx, teacher = tiny_teacher
    problems = _problems(idx, teacher, *sets)
    assert len(problems) == 1 and expected in problems[0], problems
    out = root / "refused"
    args = ["run", "--out", str(out), "--set", f"teacher.checkpoint={teacher}", *bench_args(idx)]
    assert main([*args, *[x for s in sets for x in ("--set", s)]]) == 2 and not out.exists()


def test_growth_reads_its_noise_and_other_recipes_do_not():
    from fspladder.recipes import schedule_defaults

    for name, r in PRESETS.items():
        assert (schedule_defaults(r)["growth_noise"] is not None) == (r.init == "grow"), name
    assert schedule_defaults(PRESETS["patent"])["ema"] == 0.0


def test_plain_recipes_default_to_wsd_and_the_rest_to_cosine():
    """Issue 32 item 6: wsd (half the steps decaying) won at the full budget for scratch and growth on three
    families, so it is their default; the recipes with a stage 1 or a teacher in stage 2 keep the one cosine."""
    from fspladder.recipes import schedule_defaults

    for name, r in PRESETS.items():
        d = schedule_defaults(r)
        plain = r.stage1 == "none" and r.guidance == "ce"
        assert d["schedule"] == ("wsd" if plain else "cosine"), name
        assert d["decay_fraction"] == 0.5, name
    assert {n for n, r in PRESETS.items() if r.plain_training} == {"scratch", "grow"}


def test_growth_noise_zero_keeps_copies_equal(tiny_pair):
    """noise 0: equal splits, so a widened network's copies of a channel are identical."""
    from fspladder import create_model
    from fspladder.growth import grow

    torch.manual_seed(0)
    small = create_model("resnet8", in_chans=1, num_classes=4)
    big = create_model("resnet8", in_chans=1, num_classes=4, width=2)
    grow(small, big, noise=0.0, seed=0)
    w = big.layer1[0].conv2.weight  # (32, 32, 3, 3): output copies i and i + 16
    assert torch.equal(w[:16], w[16:])
