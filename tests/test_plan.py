"""The planner's chain generation and decision logic, on given measurements."""

import pytest
import torch

from fspladder.models import CifarResNet
from fspladder.plan import Candidate, PlanError, candidate_chains, predict_seconds, select


def _params(d, w):
    return sum(p.numel() for p in CifarResNet(d, w).parameters())


@pytest.mark.parametrize("teacher,target,k", [((8, 1), (20, 1), 3), ((8, 1), (56, 1), 3), ((20, 1), (20, 4), 2),
                                              ((8, 1), (32, 2), 2), ((14, 1), (20, 1), 2)])
def test_every_candidate_chain_strictly_grows(teacher, target, k):
    chains = candidate_chains(teacher, target, k)
    assert chains and chains[0].intermediates == []  # direct transfer is always a candidate
    for c in chains:
        sizes = [_params(*teacher)] + [_params(d, w) for d, w in c.intermediates] + [_params(*target)]
        assert sizes == c.params and all(a < b for a, b in zip(sizes, sizes[1:])), c.name
        assert len(c.intermediates) <= k
    assert len({tuple(c.intermediates) for c in chains}) == len(chains)


def test_depth_candidates_are_evenly_spaced():
    chains = candidate_chains((8, 1), (56, 1), 3)
    assert [c.intermediates for c in chains] == [[], [(32, 1)], [(26, 1), (38, 1)], [(20, 1), (32, 1), (44, 1)]]
    assert [c.intermediates for c in candidate_chains((8, 1), (20, 1), 3)] == [[], [(14, 1)]]


def test_predict_seconds_sums_steps_and_evaluation():
    costs = [{"s1": 0.1, "s2": 0.2, "eval": 0.001}, {"s1": 0.3, "s2": 0.4, "eval": 0.002}]
    # rung 1: 0.5*10 s1 steps + 2*10 s2 steps + 2 evals of 100 images
    expected = (5 * 0.1 + 20 * 0.2 + 2 * 100 * 0.001) + (10 * 0.3 + 30 * 0.4 + 3 * 100 * 0.002)
    assert predict_seconds(costs, [0.5, 1.0], [2, 3], 10, 100) == pytest.approx(expected)


def _cands():
    a = Candidate([], predicted_seconds=100.0, probe_acc=0.80)
    b = Candidate([(14, 1)], predicted_seconds=150.0, probe_acc=0.85)
    c = Candidate([(14, 1), (20, 1)], predicted_seconds=200.0, probe_acc=0.84)
    return a, b, c


def test_select_by_time_budget_takes_the_best_accuracy_that_fits():
    a, b, c = _cands()
    assert select([a, b, c], 160, None)[0] is b
    assert select([a, b, c], 120, None)[0] is a


def test_probe_differences_within_the_measured_noise_count_as_equal_and_the_cheaper_chain_wins():
    a, b, c = _cands()  # b beats a by 0.05 and c by 0.01
    assert select([a, b, c], None, None, tolerance=0.0)[0] is b
    assert select([a, b, c], None, None, tolerance=0.005)[0] is b
    pick, why = select([a, b, c], None, None, tolerance=0.06)
    assert pick is a and "seed-to-seed difference (0.0600)" in why and "T -> 14 -> target" in why
    assert select([a, b, c], 250, None, tolerance=0.02)[0] is b  # c is dearer than b: b stays
    assert select([a, b, c], 250, None, tolerance=0.06)[0] is a


def test_select_by_accuracy_takes_the_cheapest_that_reaches_it():
    a, b, c = _cands()
    assert select([a, b, c], None, 0.84)[0] is b
    assert select([a, b, c], None, 0.79)[0] is a


def test_select_with_both_and_refusals_say_what_would_work():
    a, b, c = _cands()
    assert select([a, b, c], 250, 0.84)[0] is b
    with pytest.raises(PlanError,
                       match=r"no chain reaches 0.8400 within 120 s; .*T -> 14 -> target reaches it in 150 s"):
        select([a, b, c], 120, 0.84)
    with pytest.raises(PlanError, match=r"no chain fits 50 s; the cheapest, T -> target \(direct\), needs 100 s"):
        select([a, b, c], 50, None)
    with pytest.raises(PlanError,
                       match=r"no chain's probe reaches 0.9000; the best, T -> 14 -> target, reached 0.8500"):
        select([a, b, c], None, 0.9)
    with pytest.raises(PlanError, match="no candidate chain was probed"):
        select([Candidate([], predicted_seconds=1.0)], None, None)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_planner_measures_each_network_once_and_keeps_its_planning_budget(idx_folder, monkeypatch):
    """Issue 17.7: every step cost measured once per network (so one ResNet-20 cannot get two different
    costs), and a probe starts only when its estimate from those costs fits the budget left; with a clock
    that advances exactly as estimated, planning ends within the budget."""
    from types import SimpleNamespace

    import fspladder.plan.measure as measure
    import fspladder.rung as rung
    from fspladder import create_model, load_config, save_checkpoint
    from fspladder.plan import run_plan
    from fspladder.session import load_data

    monkeypatch.setattr(measure, "_time", lambda fn, repeats, warmup=2: 0.1)  # every step: 0.1 s, none run
    clock = _Clock()

    def fake_stage1(prev, cur, recipe, s1, ctx, *, seed, name, aligner=None, **kw):
        clock.now += -(-s1.epochs * len(ctx.data.train) // s1.batch_size) * 0.1
        return None

    def fake_stage2(prev, cur, recipe, s1, s2, ctx, *, seed, name, **kw):
        clock.now += (s2.epochs * (len(ctx.data.train) // s2.batch_size) * 0.1
                      + s2.epochs * len(ctx.data.val) * 0.1 / 100)
        return SimpleNamespace(val_acc=[0.5 + 0.01 * len(name)])

    monkeypatch.setattr(rung, "stage1_of_rung", fake_stage1)
    monkeypatch.setattr(rung, "stage2_of_rung", fake_stage2)
    torch_teacher = create_model("resnet8", in_chans=1, num_classes=4)
    save_checkpoint(idx_folder / "t.pt", torch_teacher,
                    {"name": "resnet8", "kwargs": {"in_chans": 1, "num_classes": 4}})
    cfg = load_config(None, ["data.name=idx", f"data.root={idx_folder}", "data.val_size=100", "stage2.batch_size=50",
                             "stage1.batch_size=50", "plan.probe_train_images=500", "plan.planning_budget=10",
                             "plan.recipes=[patent, grow]", f"teacher.checkpoint={idx_folder / 't.pt'}"])
    data = load_data(cfg)
    teacher, ck = rung.load_teacher(cfg)
    plan = run_plan(cfg, data, torch.device("cpu"), teacher, teacher_meta=ck, clock=clock)
    nets = plan["step_costs"]["networks"]
    assert len(nets) == 3  # resnet8, the intermediate resnet14, resnet20: each measured once for all chains
    assert clock.now <= cfg.plan.planning_budget and plan["planning_seconds"] == clock.now
    probed = [c for c in plan["candidates"] if c["probe_val_acc"] is not None]
    skipped = [c for c in plan["candidates"] if "would overrun the planning budget" in c["note"]]
    assert probed and skipped and len(probed) + len(skipped) == len(plan["candidates"])
    # With a budget that fits everything, every candidate is probed, patent and grow alike.
    clock.now = 0.0
    cfg.plan.planning_budget = 1000
    plan = run_plan(cfg, data, torch.device("cpu"), teacher, teacher_meta=ck, clock=clock)
    assert {c["recipe"] for c in plan["candidates"] if c["probe_val_acc"] is not None} == {"patent", "grow"}
    assert plan["choice"]["recipe"] in ("patent", "grow") and "recipe" in plan["choice"]["reason"]
