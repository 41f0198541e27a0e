"""Summaries of a bench: mean ± std per arm and budget, time to two accuracy thresholds, bench.md.

The scratch threshold is scratch at its best (issue 32): the best full-budget mean validation accuracy over
every scratch arm and scratch variant of the bench (a variant of arm ``scratch`` that keeps scratch's recipe),
named with its schedule. Times to a threshold are read at the budgets that were run; a figure interpolated
between budgets stands beside them, labelled so.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from ..recipes import PRESETS

__all__ = ["summarize", "time_to_target", "time_at_budgets", "format_bench_md", "CLOCKS", "is_scratch_run",
           "schedule_of", "schedule_label", "baseline_line"]

# The x axes of "time to target": seconds on two clocks, and the target's epochs.
CLOCKS = ("target_seconds", "pipeline_seconds", "epochs")
MARGIN = 0.005  # scratch must end this far above the teacher for a bench to measure targets that pass it


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def time_to_target(points: list[tuple[float, float]], target: float) -> dict[str, Any]:
    """Least x (seconds or epochs) at which accuracy reaches ``target`` along measured ``(x, acc)`` points.

    Points are sorted by x; between the last point below the target and the
    first at or above it, x is linearly interpolated (labelled so). If the
    first point already reaches it, its x is an upper bound (``"at_most"``);
    if none does, ``"not reached"``.
    """
    pts = sorted(points)
    for i, (sec, acc) in enumerate(pts):
        if acc >= target:
            if i == 0:
                return {"seconds": sec, "how": "at_most"}
            s0, a0 = pts[i - 1]
            frac = (target - a0) / (acc - a0) if acc > a0 else 1.0
            return {"seconds": s0 + frac * (sec - s0), "how": "interpolated"}
    return {"seconds": None, "how": "not reached"}


def time_at_budgets(points: list[tuple[float, float, float]], target: float) -> dict[str, Any]:
    """The least *measured* budget whose accuracy reaches ``target``, from ``(budget, x, acc)`` points.

    ``seconds`` is that budget's x (seconds or epochs), ``budget`` the budget. When it is the least budget
    run, the threshold may have been passed sooner: ``how`` is ``"at_most"``, else ``"measured"``; when no
    budget reaches it, ``"not reached"``.
    """
    pts = sorted(points)
    for i, (budget, x, acc) in enumerate(pts):
        if acc >= target:
            return {"seconds": x, "budget": budget, "how": "at_most" if i == 0 else "measured"}
    return {"seconds": None, "how": "not reached"}


# The scratch recipe, as run records store it: a scratch variant that names another recipe is not scratch.
_SCRATCH_RECIPE = PRESETS["scratch"].as_dict()


def is_scratch_run(run: dict[str, Any]) -> bool:
    """Whether ``run`` trained from scratch: arm ``scratch`` or a variant of it, with scratch's recipe."""
    rec = run.get("recipe")
    return run.get("base_arm", run["arm"]) == "scratch" and (rec is None or rec == _SCRATCH_RECIPE)


def schedule_of(run: dict[str, Any]) -> dict[str, Any]:
    """The stage-2 schedule levers of ``run``: shape, decay fraction (wsd only), peak lr, warm-up, weight
    average. Records older than the schedule keys trained one cosine, with warm-up and average unrecorded."""
    sch = run.get("schedule") or {}
    shape = sch.get("shape", "cosine")
    return {"shape": shape, "decay_fraction": sch.get("decay_fraction") if shape == "wsd" else None,
            "lr": sch.get("lr", run.get("lr")), "warmup_epochs": sch.get("warmup_epochs"),
            "ema": run.get("ema") or 0.0}


def schedule_label(sched: dict[str, Any]) -> str:
    """``schedule_of``'s levers in words, e.g. ``wsd (decay 0.5), peak 0.05``."""
    out = f"wsd (decay {sched['decay_fraction']:g})" if sched["shape"] == "wsd" else sched["shape"]
    if sched.get("lr") is not None:
        out += f", peak {sched['lr']:g}"
    if sched.get("warmup_epochs"):
        out += f", warm-up {sched['warmup_epochs']:g} ep"
    if sched.get("ema"):
        out += f", ema {sched['ema']:g}"
    return out


def _unmatched(by_arm: dict[str, list[dict[str, Any]]], scratch: list[str]) -> dict[str, str]:
    """Transfer arms whose schedule (at their largest budget) no scratch arm or variant was given, with it.

    Warm-up is compared as recorded: a schedule shortened below it clips it for every arm alike."""
    def levers(rs: list[dict[str, Any]]) -> tuple[Any, ...]:
        return tuple(schedule_of(max(rs, key=lambda r: r["budget"])).values())

    have = {levers(by_arm[a]) for a in scratch}
    return {a: schedule_label(schedule_of(max(rs, key=lambda r: r["budget"])))
            for a, rs in by_arm.items() if a not in scratch and levers(rs) not in have}


def summarize(runs: list[dict[str, Any]], arms: list[str], budgets: list[float],
              target_accuracy: float | None = None, teacher_val_acc: float | None = None) -> dict[str, Any]:
    """Per arm and budget: mean ± std over seeds; time to each threshold on both clocks and in epochs; gap.

    Thresholds: ``scratch`` (``target_accuracy``, else the best full-budget mean validation accuracy over every
    scratch arm and scratch variant: ``baseline`` names it, its schedule and the others compared) and
    ``teacher`` (the teacher's validation accuracy, when known). Time to a threshold: the least budget run
    whose mean validation accuracy reaches it (``seconds``, ``budget``, ``ratio_to_scratch_full`` against the
    best scratch's full-budget seconds), with the figure interpolated between budgets under ``interpolated``.
    """
    by: dict[tuple[str, float], list[dict[str, Any]]] = {}
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault((r["arm"], r["budget"]), []).append(r)
        by_arm.setdefault(r["arm"], []).append(r)
    full = max(budgets)
    scratch = [a for a in arms if by_arm.get(a) and all(is_scratch_run(r) for r in by_arm[a])]
    at_full = {a: _mean_std([r["val_acc"][-1] for r in by[(a, full)]])[0] for a in scratch if (a, full) in by}
    best = max(at_full, key=lambda a: at_full[a]) if at_full else None
    scratch_full = at_full[best] if best is not None else None
    baseline: dict[str, Any] | None = None
    if best is not None:
        baseline = {"arm": best, "val_acc": scratch_full, "n": len(by[(best, full)]),
                    "schedule": schedule_label(schedule_of(by[(best, full)][0])),
                    "compared": {a: {"val_acc": v, "schedule": schedule_label(schedule_of(by[(a, full)][0])),
                                     "n": len(by[(a, full)])}
                                 for a, v in at_full.items()},
                    # transfer arms given a schedule no scratch arm had: the threshold is not scratch at its best
                    "unmatched": _unmatched({a: by_arm[a] for a in arms if by_arm.get(a)}, scratch)}
    thresholds: dict[str, float] = {}
    if target_accuracy is not None:
        thresholds["scratch"] = target_accuracy
    elif scratch_full is not None:
        thresholds["scratch"] = scratch_full
    if teacher_val_acc is not None:
        thresholds["teacher"] = teacher_val_acc
    best_from = ("no scratch arm ran the full budget" if baseline is None else
                 f"scratch at the full budget: {best} ({baseline['schedule']}), the only scratch arm: one schedule"
                 if len(at_full) == 1 else f"the best scratch at the full budget: {best} ({baseline['schedule']}), "
                 f"the best of {len(at_full)} scratch arms and variants")
    out: dict[str, Any] = {
        "thresholds": thresholds,
        "threshold_from": {"scratch": "bench.target_accuracy" if target_accuracy is not None else best_from,
                           "teacher": "the teacher's val acc"},
        "baseline": baseline,
        # Kept for readers of older bench.json files: the scratch threshold, and the best scratch's accuracy.
        "target_accuracy": thresholds.get("scratch"), "scratch_full_val_acc": scratch_full,
        "teacher_val_acc": teacher_val_acc, "arms": {},
    }
    if scratch_full is not None and teacher_val_acc is not None:
        out["scratch_above_teacher"] = scratch_full - teacher_val_acc
        out["scratch_passes_teacher"] = scratch_full - teacher_val_acc >= MARGIN
    for arm in arms:
        rows = {}
        for budget in budgets:
            rs = by.get((arm, budget), [])
            if not rs:
                continue
            m = lambda key: _mean_std([key(r) for r in rs])  # noqa: E731
            rows[str(budget)] = {
                "n": len(rs), "epochs": rs[0]["epochs"], "val_acc": m(lambda r: r["val_acc"][-1]),
                "test_acc": m(lambda r: r["test_acc"][-1]), "train_acc": m(lambda r: r["train_acc"]),
                "gap": m(lambda r: r["train_acc"] - r["test_acc"][-1]),
                "target_seconds": m(lambda r: r["target_seconds"]),
                "pipeline_seconds": m(lambda r: r["pipeline_seconds"]),
                "first_epoch_val_acc": m(lambda r: r["val_acc"][0]),
            }
        ttt: dict[str, dict[str, Any]] = {}
        for name, acc in thresholds.items():
            ttt[name] = {}
            for clock in CLOCKS:
                pts = [(float(b), float(v["epochs"]) if clock == "epochs" else v[clock][0], v["val_acc"][0])
                       for b, v in rows.items()]
                if not pts:
                    ttt[name][clock] = {"seconds": None, "how": "not run"}
                    continue
                t = time_at_budgets(pts, acc)
                between = time_to_target([(x, a) for _, x, a in pts], acc)
                if between["how"] == "interpolated" and abs(between["seconds"] - t["seconds"]) > 1e-9 * t["seconds"]:
                    t["interpolated"] = between
                ttt[name][clock] = t
        sched = schedule_label(schedule_of(max(by_arm[arm], key=lambda r: r["budget"]))) if by_arm.get(arm) else None
        out["arms"][arm] = {"budgets": rows, "time_to_target": ttt, "scratch": arm in scratch, "schedule": sched}
    ref = best if best is not None else "scratch"  # a bench with a target accuracy may still have arm scratch
    ref_row = out["arms"].get(ref, {}).get("budgets", {}).get(str(full))
    if ref_row:
        out["ratio_base"] = {"arm": ref, **{c: float(ref_row["epochs"]) if c == "epochs" else ref_row[c][0]
                                            for c in CLOCKS}}
        for a in out["arms"].values():
            for per in a["time_to_target"].values():
                for clock, t in per.items():
                    base = out["ratio_base"][clock]
                    for tt in (t, t.get("interpolated") or {}):
                        if tt.get("seconds") is not None and base:
                            tt["ratio_to_scratch_full"] = tt["seconds"] / base
    return out


def _pm(ms: tuple[float, float], fmt: str = ".4f") -> str:
    return f"{ms[0]:{fmt}} ± {ms[1]:{fmt}}"


def _ttt(t: dict[str, Any], unit: str = "s") -> str:
    """A time to a threshold: the measured budget's figure first, the interpolated one beside it, labelled."""
    if not t or t.get("seconds") is None:
        return t.get("how", "not reached") if t else "-"

    def one(x: dict[str, Any]) -> str:
        ratio = f" ({x['ratio_to_scratch_full']:.2f}×)" if "ratio_to_scratch_full" in x else ""
        return (f"{x['seconds']:.1f} ep" if unit == "ep" else f"{x['seconds']:.0f} s") + ratio

    if t["how"] == "interpolated":  # a bench.json written before measured budgets were reported
        return f"~{one(t)} interpolated"
    at = f" @{t['budget']:g}" if "budget" in t else ""
    out = ("≤ " if t["how"] == "at_most" else "") + one(t) + at
    inter = t.get("interpolated")
    return out + (f"; interpolated ~{one(inter)}" if inter else "")


def baseline_line(s: dict[str, Any]) -> str:
    """Which scratch the scratch threshold is, with its schedule, and what the bench did not give scratch."""
    if "baseline" not in s:
        return ("Baseline: this summary predates named baselines (scratch was arm scratch alone); "
                "`fspladder bench --resummarize DIR` names it.")
    b = s["baseline"]
    if not b:
        return ("Baseline: no scratch arm or variant ran the full budget; the scratch threshold is "
                + ("bench.target_accuracy." if s.get("target_accuracy") is not None else "absent."))
    others = "; ".join(f"{a} ({c['schedule']}) {c['val_acc']:.4f}" for a, c in b["compared"].items())
    line = (f"Baseline (the scratch threshold): **{b['arm']}** ({b['schedule']}), full-budget mean validation "
            f"accuracy {b['val_acc']:.4f} over {b['n']} seed(s), "
            + (f"the best of the scratch arms and variants run: {others}." if len(b["compared"]) > 1 else
               "the only scratch arm: scratch had this one schedule only."))
    # a mean of fewer seeds spreads wider, so the best of them can win by luck: say so beside the threshold
    more = {a: c["n"] for a, c in b["compared"].items() if a != b["arm"] and c.get("n", 0) > b["n"]}
    if more:
        line += (f" **Fewer seeds than the other scratch**: the threshold is {b['arm']}'s mean of {b['n']} seed(s), "
                 "against " + ", ".join(f"{a}'s {n}" for a, n in more.items())
                 + "; one seed's spread can set it: run it on as many seeds before reading the "
                 "ratios.")
    if b.get("unmatched"):
        line += (" **Not scratch at its best**: transfer arms had schedules no scratch arm had ("
                 + "; ".join(f"{a}: {lab}" for a, lab in b["unmatched"].items())
                 + "); their times to the scratch threshold compare schedules as well as recipes.")
    return line


def format_bench_md(bench: dict[str, Any]) -> str:
    """The bench tables in Markdown, computed from ``bench["summary"]`` alone."""
    s = bench["summary"]
    budgets = bench["budgets"]
    mach = bench["machine"]
    full = max(budgets)
    lines = ["# fspladder bench", "",
             f"Machine: {mach.get('gpu', mach['platform'])}, torch {mach['torch']}, {mach['cpu_threads']} threads; "
             f"full budget {bench['full_epochs']} epochs; {len(set(r['seed'] for r in bench['runs']))} seeds; "
             f"bench wall time {bench['seconds']:.0f} s.", ""]
    prot = bench.get("protocol") or {}
    if prot:
        same = prot.get("same_training_images")
        lines += [f"Protocol: the arms train on {prot['arms_train_images']} images (fingerprint "
                  f"`{prot['arms_fingerprint'][:12]}`); the teacher trained on "
                  f"{prot.get('teacher_train_images', '?')} images (fingerprint "
                  f"`{(prot.get('teacher_fingerprint') or 'unknown')[:12]}`): "
                  + ("the same images." if same else "NOT the same images as the arms." if same is False
                     else "unknown whether the same."), ""]
    if "scratch_passes_teacher" in s:
        verdict = "passes" if s["scratch_passes_teacher"] else "does NOT pass"
        lines += [f"The best scratch's full-budget validation accuracy {s['scratch_full_val_acc']:.4f} against the "
                  f"teacher's {s['teacher_val_acc']:.4f}: {s['scratch_above_teacher'] * 100:+.2f} points, so scratch "
                  f"{verdict} the teacher by the {MARGIN * 100:.1f} points this bench needs to measure targets that "
                  "end above their teacher.", ""]
    lines += [baseline_line(s), ""]
    if bench.get("fair_baseline_added"):
        lines += ["The fair-baseline rule added these scratch variants (`bench.fair_baseline`): "
                  + "; ".join(f"{k} ({why})" for k, why in bench["fair_baseline_added"].items()) + ".", ""]
    th = s.get("thresholds", {})
    base_arm = (s.get("ratio_base") or {}).get("arm", "scratch")
    if th:
        lines += ["Thresholds: " + "; ".join(f"**{k}** {v:.4f} ({s['threshold_from'][k]})" for k, v in th.items())
                  + ". Time to a threshold: the seconds (or epochs) of the least budget run whose mean final "
                  "validation accuracy reaches it (@ that budget; ≤ when it is the least budget run), then, "
                  "labelled, the figure interpolated between budgets; in brackets the ratio to the full-budget "
                  f"seconds (epochs) of {base_arm}.", ""]
    bl = s.get("baseline")
    lines += [f"Accuracy, mean ± std over seeds (the baseline: {bl['arm']}, {bl['schedule']}):" if bl else
              "Accuracy, mean ± std over seeds:", ""]
    head = ("| arm | schedule | " + " | ".join(f"test acc @{b:g}" for b in budgets)
            + f" | val acc @{full:g} | gap train−test @{full:g} | 1st-epoch val acc @{full:g} |")
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for arm, a in s["arms"].items():
        cells = [_pm(a["budgets"][str(b)]["test_acc"]) if str(b) in a["budgets"] else "-" for b in budgets]
        fb = a["budgets"].get(str(full), {})
        lines.append(f"| {arm} | {a.get('schedule') or '-'} | " + " | ".join(cells)
                     + f" | {_pm(fb['val_acc']) if fb else '-'} | "
                     f"{_pm(fb['gap']) if fb else '-'} | {_pm(fb['first_epoch_val_acc']) if fb else '-'} |")
    for name in th:
        whose = (f", {s['baseline']['arm']} at the full budget" if name == "scratch" and s.get("baseline")
                 and s["threshold_from"]["scratch"] != "bench.target_accuracy" else "")
        lines += ["", f"Time to the **{name}** threshold ({th[name]:.4f}{whose}; ratios to {base_arm}'s full-budget "
                  "seconds):", "",
                  "| arm | pipeline clock | target clock | target epochs |", "|---|---|---|---|"]
        for arm, a in s["arms"].items():
            t = a["time_to_target"].get(name, {})
            lines.append(f"| {arm} | {_ttt(t.get('pipeline_seconds', {}))} | {_ttt(t.get('target_seconds', {}))} | "
                         f"{_ttt(t.get('epochs', {}), 'ep')} |")
    variants = bench["config"]["bench"].get("variants") or {}
    if variants:
        lines += ["", "Variants (an arm with its own recipe and config overrides):", ""]
        for name, v in variants.items():
            sets = ", ".join(f"`{k}: {json.dumps(x)}`" for k, x in (v.get("set") or {}).items())
            rec = f" recipe `{v['recipe']}`" if v.get("recipe") else ""
            lines.append(f"- **{name}**: {v['arm']}{rec}" + (f" with {sets}" if sets else ""))
    skipped = bench.get("skipped") or {}
    if skipped:
        lines += ["", "Skipped arms:", ""] + [f"- **{k}**: {why}" for k, why in skipped.items()]
    lines += ["", "Seconds per run, mean over seeds (target clock / pipeline clock):", "",
              "| arm | " + " | ".join(f"@{b:g}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for arm, a in s["arms"].items():
        cells = [f"{a['budgets'][str(b)]['target_seconds'][0]:.0f} / {a['budgets'][str(b)]['pipeline_seconds'][0]:.0f}"
                 if str(b) in a["budgets"] else "-" for b in budgets]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
