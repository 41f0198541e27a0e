"""The planner's chain generation and decision logic, on given measurements."""

import pytest
import torch

from fspladder.models import CifarResNet
from fspladder.plan import Candidate, PlanError, candidate_chains, select


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


def test_the_planner_keeps_its_planning_budget(idx_folder, monkeypatch):
    """Issue 17.7: a probe starts only when its predicted seconds fit the budget left; with a clock that advances
    exactly as predicted, planning ends within the budget. Issue 35: the prediction is the whole-run estimate's
    (chain_phases over the candidate's chain plan) and the probe runs through the chain executor."""
    import math
    from types import SimpleNamespace

    import fspladder.plan.measure as measure
    import fspladder.rung as rung
    from fspladder import create_model, load_config, save_checkpoint
    from fspladder.estimate import Phase
    from fspladder.plan import run_plan
    from fspladder.session import load_data

    clock = _Clock()

    def cost(task, n_train: int) -> float:  # 0.1 s per step of the task's stages on n_train images
        s1 = math.ceil(task.s1.epochs * (n_train // task.s1.batch_size)) if task.recipe.has_stage1 else 0
        return 0.1 * (s1 + sum(r.cfg.epochs * (n_train // r.cfg.batch_size) for r in task.stage2))

    def fake_phases(prof, chain, tasks, shapes, n_train, n_val, n_test, **kw):
        return [Phase(t.name, 2, 1, 1, cost(t, n_train), 0.1) for t in tasks]

    trained = []

    def fake_train(teacher, tasks, ctx, shapes, *args, **kw):
        out = []
        for task in tasks:
            trained.append(task.stage2[0].name)
            clock.now += cost(task, len(ctx.data.train))
            out.append(SimpleNamespace(stage2=[SimpleNamespace(val_acc=[0.5 + 0.01 * len(task.stage2[0].name)])]))
        return out

    monkeypatch.setattr(measure, "chain_phases", fake_phases)
    monkeypatch.setattr(measure, "train_chain", fake_train)
    torch_teacher = create_model("resnet8", in_chans=1, num_classes=4)
    save_checkpoint(idx_folder / "t.pt", torch_teacher,
                    {"name": "resnet8", "kwargs": {"in_chans": 1, "num_classes": 4}})
    cfg = load_config(None, ["data.name=idx", f"data.root={idx_folder}", "data.val_size=100", "stage2.batch_size=50",
                             "stage1.batch_size=50", "plan.probe_train_images=500", "plan.planning_budget=5",
                             "plan.recipes=[patent, grow]", f"teacher.checkpoint={idx_folder / 't.pt'}"])
    data = load_data(cfg)
    teacher, ck = rung.load_teacher(cfg)
    plan = run_plan(cfg, data, torch.device("cpu"), teacher, teacher_meta=ck, clock=clock)
    assert clock.now <= cfg.plan.planning_budget and plan["planning_seconds"] == clock.now
    assert trained and all(name.startswith("probe/") for name in trained)  # the probes' tasks, named as logged
    probed = [c for c in plan["candidates"] if c["probe_val_acc"] is not None]
    skipped = [c for c in plan["candidates"] if "would overrun the planning budget" in c["note"]]
    assert probed and skipped and len(probed) + len(skipped) == len(plan["candidates"])
    # With a budget that fits everything, every candidate is probed, patent and grow alike.
    clock.now = 0.0
    cfg.plan.planning_budget = 1000
    plan = run_plan(cfg, data, torch.device("cpu"), teacher, teacher_meta=ck, clock=clock)
    assert {c["recipe"] for c in plan["candidates"] if c["probe_val_acc"] is not None} == {"patent", "grow"}
    assert plan["choice"]["recipe"] in ("patent", "grow") and "recipe" in plan["choice"]["reason"]


def test_auto_refuses_a_folder_that_holds_a_run_before_it_plans(idx_folder, tmp_path, monkeypatch):
    """Issue 35: planning moved above the runner (plan/auto.py); a folder that already holds a run is still refused
    at once, in one line, before minutes of planning, and nothing in it changes."""
    import fspladder.plan.auto as auto
    from fspladder import load_config, plan_and_run, run_ladder
    from fspladder.config import ConfigError
    from fspladder.outputs import ResumeError

    def no_planning(*args, **kwargs):
        raise AssertionError("planned before refusing the folder")

    monkeypatch.setattr(auto, "run_plan", no_planning)
    out = tmp_path / "taken"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    cfg = load_config(None, ["data.name=idx", f"data.root={idx_folder}", "data.val_size=100",
                             "plan.intermediates=auto"])
    with pytest.raises(ResumeError, match="already holds a run"):
        plan_and_run(cfg, out)
    assert (out / "summary.json").read_text() == "{}" and sorted(p.name for p in out.iterdir()) == ["summary.json"]
    # the runner itself never plans: it names the function that does
    with pytest.raises(ConfigError, match="plan_and_run"):
        run_ladder(cfg, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize("key", ["stage2.decay_fraction=0.3", "stage2.growth_noise=0.2"])
def test_auto_plans_only_recipes_that_read_the_stage2_keys_set(idx_folder, monkeypatch, capsys, key):
    """What `check` accepts, `run` must not refuse later: with plan.intermediates auto the planner's recipe runs,
    so a stage-2 key only some recipes read (decay_fraction: wsd, the plain recipes'; growth_noise: growth) makes
    the others' candidates skipped, with the reason in the plan; check refuses only when no recipe is left."""
    from types import SimpleNamespace

    import fspladder.plan.measure as measure
    import fspladder.rung as rung
    from fspladder import create_model, load_config, save_checkpoint
    from fspladder.cli import main
    from fspladder.estimate import Phase
    from fspladder.plan import run_plan
    from fspladder.plan.auto import planned_config
    from fspladder.session import load_data

    monkeypatch.setattr(measure, "chain_phases", lambda prof, chain, tasks, *a, **kw: [
        Phase(t.name, 2, 1, 1, 1.0, 0.1) for t in tasks])
    monkeypatch.setattr(measure, "train_chain", lambda teacher, tasks, *a, **kw: [
        SimpleNamespace(stage2=[SimpleNamespace(val_acc=[0.9 if t.recipe.stage1 == "fsp" else 0.5])]) for t in tasks])
    save_checkpoint(idx_folder / "t.pt", create_model("resnet8", in_chans=1, num_classes=4),
                    {"name": "resnet8", "kwargs": {"in_chans": 1, "num_classes": 4}})
    sets = ["data.name=idx", f"data.root={idx_folder}", "data.val_size=100", "stage2.batch_size=50",
            "stage1.batch_size=50", "plan.probe_train_images=500", "plan.intermediates=auto", "recipe=grow", key,
            f"teacher.checkpoint={idx_folder / 't.pt'}"]
    cfg = load_config(None, [*sets, "plan.recipes=[patent, grow]"])
    teacher, ck = rung.load_teacher(cfg)
    plan = run_plan(cfg, load_data(cfg), torch.device("cpu"), teacher, teacher_meta=ck)
    patent = [c for c in plan["candidates"] if c["recipe"] == "patent"]
    assert patent and all(c["probe_val_acc"] is None and c["note"].startswith(f"skipped: {key.split('=')[0]}")
                          for c in patent), patent
    # the patent's probe would have won (0.9 against 0.5): the choice is the recipe that can take the key
    assert plan["choice"]["recipe"] == "grow"
    assert planned_config(cfg, plan["choice"]).recipe_key_problems() == []  # what the run checks: no refusal
    # check accepts it and says which candidates the planner will skip
    assert main(["check", *(a for s in [*sets, "plan.recipes=[patent, grow]"] for a in ("--set", s))]) == 0
    assert "the candidates of recipe patent will be skipped" in capsys.readouterr().out
    # no recipe left: check refuses in one line naming the fix, and the planner refuses before measuring
    assert main(["check", *(a for s in [*sets, "plan.recipes=[patent, w2s]"] for a in ("--set", s))]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  - ")]  # the problems list
    assert len(err) == 1 and "no recipe of plan.recipes (patent, w2s)" in err[0] and "to plan.recipes" in err[0]
    with pytest.raises(measure.PlanError, match="no recipe of plan.recipes"):
        run_plan(load_config(None, [*sets, "plan.recipes=[patent, w2s]"]), load_data(cfg), torch.device("cpu"),
                 teacher, teacher_meta=ck)


def test_a_key_the_planner_cannot_take_is_named_at_the_users_rung():
    # a planned chain holds the user's target only; the line names it where the user set it (rungs[1] here)
    from fspladder import load_config

    cfg = load_config(None, ["plan.intermediates=auto", "plan.recipes=[patent, grow]", "recipe=grow",
                             "rungs=[{name: mid, model: resnet14}, {name: target, model: resnet20, "
                             "stage2: {decay_fraction: 0.3}}]"])
    found = cfg.planned_key_problems()
    assert found["grow"] == [] and len(found["patent"]) == 1, found
    assert found["patent"][0].startswith("rungs[1].stage2.decay_fraction is set"), found
