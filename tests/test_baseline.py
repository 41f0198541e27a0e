"""Scratch at its best (issue 32): the best scratch as the threshold, times read at the budgets run, the fairness
warning of the bench's arms, re-summarising finished benches and the frontier, all on synthetic records."""

import json
from dataclasses import replace

import pytest

from fspladder.arms import Arm, baseline_warnings, fair_baseline, recorded_levers
from fspladder.bench.results import format_frontier, frontier
from fspladder.bench.summary import baseline_line, format_bench_md, summarize
from fspladder.cli import main
from fspladder.config import load_config, variant_config
from fspladder.recipes import PRESETS

SCRATCH = {"init": "random", "stage1": "none", "guidance": "ce"}
GROW = {"init": "grow", "stage1": "none", "guidance": "ce"}


def _run(arm, budget, acc, sec, seed=0, base=None, recipe=SCRATCH, shape="cosine", decay=None, ema=0.0, full=10):
    return {"arm": arm, "base_arm": base or arm, "recipe": recipe, "seed": seed, "budget": budget,
            "epochs": round(full * budget), "val_acc": [acc], "test_acc": [acc - 0.01], "train_acc": acc + 0.02,
            "target_seconds": sec, "pipeline_seconds": sec + 5, "lr": 0.05, "ema": ema,
            "schedule": {"lr": 0.05, "min_lr": 0.0, "shape": shape, "warmup_epochs": 0.0, "decay_fraction": decay}}


def _runs():
    """scratch (cosine) 0.88 at 10 epochs; scratch-wsd 0.89; a variant of arm scratch with soft targets 0.95 (not
    scratch: it learns from the teacher); grow-wsd passes 0.89 only at 8 epochs; grow-ema has a lever no scratch
    had."""
    rs = []
    for seed in (0, 100):
        rs += [_run("scratch", 0.5, 0.84, 50, seed), _run("scratch", 1.0, 0.88, 100, seed)]
        rs += [_run("scratch-wsd", 1.0, 0.89 + (0.001 if seed else 0.0), 100, seed, base="scratch", shape="wsd",
                    decay=0.5)]
        rs += [_run("scratch-soft", 1.0, 0.95, 100, seed, base="scratch", recipe={**SCRATCH, "guidance": "kd"})]
        rs += [_run("grow-wsd", b, a, 100 * b, seed, base="grow", recipe=GROW, shape="wsd", decay=0.5)
               for b, a in ((0.2, 0.86), (0.5, 0.87), (0.8, 0.895), (1.0, 0.90))]
        rs += [_run("grow-ema", b, a, 100 * b, seed, base="grow", recipe=GROW, ema=0.99)
               for b, a in ((0.2, 0.87), (1.0, 0.885))]
    return rs


ARMS = ["scratch", "scratch-wsd", "scratch-soft", "grow-wsd", "grow-ema"]
BUDGETS = [0.2, 0.5, 0.8, 1.0]


def test_threshold_is_the_best_scratch_arm_or_variant_and_times_are_read_at_measured_budgets():
    s = summarize(_runs(), ARMS, BUDGETS, teacher_val_acc=0.85)
    b = s["baseline"]
    assert b["arm"] == "scratch-wsd" and b["val_acc"] == pytest.approx(0.8905) and b["n"] == 2
    assert b["schedule"] == "wsd (decay 0.5), peak 0.05"
    assert set(b["compared"]) == {"scratch", "scratch-wsd"}  # the soft-target variant is not scratch
    assert s["thresholds"]["scratch"] == pytest.approx(0.8905) and "scratch-wsd" in s["threshold_from"]["scratch"]
    assert b["unmatched"] == {"grow-ema": "cosine, peak 0.05, ema 0.99"}  # grow-wsd's schedule scratch had too
    assert s["scratch_above_teacher"] == pytest.approx(0.0405)
    t = s["arms"]["grow-wsd"]["time_to_target"]["scratch"]["target_seconds"]
    # 0.87 at 50 s, 0.895 at 80 s: the least measured budget is 0.8 (80 s), 0.80x of scratch-wsd's 100 s;
    # interpolated ~ 50 + 30 * (0.8905 - 0.87) / 0.025 = 74.6 s, beside it
    assert (t["seconds"], t["budget"], t["how"]) == (80, 0.8, "measured")
    assert t["ratio_to_scratch_full"] == pytest.approx(0.80)
    assert t["interpolated"]["seconds"] == pytest.approx(74.6) and t["interpolated"]["how"] == "interpolated"
    assert s["ratio_base"]["arm"] == "scratch-wsd"
    # the teacher's 0.85: reached at grow-wsd's least budget run, so at most its seconds, nothing to interpolate
    tt = s["arms"]["grow-wsd"]["time_to_target"]["teacher"]["target_seconds"]
    assert tt["how"] == "at_most" and tt["seconds"] == 20 and "interpolated" not in tt
    assert s["arms"]["grow-ema"]["time_to_target"]["scratch"]["target_seconds"]["how"] == "not reached"
    # the scratch arm reaches the best scratch nowhere: cosine is not scratch at its best here
    assert s["arms"]["scratch"]["time_to_target"]["scratch"]["target_seconds"]["how"] == "not reached"


def test_bench_md_names_the_baseline_and_labels_interpolated_figures():
    runs = _runs()
    bench = {"machine": {"platform": "test", "torch": "x", "cpu_threads": 1}, "budgets": BUDGETS, "full_epochs": 10,
             "runs": runs, "seconds": 1.0, "arms": ARMS, "config": {"bench": {"variants": {}}},
             "summary": summarize(runs, ARMS, BUDGETS)}
    md = format_bench_md(bench)
    assert "Baseline (the scratch threshold): **scratch-wsd** (wsd (decay 0.5), peak 0.05)" in md
    assert "Not scratch at its best" in md and "grow-ema: cosine, peak 0.05, ema 0.99" in md
    assert "Time to the **scratch** threshold (0.8905, scratch-wsd at the full budget; ratios to scratch-wsd" in md
    assert "(the baseline: scratch-wsd, wsd (decay 0.5), peak 0.05)" in md
    assert "| grow-wsd | 85 s (0.81×) @0.8; interpolated ~80 s (0.76×) |" in md  # pipeline clock: +5 s a run
    assert "| grow-wsd | wsd (decay 0.5), peak 0.05 |" in md
    # one scratch: the baseline says it had one schedule only
    one = [r for r in runs if r["arm"] in ("scratch", "grow-wsd")]
    bench.update(runs=one, arms=["scratch", "grow-wsd"], summary=summarize(one, ["scratch", "grow-wsd"], BUDGETS))
    md = format_bench_md(bench)
    assert "scratch had this one schedule only." in md and "grow-wsd: wsd (decay 0.5), peak 0.05" in md
    assert "Fewer seeds" not in baseline_line(summarize(runs, ARMS, BUDGETS))  # both scratch arms: 2 seeds


def test_baseline_line_says_when_the_threshold_has_fewer_seeds_than_another_scratch():
    # scratch-wsd, one seed, sets the threshold over scratch's three: its mean spreads wider, so say so
    runs = [_run("scratch", 1.0, 0.88, 100, seed) for seed in (0, 100, 200)]
    runs += [_run("scratch-wsd", 1.0, 0.90, 100, 0, base="scratch", shape="wsd", decay=0.5)]
    s = summarize(runs, ["scratch", "scratch-wsd"], [1.0])
    assert s["baseline"]["arm"] == "scratch-wsd" and s["baseline"]["compared"]["scratch"]["n"] == 3
    line = baseline_line(s)
    assert "**Fewer seeds than the other scratch**: the threshold is scratch-wsd's mean of 1 seed(s), against " \
           "scratch's 3" in line
    # an older bench.json without seed counts per scratch arm is read as before
    for c in s["baseline"]["compared"].values():
        del c["n"]
    assert "Fewer seeds" not in baseline_line(s)


def _bench(runs, arms, budgets, full=10, teacher="builtin:t8k", model="resnet20", kwargs=None):
    cfg = {"teacher": {"checkpoint": teacher}, "rungs": [{"name": "target", "model": model, "kwargs": kwargs or {}}],
           "data": {"train_subset": 8000}, "bench": {"variants": {}, "target_accuracy": None}}
    return {"machine": {"platform": "test", "torch": "x", "cpu_threads": 1}, "budgets": budgets, "full_epochs": full,
            "runs": runs, "seconds": 1.0, "arms": arms, "config": cfg, "teacher": {"val_acc": 0.85},
            "summary": {"thresholds": {}}}


def test_frontier_merges_benches_of_one_family_by_epochs_and_finds_where_scratch_wins():
    a = _bench([_run("scratch", 0.25, 0.76, 25), _run("scratch", 1.0, 0.88, 100),
                _run("grow", 0.25, 0.86, 25, recipe=GROW), _run("grow", 1.0, 0.885, 100, recipe=GROW)],
               ["scratch", "grow"], [0.25, 1.0])
    b = _bench([_run("grow", 0.2, 0.10, 20, recipe=GROW),  # same cell as a's grow at 2 epochs: a's is kept
                _run("scratch-wsd", 1.0, 0.892, 100, base="scratch", shape="wsd", decay=0.5),
                _run("grow-wsd", 0.2, 0.80, 20, recipe=GROW, shape="wsd", decay=0.5),  # 2 epochs too: merged
                _run("grow-wsd", 0.5, 0.875, 50, recipe=GROW, shape="wsd", decay=0.5),
                _run("grow-wsd", 1.0, 0.890, 100, recipe=GROW, shape="wsd", decay=0.5)],
               ["grow", "scratch-wsd", "grow-wsd"], [0.2, 0.5, 1.0])
    other = _bench([_run("scratch", 1.0, 0.80, 10), _run("grow", 1.0, 0.85, 10, recipe=GROW)], ["scratch", "grow"],
                   [1.0], kwargs={"width": 2})
    fams = frontier([("a", a), ("b", b), ("wide", other)])
    assert [f["sources"] for f in fams] == [["a", "b"], ["wide"]]
    rows = {r["epochs"]: r for r in fams[0]["rows"]}
    assert rows[2]["best"] == "grow" and rows[2]["val_acc"] == pytest.approx(0.86) and rows[2]["source"] == "a"
    assert rows[2]["budgets"] == [0.2, 0.25] and rows[2]["margin"] == pytest.approx(0.10)
    assert rows[5]["best"] == "grow-wsd" and rows[5]["scratch"] is None and rows[5]["margin"] is None
    # at 10 epochs the best transfer (grow-wsd 0.890) is below the best scratch (scratch-wsd 0.892)
    assert rows[10]["best"] == "grow-wsd" and rows[10]["scratch"] == "scratch-wsd"
    assert rows[10]["margin"] == pytest.approx(-0.002) and rows[10]["scratch_schedule"].startswith("wsd")
    assert fams[0]["scratch_leads_at"] == [10] and fams[0]["scratch_unknown_above"] is None
    assert fams[1]["scratch_leads_at"] == [] and fams[1]["scratch_unknown_above"] is None
    assert fams[0]["scratch_schedules"] == ["cosine, peak 0.05", "wsd (decay 0.5), peak 0.05"]
    md = format_frontier(fams)
    assert "scratch leads at: 10 epochs (of 10))" in md
    assert "scratch leads at: none of the budgets where both ran)" in md
    assert "| 10 (1) | grow-wsd (wsd (decay 0.5), peak 0.05) | 0.8900 (1) | scratch-wsd" in md and "-0.20 pts" in md


def test_frontier_lists_each_budget_where_scratch_leads_and_says_what_is_unknown():
    # scratch leads at 2 epochs only; grow leads at 5; at 10 no scratch ran: nothing is known of scratch there
    runs = [_run("scratch", 0.2, 0.87, 20), _run("scratch", 0.5, 0.85, 50),
            _run("grow", 0.2, 0.86, 20, recipe=GROW), _run("grow", 0.5, 0.86, 50, recipe=GROW),
            _run("grow", 1.0, 0.88, 100, recipe=GROW)]
    fams = frontier([("a", _bench(runs, ["scratch", "grow"], [0.2, 0.5, 1.0]))])
    assert fams[0]["scratch_leads_at"] == [2] and fams[0]["scratch_unknown_above"] == 5
    assert "scratch leads at: 2 epochs (of 10); unknown above 5 epochs (no scratch run there))" in format_frontier(fams)
    fams = frontier([("a", _bench([r for r in runs if r["arm"] == "grow"], ["grow"], [0.2, 0.5, 1.0]))])
    assert fams[0]["scratch_unknown_above"] == 0
    assert "scratch leads at: unknown: no scratch run)" in format_frontier(fams)


def test_frontier_keeps_one_arm_name_with_two_schedules_from_two_benches():
    # scratch was cosine by default before issue 32 and is wsd after: an older bench given first does not hide
    # the newer bench's scratch, and the best of the two is the baseline
    old = _bench([_run("scratch", 1.0, 0.880, 100), _run("grow", 1.0, 0.885, 100, recipe=GROW)],
                 ["scratch", "grow"], [1.0])
    new = _bench([_run("scratch", 1.0, 0.890, 100, shape="wsd", decay=0.5)], ["scratch"], [1.0])
    (row,) = frontier([("old", old), ("new", new)])[0]["rows"]
    assert row["scratch"] == "scratch" and row["scratch_val_acc"] == pytest.approx(0.890)
    assert row["scratch_schedule"].startswith("wsd") and row["margin"] == pytest.approx(-0.005)


def test_frontier_never_pools_two_budgets_of_one_bench_that_round_to_the_same_epochs():
    # 0.2 and 0.25 of 10 epochs both train 2 epochs: two cells of 2 seeds each, not one of 4; the least budget is kept
    runs = [_run("grow", b, a, 20, seed=s, recipe=GROW) for b, a in ((0.2, 0.86), (0.25, 0.80)) for s in (0, 100)]
    runs += [_run("scratch", 0.25, 0.76, 25, seed=s) for s in (0, 100)]
    fams = frontier([("a", _bench(runs, ["scratch", "grow"], [0.2, 0.25]))])
    (row,) = fams[0]["rows"]
    assert row["epochs"] == 2 and row["n"] == 2 and row["val_acc"] == pytest.approx(0.86)
    assert row["budgets"] == [0.2, 0.25] and row["scratch_n"] == 2


def test_resummarize_and_frontier_cli(tmp_path, capsys):
    runs = _runs()
    bench = _bench(runs, ARMS, BUDGETS)
    d = tmp_path / "b"
    d.mkdir()
    (d / "bench.json").write_text(json.dumps(bench))
    assert main(["bench", "--resummarize", str(d)]) == 0
    out = json.loads((d / "bench.json").read_text())
    assert out["runs"] == runs and out["summary"]["baseline"]["arm"] == "scratch-wsd"
    assert "**scratch-wsd**" in (d / "bench.md").read_text()
    assert main(["bench", "--frontier", str(d)]) == 0
    assert "| 10 (1) | scratch-soft (cosine, peak 0.05) | 0.9500 (2) | scratch-wsd" in capsys.readouterr().out
    # a directory without a finished bench, or a training option beside them: one line, exit 2, nothing written
    assert main(["bench", "--frontier", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no bench.json there" in err
    before = (d / "bench.json").read_text()
    assert main(["bench", "--resummarize", str(d), "--seeds", "2"]) == 2
    assert "train nothing" in capsys.readouterr().err and (d / "bench.json").read_text() == before


def _arm(cfg, label, base, sets=None, recipe=None):
    vc = variant_config(cfg, sets or {})
    return Arm(label, base, "target", PRESETS[recipe or ("scratch" if base == "scratch" else base)], vc)


def test_bench_arms_warn_when_a_transfer_arm_gets_a_schedule_scratch_does_not():
    cfg = load_config(None)
    cos = {"stage2.schedule": "cosine"}  # scratch's and growth's default is wsd (issue 32): cosine is the other one
    arms = [_arm(cfg, "scratch", "scratch"), _arm(cfg, "grow", "grow"), _arm(cfg, "grow-cosine", "grow", cos),
            _arm(cfg, "grow-lr", "grow", {"stage2.lr": 0.02})]
    w = baseline_warnings(arms)
    assert len(w) == 2
    assert "stage2.schedule: cosine (given to grow-cosine)" in w[0]
    assert "add a scratch variant {arm: scratch, set: {stage2.schedule: cosine}}" in w[0]
    assert "{arm: scratch, set: {stage2.lr: 0.02, stage2.schedule: wsd, stage2.decay_fraction: 0.5}}" in w[1]
    # with the scratch variants added nothing is missing; a bench without scratch has no scratch baseline
    arms += [_arm(cfg, "scratch-cosine", "scratch", cos), _arm(cfg, "scratch-lr", "scratch", {"stage2.lr": 0.02})]
    assert baseline_warnings(arms) == []
    assert baseline_warnings([_arm(cfg, "grow-cosine", "grow", cos)]) == []
    # a variant of arm scratch with another recipe is not scratch: it is no baseline
    soft = _arm(cfg, "soft-cosine", "scratch", cos, recipe="soft")
    assert len(baseline_warnings([_arm(cfg, "scratch", "scratch"), soft])) == 1


def _config_arms(cfg):
    """Every arm and variant of ``cfg.bench`` as the bench builds them, without data (no chain checks)."""
    from fspladder.recipes import ARMS as BENCH_ARMS

    arms = [Arm(a, a, BENCH_ARMS[a][0], cfg.recipe_for(cfg.rungs[-1], BENCH_ARMS[a][1]), cfg) for a in cfg.bench.arms]
    for name, v in cfg.bench.variants.items():
        vc = variant_config(cfg, v.get("set") or {})
        arms.append(Arm(name, v["arm"], BENCH_ARMS[v["arm"]][0],
                        vc.recipe_for(vc.rungs[-1], v.get("recipe") or BENCH_ARMS[v["arm"]][1]), vc))
    return arms


@pytest.mark.parametrize("config", ["growth", "vgg", "vit", "resnet-imagenet", "growth-large", "growth-55k",
                                    "lr-screen", "transfer", "cross", "width", "tried", "combined",
                                    "--preset realistic", "--preset quick", "--preset full",
                                    "tried --preset quick", "combined --preset quick"])
def test_family_configs_and_the_presets_give_scratch_every_schedule(config):
    from pathlib import Path

    from fspladder.bench.run import PRESETS as BENCH_PRESETS

    root = Path(__file__).parents[1]
    name, _, preset = config.partition("--preset ")
    path = root / "configs" / f"{name.strip()}.yaml" if name.strip() else None
    cfg = load_config(path, BENCH_PRESETS[preset] if preset else [])
    arms = _config_arms(cfg)
    assert any(a.base == "scratch" and a.label != "scratch" for a in arms)  # a scratch variant beside the arm
    assert baseline_warnings(arms) == []
    assert fair_baseline(cfg)[1] == {}  # the shipped configs name their scratch variants: the rule adds none
    if path is not None:  # a preset adds its variants to the config's own, never replaces them
        assert set(load_config(path).bench.variants) <= set(cfg.bench.variants)
    # a user's wsd decay is not refused on the presets' cosine variants (they leave it to the recipe)
    load_config(path, [*(BENCH_PRESETS[preset] if preset else []), "stage2.decay_fraction=0.3"])


def test_the_fair_baseline_rule_adds_the_scratch_variants_a_bench_lacks():
    """Issue 32, item 1, in code: every schedule a transfer arm gets, scratch gets too; the bench adds what lacks."""
    cfg = load_config(None)  # arms scratch, direct, ladder, soft, grow: the patent's and soft's cosine is not scratch's
    fair, added = fair_baseline(cfg)
    assert added == {"scratch-cosine": "the schedule of direct, ladder, soft"}
    assert fair.bench.variants["scratch-cosine"] == {
        "arm": "scratch", "set": {"stage2.schedule": "cosine", "stage2.decay_fraction": None}}
    assert baseline_warnings(_config_arms(cfg)) and baseline_warnings(_config_arms(fair)) == []
    assert fair_baseline(fair)[1] == {} and fair_baseline(fair)[0] == fair  # adding again adds nothing
    assert cfg.bench.variants == {}  # the config given is not changed
    # Opted out: nothing added, the warning stays. Without a scratch arm: no scratch baseline to complete.
    assert fair_baseline(load_config(None, ["bench.fair_baseline=false"]))[1] == {}
    assert fair_baseline(load_config(None, ["bench.arms=[direct, grow]"]))[1] == {}
    # Each lever a variant changes is named and set; the added variant runs at its users' budgets and the full one;
    # a name a user took for another schedule is not overwritten.
    cfg = load_config(None, ["bench.arms=[scratch, grow]", "bench.budgets=[0.25, 0.5, 1.0]",
                             "bench.variants={grow-ema: {arm: grow, set: {stage2.ema: 0.99}}, "
                             "grow-lr: {arm: grow, set: {stage2.lr: 0.02, stage2.schedule: cosine}}, "
                             "scratch-cosine-lr0.02: {arm: scratch, set: {stage2.warmup_epochs: 0}}}",
                             "bench.arm_budgets={grow-ema: [0.25]}"])
    fair, added = fair_baseline(cfg)
    assert set(added) == {"scratch-wsd-ema0.99", "scratch-cosine-lr0.02-fair"}
    assert fair.bench.variants["scratch-wsd-ema0.99"]["set"] == {
        "stage2.schedule": "wsd", "stage2.decay_fraction": 0.5, "stage2.ema": 0.99}
    assert fair.bench.variants["scratch-cosine-lr0.02-fair"]["set"] == {
        "stage2.schedule": "cosine", "stage2.decay_fraction": None, "stage2.lr": 0.02}
    assert fair.bench.variants["scratch-cosine-lr0.02"] == cfg.bench.variants["scratch-cosine-lr0.02"]
    assert fair.bench.arm_budgets == {"grow-ema": [0.25], "scratch-wsd-ema0.99": [0.25, 1.0]}
    assert baseline_warnings(_config_arms(fair)) == []


def test_the_fair_baseline_reads_the_schedules_finished_runs_trained_with():
    """A bench trained before scratch's default became wsd holds cosine scratch runs: extended, it needs no
    scratch-cosine; its wsd scratch would be missing for a new wsd transfer arm."""
    cfg = load_config(None, ["bench.arms=[scratch, direct, grow]"])
    cos = {"lr": 0.05, "min_lr": 0.0, "shape": "cosine", "warmup_epochs": 0.0, "decay_fraction": None}
    runs = [{"arm": "scratch", "budget": b, "schedule": cos} for b in (0.5, 1.0)] + [{"arm": "grow", "budget": 1.0,
                                                                                      "schedule": cos}]
    rec = recorded_levers([*runs, {"arm": "x"}, "not a record"])
    assert rec["scratch"] == {"schedule": "cosine", "lr": 0.05, "warmup_epochs": 0.0, "decay_fraction": None}
    assert set(rec) == {"scratch", "grow"}
    assert fair_baseline(cfg)[1] == {"scratch-cosine": "the schedule of direct"}  # by the config alone
    assert fair_baseline(cfg, rec)[1] == {}  # scratch ran the cosine; grow's cosine runs need nothing either
    wsd = load_config(None, ["bench.arms=[scratch, direct, grow]",
                             "bench.variants={grow-wsd: {arm: grow, set: {stage2.schedule: wsd}}}"])
    assert fair_baseline(wsd, rec)[1] == {"scratch-wsd": "the schedule of grow-wsd"}


def test_an_extension_widens_the_budgets_of_a_variant_the_rule_added_before():
    """A variant the rule added runs at its users' budgets of that time; an extension that widens theirs widens its
    own (bench.json's ``fair_baseline_added`` names it), keeps every budget it ran, and leaves a user's own scratch
    variant as it is."""
    sets = ["bench.arms=[scratch, grow]", "bench.budgets=[0.25, 0.5, 1.0]",
            "bench.variants={grow-ema: {arm: grow, set: {stage2.ema: 0.99}}, "
            "scratch-cosine: {arm: scratch, set: {stage2.schedule: cosine}}}",
            "bench.arm_budgets={grow-ema: [0.25], scratch-cosine: [1.0]}"]
    first, added = fair_baseline(load_config(None, sets))
    name = "scratch-wsd-ema0.99"
    assert set(added) == {name} and first.bench.arm_budgets[name] == [0.25, 1.0]
    owned = {name: [0.25, 1.0]}  # what bench.json records (fair_baseline_added, its config's arm_budgets)

    def with_budgets(cfg, budgets, arm_budgets):
        return replace(cfg, bench=replace(cfg.bench, budgets=budgets, arm_budgets=arm_budgets))

    assert fair_baseline(first, owned=owned) == (first, {})  # the same budgets: nothing to widen
    wider = with_budgets(first, [0.25, 0.5, 1.0], {**first.bench.arm_budgets, "grow-ema": [0.25, 0.5]})
    fair, again = fair_baseline(wider, owned=owned)
    assert fair.bench.arm_budgets[name] == [0.25, 0.5, 1.0]
    assert again == {name: "its budgets widened to 0.25, 0.5, 1 (those of grow-ema)"}
    assert fair.bench.arm_budgets["scratch-cosine"] == [1.0]  # the user's own: not the rule's to change
    assert fair_baseline(wider)[1] == {}  # without the record of what it added, the rule changes nothing
    # a larger full budget: it runs there too, where the threshold is read, and keeps what it ran
    short = [*sets[:1], "bench.budgets=[0.25, 0.5]", sets[2], "bench.arm_budgets={grow-ema: [0.25], "
             "scratch-cosine: [0.5]}"]
    first_short, added = fair_baseline(load_config(None, short))
    assert first_short.bench.arm_budgets[name] == [0.25, 0.5]
    longer = with_budgets(first_short, [0.25, 0.5, 1.0], {**first_short.bench.arm_budgets, "scratch-cosine": [1.0]})
    assert fair_baseline(longer, owned={name: [0.25, 0.5]})[0].bench.arm_budgets[name] == [0.25, 0.5, 1.0]
    # its user now at every budget: so is it
    every = with_budgets(first, [0.25, 0.5, 1.0], {"scratch-cosine": [1.0], name: [0.25, 1.0]})
    fair, again = fair_baseline(every, owned=owned)
    assert name not in fair.bench.arm_budgets and again[name].startswith("its budgets widened to every budget")
    # a config given without it (an extension's own CONFIG): added again, with every budget it ran kept
    mine = replace(first, bench=replace(first.bench, variants={k: v for k, v in first.bench.variants.items()
                                                                if k != name},
                                        arm_budgets={"grow-ema": [0.5], "scratch-cosine": [1.0]}))
    fair, again = fair_baseline(mine, owned=owned)
    assert fair.bench.arm_budgets[name] == [0.25, 0.5, 1.0] and again[name] == "the schedule of grow-ema"
    # a name the record holds that is the user's own arm, or no scratch variant, is not the rule's
    assert fair_baseline(first, owned={"scratch": [1.0], "grow-ema": [0.25]}) == (first, {})


def test_the_fair_baseline_adds_no_variant_that_would_not_train_with_its_schedule():
    # the target rung's own wsd decay: a scratch variant with the cosine would be refused (its rung keeps the
    # decay); the rule leaves it to the checks (which name the arm that has the problem) instead of raising
    cfg = load_config(None, ["recipe=grow", "bench.arms=[scratch, grow, direct]",
                             "rungs=[{name: target, model: resnet20, stage2: {decay_fraction: 0.3}}]"])
    assert baseline_warnings(_config_arms(cfg))  # direct's cosine: scratch lacks it, and the bench says so
    assert fair_baseline(cfg) == (cfg, {})


def test_what_a_bench_recorded_of_the_rule_is_read_back_defensively():
    from fspladder.bench.run import _added_record, _owned_budgets

    saved = {"config": {"bench": {"variants": {"scratch-cosine": {}, "scratch-ema": {}, "other": {}},
                                  "arm_budgets": {"scratch-cosine": [0.5, 1], "scratch-ema": [True]}}}}
    # named in fair_baseline_added and held by the saved config: its budgets (None: every budget); a foreign shape
    # or a name the config lacks: left out
    owned = {"scratch-cosine": "the schedule of grow-cosine", "scratch-ema": "x", "gone": "y", "other": "z"}
    assert _owned_budgets(saved, owned) == {"scratch-cosine": [0.5, 1.0], "other": None}
    for foreign in ({}, {"config": []}, {"config": {"bench": {"variants": []}}}, {"config": {"bench": 3}}):
        assert _owned_budgets(foreign, owned) == {}
    # a widening is said after why the variant was added, the last widening only
    before = {"scratch-cosine": "the schedule of grow-cosine"}
    once = _added_record(before, {"scratch-cosine": "its budgets widened to 0.5, 1 (those of grow-cosine)"})
    assert once == {"scratch-cosine": "the schedule of grow-cosine; its budgets widened to 0.5, 1 (those of "
                                      "grow-cosine)"}
    twice = _added_record(once, {"scratch-cosine": "its budgets widened to every budget (those of grow-cosine)",
                                 "scratch-wsd": "the schedule of grow-wsd"})
    assert twice == {"scratch-cosine": "the schedule of grow-cosine; its budgets widened to every budget (those of "
                                       "grow-cosine)", "scratch-wsd": "the schedule of grow-wsd"}
