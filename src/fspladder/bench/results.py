"""Finished benches read offline: their summaries recomputed by today's rules, and the frontier across them.

:func:`resummarize` rewrites a bench's ``summary`` and ``bench.md`` from its recorded runs (no training; no
measured number changes), so an older bench names its baseline (which scratch, which schedule) and reads its
times to a threshold at the budgets that were run. :func:`frontier` gives, per family and budget, the best
transfer recipe with its schedule, its margin over the best scratch run at that budget, and the budgets at
which scratch leads (issue 32).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_bytes, atomic_write_json
from ..errors import FspladderError
from .summary import format_bench_md, is_scratch_run, schedule_label, schedule_of, summarize

__all__ = ["BenchDirError", "load_bench", "resummarize", "family_of", "frontier", "format_frontier"]


class BenchDirError(FspladderError, ValueError):
    """A directory given as a finished bench holds none."""


def load_bench(path: str | Path, flag: str) -> dict[str, Any]:
    """The finished bench in ``path`` (its ``bench.json``); refuses a directory that holds none."""
    f = Path(path) / "bench.json"
    try:
        bench = json.loads(f.read_text())
    except FileNotFoundError:
        raise BenchDirError(f"{flag} {path}: no bench.json there; give the --out directory of a finished bench")
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError (a binary file) are ValueErrors
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BenchDirError(f"{flag} {path}: bench.json cannot be read ({first}); give the --out directory of a "
                            "finished bench") from None
    if not isinstance(bench, dict) or "runs" not in bench or "summary" not in bench:
        raise BenchDirError(f"{flag} {path}: bench.json holds no finished bench; finish it first with "
                            f"`fspladder bench --resume {path}`")
    bad = [k for k in ("runs", "arms", "budgets") if not isinstance(bench.get(k), list)]
    if bad or not isinstance(bench["summary"], dict):
        raise BenchDirError(f"{flag} {path}: bench.json is not one fspladder wrote ({', '.join(bad) or 'summary'} "
                            "missing or malformed); restore it, or run the bench again")
    return bench


def _summary_of(bench: dict[str, Any]) -> dict[str, Any]:
    cfg_bench = (bench.get("config") or {}).get("bench") or {}
    return summarize(bench["runs"], bench["arms"], bench["budgets"], cfg_bench.get("target_accuracy"),
                     (bench.get("teacher") or {}).get("val_acc"))


def resummarize(path: str | Path) -> dict[str, Any]:
    """Recompute the summary of the finished bench in ``path`` from its runs; rewrite bench.json and bench.md.

    The runs are left as they are. curves.png is redrawn only when the scratch threshold moved (a bench with more
    than one scratch arm or variant), so a plot that shows the same line is not rewritten."""
    from .plot import plot_bench

    bench = load_bench(path, "--resummarize")
    old = (bench["summary"].get("thresholds") or {}).get("scratch", bench["summary"].get("target_accuracy"))
    bench["summary"] = _summary_of(bench)
    out = Path(path)
    atomic_write_json(out / "bench.json", bench)
    atomic_write_bytes(out / "bench.md", format_bench_md(bench).encode())
    if old != bench["summary"]["thresholds"].get("scratch") and (out / "curves.png").exists():
        plot_bench(bench, out / "curves.png")
    return bench


def family_of(bench: dict[str, Any]) -> str:
    """The pair and protocol a bench measured: teacher -> target, training images, full epochs. Benches of one
    family compare: their arms meet in one frontier."""
    cfg = bench.get("config") or {}
    teacher = str((cfg.get("teacher") or {}).get("checkpoint") or "default teacher").removeprefix("builtin:")
    rung = (cfg.get("rungs") or [{}])[-1]
    kw = rung.get("kwargs") or {}
    target = str(rung.get("model", "?")) + (" " + ", ".join(f"{k} {v}" for k, v in kw.items()) if kw else "")
    images = (bench.get("protocol") or {}).get("arms_train_images") or (cfg.get("data") or {}).get("train_subset")
    return f"{teacher} -> {target}, {images or 'all'} images, {bench.get('full_epochs')} epochs"


def _cells(name: str, bench: dict[str, Any]) -> dict[tuple[str, float], dict[str, Any]]:
    """Per (arm, budget): mean final validation accuracy over seeds, seeds, target epochs, schedule, whether
    scratch. Keyed by budget, not epochs: two budgets of one bench that round to the same epochs (0.2 and 0.25 of
    10) are two cells, never pooled into one of twice the seeds."""
    by: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in bench["runs"]:
        by.setdefault((r["arm"], float(r["budget"])), []).append(r)
    return {k: {"val_acc": sum(r["val_acc"][-1] for r in rs) / len(rs), "n": len(rs), "source": name,
                "budget": k[1], "epochs": int(rs[0]["epochs"]),
                "schedule": schedule_label(schedule_of(rs[0])), "scratch": is_scratch_run(rs[0])}
            for k, rs in by.items()}


def frontier(benches: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per family (:func:`family_of`) and target epochs: the best transfer arm with its schedule and mean
    validation accuracy, the best scratch arm or variant run at those epochs, the margin between them, and
    ``scratch_leads_at``: every epochs where the best scratch leads (margin below 0), and
    ``scratch_unknown_above``: where the longest rows have no scratch run, the longest epochs with one (0: no
    scratch ran at all), else None; above it nothing is known of scratch.

    ``benches``: ``(name, bench)`` pairs. Budgets are matched by their epochs (0.2 and 0.25 of 10 epochs are
    both 2). Where two benches of one family hold the same arm with the same schedule at the same epochs, the first
    given is kept (the same name with another schedule is another candidate), and
    within one bench the least budget of those epochs (its cells are never pooled).
    """
    families: dict[str, dict[str, Any]] = {}
    for name, bench in benches:
        fam = families.setdefault(family_of(bench), {"family": family_of(bench), "sources": [], "cells": {},
                                                     "full_epochs": bench.get("full_epochs")})
        fam["sources"].append(name)
        for (arm, _), c in sorted(_cells(name, bench).items(), key=lambda kc: kc[0][1]):  # least budget first
            # keyed by schedule too: one arm name is two schedules across benches of two versions (scratch and
            # grow took wsd as their default in issue 32), and both stay candidates
            fam["cells"].setdefault((arm, c["schedule"], c["epochs"]), c)
    out = []
    for fam in families.values():
        rows = []
        for ep in sorted({e for _, _, e in fam["cells"]}):
            here = {(a, sch): c for (a, sch, e), c in fam["cells"].items() if e == ep}
            transfer = {k: c for k, c in here.items() if not c["scratch"]}
            scratch = {k: c for k, c in here.items() if c["scratch"]}
            if not transfer:
                continue
            best = max(transfer, key=lambda k: transfer[k]["val_acc"])
            sb = max(scratch, key=lambda k: scratch[k]["val_acc"]) if scratch else None
            row = {"epochs": ep, "budgets": sorted({c["budget"] for c in here.values()}),
                   "best": best[0], **{k: transfer[best][k] for k in ("schedule", "val_acc", "n", "source")},
                   "scratch": sb[0] if sb else None, "scratch_schedule": scratch[sb]["schedule"] if sb else None,
                   "scratch_val_acc": scratch[sb]["val_acc"] if sb else None,
                   "scratch_n": scratch[sb]["n"] if sb else None,
                   "margin": transfer[best]["val_acc"] - scratch[sb]["val_acc"] if sb else None}
            rows.append(row)
        # where scratch leads, read row by row: a lead at one budget says nothing of the budgets between or above
        leads_at = [r["epochs"] for r in rows if r["margin"] is not None and r["margin"] < 0]
        known = max((e for (_, _, e), c in fam["cells"].items() if c["scratch"]), default=0)
        unknown_above = known if rows and rows[-1]["epochs"] > known else None
        schedules = sorted({c["schedule"] for c in fam["cells"].values() if c["scratch"]})
        out.append({"family": fam["family"], "sources": fam["sources"], "full_epochs": fam["full_epochs"],
                    "rows": rows, "scratch_leads_at": leads_at, "scratch_unknown_above": unknown_above,
                    "scratch_schedules": schedules})
    return out


def format_frontier(fams: list[dict[str, Any]]) -> str:
    """The frontier as Markdown: one table per family, the scratch schedules it was measured against, the
    budgets at which scratch leads, and above which budget that is unknown (no scratch run there)."""
    lines: list[str] = []
    for f in fams:
        sch = "; ".join(f["scratch_schedules"]) or "none"
        leads = (", ".join(str(e) for e in f["scratch_leads_at"]) + f" epochs (of {f['full_epochs']})"
                 if f["scratch_leads_at"] else "none of the budgets where both ran")
        above = f["scratch_unknown_above"]
        if above == 0:
            leads = "unknown: no scratch run"
        elif above is not None:
            leads += f"; unknown above {above} epochs (no scratch run there)"
        lines += [f"**{f['family']}** (from {', '.join(f['sources'])}; scratch schedules run: {sch}; scratch "
                  f"leads at: {leads})", "",
                  "| epochs (budget) | best transfer recipe (schedule) | val acc (seeds) | best scratch (schedule) | "
                  "val acc (seeds) | margin |", "|---|---|---|---|---|---|"]
        for r in f["rows"]:
            budget = " (" + " / ".join(f"{b:g}" for b in r["budgets"]) + ")"
            sc = (f"{r['scratch']} ({r['scratch_schedule']}) | {r['scratch_val_acc']:.4f} ({r['scratch_n']})"
                  if r["scratch"]
                  else "not run | -")
            margin = f"{r['margin'] * 100:+.2f} pts" if r["margin"] is not None else "-"
            lines.append(f"| {r['epochs']}{budget} | {r['best']} ({r['schedule']}) | {r['val_acc']:.4f} ({r['n']}) | "
                         f"{sc} | {margin} |")
        lines.append("")
    return "\n".join(lines)
