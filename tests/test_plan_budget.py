"""The planner by budget (issue 32): recipe and schedule for a time budget from measured curves, scratch with each
of its schedules among the candidates, in agreement with the frontier; on recorded and synthetic bench records."""

import json
from pathlib import Path

import pytest

from fspladder.bench.results import frontier, load_bench
from fspladder.cli import main
from fspladder.plan import PlanError
from fspladder.plan.budget import choose_by_budget, curves_from_benches

ROOT = Path(__file__).parents[1]
REALISTIC = ROOT / "docs/results/realistic"
SCRATCH = {"init": "random", "stage1": "none", "guidance": "ce"}
GROW = {"init": "grow", "stage1": "none", "guidance": "ce"}


def _run(arm, budget, acc, sec, recipe=SCRATCH, base=None, shape="cosine", seed=0, model="resnet20"):
    return {"arm": arm, "base_arm": base or arm, "recipe": recipe, "seed": seed, "budget": budget,
            "epochs": round(10 * budget), "val_acc": [acc], "test_acc": [acc], "train_acc": acc,
            "target_seconds": sec, "pipeline_seconds": sec + 1, "lr": 0.05, "ema": 0.0,
            "schedule": {"lr": 0.05, "shape": shape, "warmup_epochs": 0.0,
                         "decay_fraction": 0.5 if shape == "wsd" else None}}


def _bench(runs, model="resnet20", platform="host-a"):
    return {"runs": runs, "full_epochs": 10, "budgets": sorted({r["budget"] for r in runs}),
            "arms": list(dict.fromkeys(r["arm"] for r in runs)), "summary": {}, "protocol": {"arms_train_images": 800},
            "config": {"teacher": {"checkpoint": "builtin:t"}, "rungs": [{"model": model}], "bench": {}},
            "machine": {"platform": platform, "torch": "2", "device": "cpu", "cpu_threads": 2}}


def _agrees(fams, curves, budget):
    """The planner's pick at ``budget`` is the frontier's at the epochs it picks: the best transfer recipe, or the
    best scratch where scratch leads there."""
    pick, point, _ = choose_by_budget(curves, budget)
    row = next(r for r in fams[0]["rows"] if r["epochs"] == point[1])
    expect = row["scratch"] if row["margin"] is not None and row["margin"] < 0 else row["best"]
    return pick.label, point[1], expect



def test_planner_agrees_with_the_fair_frontier_of_the_realistic_preset():
    # docs/results/realistic-fair: scratch and grow each with cosine, wsd and a weight average (cosine, ema 0.99),
    # 1/2/3/5/8/10 epochs, 3 seeds; scratch-wsd is the best scratch (a candidate with each of its schedules).
    # Short, middle and full budget, as the frontier.
    fair = ROOT / "docs/results/realistic-fair"
    benches = [(str(fair), load_bench(fair, "--measured"))]
    fams, curves = frontier(benches), curves_from_benches(benches)
    assert {c.label for c in curves if c.scratch} == {"scratch", "scratch-wsd", "scratch-cosine", "scratch-ema"}
    for budget, (label, epochs) in {15.0: ("grow-ema", 1), 35.0: ("grow-cosine", 3), 60.0: ("grow", 5),
                                    110.0: ("grow-wsd", 10)}.items():
        pick, point, _ = choose_by_budget(curves, budget)
        assert (pick.label, point[1]) == (label, epochs), budget
        chosen, _, frontier_pick = _agrees(fams, curves, budget)
        assert chosen == frontier_pick, budget

def test_planner_by_budget_picks_exactly_what_the_realistic_bench_measured():
    # the realistic preset's recorded bench alone (one machine): grow's 2-, 5- and 10-epoch runs took 18.6 s,
    # 46.5 s and 94.4 s (mean of 3 seeds), scratch's 10 epochs 93.1 s
    benches = [(str(REALISTIC), load_bench(REALISTIC, "--measured"))]
    fams, curves = frontier(benches), curves_from_benches(benches)
    assert {c.label for c in curves if c.scratch} == {"scratch"}  # scratch is a candidate
    want = {25.0: ("grow", 2, 0.8646, 18.55), 60.0: ("grow", 5, 0.8753, 46.48), 100.0: ("grow", 10, 0.8855, 94.44),
            # grow's 10 epochs (94.4 s) do not fit 94 s; scratch's (93.1 s) do and beat grow's 5 epochs (0.8753)
            94.0: ("scratch", 10, 0.8815, 93.11)}
    for budget, (label, epochs, acc, sec) in want.items():
        pick, point, _ = choose_by_budget(curves, budget)
        assert (pick.label, point[1]) == (label, epochs), budget
        assert point[2] == pytest.approx(acc, abs=1e-4) and point[0] == pytest.approx(sec, rel=1e-3)
    for budget in (25.0, 60.0, 100.0):  # a short, a middle and the full budget: the frontier's pick too
        label, epochs, expect = _agrees(fams, curves, budget)
        assert label == expect, (budget, epochs)


def test_planner_refuses_benches_of_two_machines_whatever_their_order():
    # the realistic bench ran on host v857, growth-schedules on v1098 (scratch's 10 epochs: 93 s against 125 s)
    dirs = [REALISTIC, ROOT / "docs/results/growth-schedules"]
    errs = []
    for order in (dirs, dirs[::-1]):
        with pytest.raises(PlanError) as e:
            curves_from_benches([(str(d), load_bench(d, "--measured")) for d in order])
        errs.append(str(e.value))
    assert errs[0] == errs[1] and "\n" not in errs[0]
    assert "fc-v1098" in errs[0] and "fc-v857" in errs[0] and "give benches from one machine" in errs[0]


def test_planner_by_budget_does_not_depend_on_the_order_of_benches_of_one_machine():
    # a: grow on 3 seeds; b: the same grow at the same budget on 1 seed (a's is kept: more seeds); c: grow with
    # another schedule (its own curve, named by its folder), at 0.2 and 0.25 of 10 epochs: both train 2 epochs,
    # two points, not pooled into one of twice the seeds
    a = _bench([_run("scratch", 1.0, 0.88, 100)] + [_run("grow", 0.5, 0.875, 50, recipe=GROW, seed=s)
                                                   for s in (0, 1, 2)])
    b = _bench([_run("grow", 0.5, 0.95, 40, recipe=GROW)])
    c = _bench([_run("grow", 0.2, 0.80, 20, recipe=GROW, shape="wsd"),
                _run("grow", 0.25, 0.84, 22, recipe=GROW, shape="wsd")])
    given = [("a", a), ("b", b), ("c", c)]
    one, two = curves_from_benches(given), curves_from_benches(given[::-1])
    assert sorted((c.label, c.schedule, c.points) for c in one) == sorted((c.label, c.schedule, c.points) for c in two)
    by = {c.label: c for c in one}
    assert set(by) == {"scratch", "grow [a]", "grow [c]"} and by["grow [c]"].schedule.startswith("wsd")
    assert by["grow [a]"].points == [(51, 5, 0.875)]
    assert by["grow [c]"].points == [(21, 2, 0.80), (23, 2, 0.84)]
    for budget, want in ((22, "grow [c]"), (60, "grow [a]"), (101, "scratch")):
        p1, q1, _ = choose_by_budget(one, budget)
        p2, q2, _ = choose_by_budget(two, budget)
        assert p1.label == p2.label == want and q1 == q2


def test_planner_picks_scratch_with_its_best_schedule_where_it_leads():
    runs = [_run("scratch", b, a, 10 * b * 10) for b, a in ((0.2, 0.70), (0.5, 0.84), (1.0, 0.88))]
    runs += [_run("scratch-wsd", b, a, 10 * b * 10, base="scratch", shape="wsd")
             for b, a in ((0.2, 0.68), (0.5, 0.84), (1.0, 0.893))]
    runs += [_run("grow", b, a, 10 * b * 10, recipe=GROW) for b, a in ((0.2, 0.86), (0.5, 0.87), (1.0, 0.885))]
    runs += [_run("grow-wsd", b, a, 10 * b * 10, recipe=GROW, shape="wsd")
             for b, a in ((0.2, 0.84), (0.5, 0.872), (1.0, 0.891))]
    benches = [("b", _bench(runs))]
    fams, curves = frontier(benches), curves_from_benches(benches)
    for budget, want in ((25, ("grow", 2)), (60, ("grow-wsd", 5)), (101, ("scratch-wsd", 10))):
        label, epochs, expect = _agrees(fams, curves, budget)
        assert (label, epochs) == want and label == expect
    pick, point, why = choose_by_budget(curves, 101)
    assert pick.scratch and pick.recipe == "scratch" and pick.schedule.startswith("wsd") and point[2] == 0.893
    assert "the most accurate of 4" in why
    with pytest.raises(PlanError, match="no measured recipe fits 5 s; the cheapest measured is .* at 21 s"):
        choose_by_budget(curves, 5)
    with pytest.raises(PlanError, match="2 different pairs"):
        curves_from_benches([("a", _bench(runs)), ("b", _bench(runs, model="resnet32"))])


def test_plan_measured_cli(tmp_path, capsys):
    runs = [_run("scratch", 1.0, 0.88, 100), _run("grow", 0.2, 0.86, 20, recipe=GROW),
            _run("grow", 1.0, 0.885, 100, recipe=GROW)]
    d = tmp_path / "bench"
    d.mkdir()
    (d / "bench.json").write_text(json.dumps(_bench(runs)))
    out = tmp_path / "plan"
    assert main(["plan", "--time-budget", "50", "--measured", str(d), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "choice: grow (recipe grow, cosine, peak 0.05) at 2 epochs" in printed
    assert "pipeline seconds on their machine (host-a, cpu, 2 threads, torch 2)" in printed
    assert json.loads((out / "plan.json").read_text())["choice"]["epochs"] == 2
    assert main(["plan", "--measured", str(d)]) == 2  # no budget: one line, nothing trains
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--time-budget" in err
    assert main(["plan", "--time-budget", "5", "--measured", str(d)]) == 2
    assert "no measured recipe fits 5 s" in capsys.readouterr().err
    assert main(["plan", "--time-budget", "50", "--measured", str(d), "--out", ""]) == 2  # as plan, run, bench
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out is empty" in err
    # a bench of another machine beside it: one line naming both machines and the fix, nothing written
    e = tmp_path / "other"
    e.mkdir()
    (e / "bench.json").write_text(json.dumps(_bench(runs, platform="host-b")))
    out2 = tmp_path / "plan2"
    assert main(["plan", "--time-budget", "50", "--measured", str(d), str(e), "--out", str(out2)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "host-a" in err and "host-b" in err and "give benches from one machine" in err
    assert not out2.exists()
