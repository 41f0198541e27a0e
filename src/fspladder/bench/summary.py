"""Summaries of a bench: mean ± std per arm and budget, time to two accuracy thresholds, bench.md."""

from __future__ import annotations

import json
import statistics
from typing import Any

__all__ = ["summarize", "time_to_target", "format_bench_md", "CLOCKS"]

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


def summarize(runs: list[dict[str, Any]], arms: list[str], budgets: list[float],
              target_accuracy: float | None = None, teacher_val_acc: float | None = None) -> dict[str, Any]:
    """Per arm and budget: mean ± std over seeds; time to each threshold on both clocks and in epochs; gap.

    Thresholds: ``scratch`` (``target_accuracy``, else scratch's mean final validation accuracy at the full
    budget) and ``teacher`` (the teacher's validation accuracy, when known).
    """
    by: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault((r["arm"], r["budget"]), []).append(r)
    full = max(budgets)
    ref = by.get(("scratch", full))
    scratch_full = _mean_std([r["val_acc"][-1] for r in ref])[0] if ref else None
    thresholds: dict[str, float] = {}
    if target_accuracy is not None:
        thresholds["scratch"] = target_accuracy
    elif scratch_full is not None:
        thresholds["scratch"] = scratch_full
    if teacher_val_acc is not None:
        thresholds["teacher"] = teacher_val_acc
    out: dict[str, Any] = {
        "thresholds": thresholds,
        "threshold_from": {"scratch": "bench.target_accuracy" if target_accuracy is not None else
                           "scratch's mean final val acc at the full budget",
                           "teacher": "the teacher's val acc"},
        # Kept for readers of older bench.json files: the scratch threshold.
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
                pts = [(float(v["epochs"]) if clock == "epochs" else v[clock][0], v["val_acc"][0])
                       for v in rows.values()]
                ttt[name][clock] = time_to_target(pts, acc) if pts else {"seconds": None, "how": "not run"}
        out["arms"][arm] = {"budgets": rows, "time_to_target": ttt}
    ref_row = out["arms"].get("scratch", {}).get("budgets", {}).get(str(full))
    if ref_row:
        for a in out["arms"].values():
            for per in a["time_to_target"].values():
                for clock, t in per.items():
                    base = float(ref_row["epochs"]) if clock == "epochs" else ref_row[clock][0]
                    if t.get("seconds") is not None and base:
                        t["ratio_to_scratch_full"] = t["seconds"] / base
    return out


def _pm(ms: tuple[float, float], fmt: str = ".4f") -> str:
    return f"{ms[0]:{fmt}} ± {ms[1]:{fmt}}"


def _ttt(t: dict[str, Any], unit: str = "s") -> str:
    if not t or t.get("seconds") is None:
        return t.get("how", "not reached") if t else "-"
    mark = {"at_most": "≤ ", "interpolated": "~"}.get(t["how"], "")
    ratio = f" ({t['ratio_to_scratch_full']:.2f}×)" if "ratio_to_scratch_full" in t else ""
    value = f"{t['seconds']:.1f} ep" if unit == "ep" else f"{t['seconds']:.0f} s"
    return f"{mark}{value}{ratio}"


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
        lines += [f"Scratch's full-budget validation accuracy {s['scratch_full_val_acc']:.4f} against the teacher's "
                  f"{s['teacher_val_acc']:.4f}: {s['scratch_above_teacher'] * 100:+.2f} points, so scratch {verdict} "
                  f"the teacher by the {MARGIN * 100:.1f} points this bench needs to measure targets that end above "
                  "their teacher.", ""]
    th = s.get("thresholds", {})
    if th:
        lines += ["Thresholds: " + "; ".join(f"**{k}** {v:.4f} ({s['threshold_from'][k]})" for k, v in th.items())
                  + ". Time to a threshold: the least seconds (or epochs) at which the arm's mean final validation "
                  "accuracy reaches it across budgets; ~ interpolated between budgets, ≤ reached at the smallest "
                  "budget; in brackets the ratio to scratch's full-budget seconds (epochs).", ""]
    head = ("| arm | " + " | ".join(f"test acc @{b:g}" for b in budgets)
            + f" | val acc @{full:g} | gap train−test @{full:g} | 1st-epoch val acc @{full:g} |")
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for arm, a in s["arms"].items():
        cells = [_pm(a["budgets"][str(b)]["test_acc"]) if str(b) in a["budgets"] else "-" for b in budgets]
        fb = a["budgets"].get(str(full), {})
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {_pm(fb['val_acc']) if fb else '-'} | "
                     f"{_pm(fb['gap']) if fb else '-'} | {_pm(fb['first_epoch_val_acc']) if fb else '-'} |")
    for name in th:
        lines += ["", f"Time to the **{name}** threshold ({th[name]:.4f}):", "",
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
