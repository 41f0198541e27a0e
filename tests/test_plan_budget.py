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
SCRATCH = {"init": "random", "stage1": "none", "guidance": "ce"}
GROW = {"init": "grow", "stage1": "none", "guidance": "ce"}


def _run(arm, budget, acc, sec, recipe=SCRATCH, base=None, shape="cosine", seed=0, model="resnet20"):
    return {"arm": arm, "base_arm": base or arm, "recipe": recipe, "seed": seed, "budget": budget,
            "epochs": round(10 * budget), "val_acc": [acc], "test_acc": [acc], "train_acc": acc,
            "target_seconds": sec, "pipeline_seconds": sec + 1, "lr": 0.05, "ema": 0.0,
            "schedule": {"lr": 0.05, "shape": shape, "warmup_epochs": 0.0,
                         "decay_fraction": 0.5 if shape == "wsd" else None}}


def _bench(runs, model="resnet20"):
    return {"runs": runs, "full_epochs": 10, "budgets": sorted({r["budget"] for r in runs}),
            "arms": list(dict.fromkeys(r["arm"] for r in runs)), "summary": {}, "protocol": {"arms_train_images": 800},
            "config": {"teacher": {"checkpoint": "builtin:t"}, "rungs": [{"model": model}], "bench": {}}}


def _agrees(fams, curves, budget):
    """The planner's pick at ``budget`` is the frontier's at the epochs it picks: the best transfer recipe, or the
    best scratch where scratch leads there."""
    pick, point, _ = choose_by_budget(curves, budget)
    row = next(r for r in fams[0]["rows"] if r["epochs"] == point[1])
    expect = row["scratch"] if row["margin"] is not None and row["margin"] < 0 else row["best"]
    return pick.label, point[1], expect


def test_planner_by_budget_agrees_with_the_recorded_frontier_on_the_realistic_preset():
    dirs = [ROOT / "docs/results/realistic", ROOT / "docs/results/growth-schedules"]
    benches = [(str(d), load_bench(d, "--measured")) for d in dirs]
    fams, curves = frontier(benches), curves_from_benches(benches)
    assert any(c.scratch for c in curves)  # scratch is a candidate
    full = max(p[0] for c in curves for p in c.points)
    picked = []
    for budget in (25.0, 60.0, full):  # a short, a middle and the full budget, in the benches' seconds
        label, epochs, expect = _agrees(fams, curves, budget)
        assert label == expect, (budget, epochs)
        picked.append(epochs)
    assert picked[0] < picked[1] < picked[2] == 10


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
    assert "choice: grow (recipe grow, cosine, peak 0.05) at 2 epochs" in capsys.readouterr().out
    assert json.loads((out / "plan.json").read_text())["choice"]["epochs"] == 2
    assert main(["plan", "--measured", str(d)]) == 2  # no budget: one line, nothing trains
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--time-budget" in err
    assert main(["plan", "--time-budget", "5", "--measured", str(d)]) == 2
    assert "no measured recipe fits 5 s" in capsys.readouterr().err
