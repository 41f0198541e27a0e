"""``fspladder report RUN_DIR``: one self-contained HTML page plus the PNGs it shows.

For a ladder run: FSP heatmaps per rung and pair (previous network, student
before and after stage 1, and after minus previous, on one shared colour scale
per pair), stage-1 FSP loss and stage-2 accuracy curves against seconds and
epochs, where the time went, and the config and summary as tables. For a
bench directory: the arms' accuracy-vs-seconds curves with seed bands.
Images are embedded as base64, so the page opens offline anywhere.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FspladderError
from .names import inside, safe_name
from .recipes import PRESETS

__all__ = ["write_report", "ReportError"]


class ReportError(FspladderError, ValueError):
    """The directory holds no run or bench outputs to report."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return path


def _read_metrics(run: Path) -> list[dict[str, Any]]:
    p = run / "metrics.jsonl"
    if not p.is_file():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: skip it, keep the rest
            continue
    return out


FLOW_IMAGES = 256  # fspladder.runner.FLOW_BATCH


def heatmaps(run: Path, summary: dict[str, Any]) -> list[tuple[str, Path]]:
    plt = _plt()
    figs = []
    for k, rung in enumerate(summary.get("rungs", []), start=1):
        f = inside(run, f"flow-{k}-{rung['name']}.npz")  # names from summary.json: never read outside the run
        if not f.is_file():
            continue
        z = np.load(f)
        pairs, prev_pairs = list(z["pairs"]), list(z["previous_pairs"])
        n = len(pairs)
        fig, axes = plt.subplots(n, 4, figsize=(14, 3.6 * n), squeeze=False, layout="constrained")
        for i in range(n):
            mats = [z[f"previous_{i}"], z[f"before_{i}"], z[f"after_{i}"]]
            mats.append(mats[2] - mats[0])
            # The previous network and the student after stage 1 share one scale (stage 1 makes them equal);
            # the student before stage 1 (often far larger) and the difference get their own, so no panel is blank.
            shared = float(max(np.abs(mats[0]).max(), np.abs(mats[2]).max())) or 1.0
            lims = [shared, float(np.abs(mats[1]).max()) or 1.0, shared, float(np.abs(mats[3]).max()) or 1.0]
            titles = [f"{rung['learns_from']} {prev_pairs[i]}", f"{rung['name']} before stage 1",
                      f"{rung['name']} after stage 1", "after − previous"]
            for ax, m, t, lim in zip(axes[i], mats, titles, lims):
                im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
                ax.set_title(f"{t}\n(scale ±{lim:.3g})", fontsize=9)
                ax.set_xlabel(f"channel j of 2nd tap (n={m.shape[1]})", fontsize=8)
                ax.set_ylabel(f"channel i of 1st tap (m={m.shape[0]})", fontsize=8)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        fig.suptitle(f"Rung {k} ({rung['name']}): mean FSP matrices on {FLOW_IMAGES} held-out images "
                     f"(previous and after share a colour scale)", fontsize=11)
        figs.append((f"FSP matrices, rung {k}: {rung['name']} learning from {rung['learns_from']}",
                     _save(fig, inside(run, f"report-fsp-{k}-{safe_name(rung['name'])}.png"))))
    return figs


def curves(run: Path, summary: dict[str, Any], metrics: list[dict[str, Any]]) -> list[tuple[str, Path]]:
    plt = _plt()
    rungs = [r["name"] for r in summary.get("rungs", [])]
    if not rungs:
        return []
    s1s = {name: [m for m in metrics if m.get("event") == "stage1_step" and m.get("rung") == name] for name in rungs}
    # Stage-1 panels only where a rung had a stage 1 (a grow or scratch run has none: no empty plots)
    has_s1 = any(s1s.values())
    fig, axes = plt.subplots(2 if has_s1 else 1, 2, figsize=(12, 8 if has_s1 else 4), squeeze=False)
    s2_axes = axes[-1]
    for name in rungs:
        s1 = s1s[name]
        if s1:
            axes[0, 0].plot([m["seconds"] for m in s1], [m["fsp_loss"] for m in s1], label=name)
            axes[0, 1].plot([m["step"] for m in s1], [m["fsp_loss"] for m in s1], label=name)
        s2 = [m for m in metrics if m.get("stage") == 2 and m.get("rung") == name and "event" not in m]
        if s2:
            for key, style in (("val_acc", "-o"), ("test_acc", "--s")):
                s2_axes[0].plot([m["seconds"] for m in s2], [m[key] for m in s2], style, label=f"{name} {key[:-4]}")
                s2_axes[1].plot([m["epoch"] for m in s2], [m[key] for m in s2], style, label=f"{name} {key[:-4]}")
    if has_s1:
        for ax in axes[0]:
            ax.set_yscale("log")
            ax.set_ylabel("FSP loss (batch, squared Frobenius)")
            ax.set_title("Stage 1: FSP loss")
        axes[0, 0].set_xlabel("stage-1 training seconds")
        axes[0, 1].set_xlabel("stage-1 step")
    for ax in s2_axes:
        ax.set_ylabel("accuracy")
        ax.set_title("Stage 2: validation and test accuracy")
    s2_axes[0].set_xlabel("stage-2 seconds (incl. evaluation)")
    s2_axes[1].set_xlabel("stage-2 epoch")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return [("Learning curves per rung", _save(fig, inside(run, "report-curves.png")))]


def time_bars(run: Path, summary: dict[str, Any]) -> list[tuple[str, Path]]:
    """This run's own seconds per rung and stage (the teacher's earlier training is stated, not drawn)."""
    plt = _plt()
    labels, values, colors = [], [], []
    for r in summary.get("rungs", []):
        if r.get("stage1"):
            labels.append(f"{r['name']} stage 1")
            values.append(r["stage1"]["seconds"])
            colors.append("tab:orange")
        labels.append(f"{r['name']} stage 2")
        values.append(r["stage2"]["seconds"])
        colors.append("tab:blue")
    if not values:
        return []
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(values) + 1.4))
    ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    ax.set_xlabel("seconds (wall clock, incl. evaluation)")
    t = summary.get("teacher", {}).get("trained", {})
    note = f"; the teacher was trained earlier in {t['seconds']:.0f} s (not drawn)" if t.get("seconds") else ""
    ax.set_title(f"Where this run's time went{note}", fontsize=10)
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:.0f} s", va="center", fontsize=8)
    fig.tight_layout()
    caption = "Where this run's time went" + (f" (the teacher was trained earlier in {t['seconds']:.0f} s, not drawn)"
                                              if t.get("seconds") else "")
    return [(caption, _save(fig, inside(run, "report-time.png")))]


def bench_curves(run: Path, bench: dict[str, Any]) -> list[tuple[str, Path]]:
    from .bench import plot_bench

    path = inside(run, "report-bench.png")
    plot_bench(bench, path)
    return [("Bench: final test accuracy against seconds, one point per budget, ±1 std over seeds", path)]


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict):
        out = []
        for k, v in d.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        out = []
        for i, v in enumerate(d):
            out += _flatten(v, f"{prefix}[{i}]")
        return out
    if isinstance(d, list) and d and all(isinstance(x, float) for x in d):
        return [(prefix, ", ".join(f"{x:.4g}" for x in d))]
    return [(prefix, f"{d:.6g}" if isinstance(d, float) else d)]


def _relevant_config(path: Path, is_bench: bool) -> str:
    """The config without the sections that did not act on this output (bench keys in a run, plan keys
    unless it planned)."""
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return path.read_text()
    if not isinstance(cfg, dict):
        return path.read_text()
    if not is_bench:
        cfg.pop("bench", None)
    if (cfg.get("plan") or {}).get("intermediates") != "auto":
        cfg.pop("plan", None)
    return yaml.safe_dump(cfg, sort_keys=False)


def _img(title: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f"<figure><figcaption>{html.escape(title)}</figcaption>"
            f"<img alt='{html.escape(title)}' data-file='{html.escape(path.name)}' "
            f"src='data:image/png;base64,{data}'></figure>")


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` (and its PNGs) into ``run_dir``; returns the HTML path."""
    run = Path(run_dir)
    summary_p, bench_p = run / "summary.json", run / "bench.json"
    if not summary_p.is_file() and not bench_p.is_file():
        raise ReportError(f"{run} holds neither summary.json (a run) nor bench.json (a bench); "
                          "point `fspladder report` at the --out directory of `fspladder run` or `fspladder bench`")
    parts: list[str] = []
    figures: list[tuple[str, Path]] = []
    title = f"fspladder report: {run.name}"
    if summary_p.is_file():
        summary = json.loads(summary_p.read_text())
        metrics = _read_metrics(run)
        figures += heatmaps(run, summary) + curves(run, summary, metrics) + time_bars(run, summary)
        t = summary.get("target")
        if t:
            parts.append(f"<p class='big'>Target <b>{html.escape(t['name'])}</b>: test accuracy "
                         f"<b>{t['test_acc']:.4f}</b>; run took {summary.get('total_seconds', 0):.0f} s.</p>")
        prec = summary.get("precision")  # what amp/teacher_amp "auto" resolved to (runs before 8a2ef74 lack it)
        if prec:
            word = {"off": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}
            parts.append(f"<p>Students trained in {word.get(prec['amp'], prec['amp'])}; the frozen networks made "
                         f"stage-1 targets in {word.get(prec['teacher_amp'], prec['teacher_amp'])} "
                         "(FSP matrices always float32).</p>")
        t = summary["teacher"]
        rows = [("teacher", t["model"], t["params"], "-", "-", "-", t.get("val_acc", "-"), t.get("test_acc", "-"))]
        for r in summary.get("rungs", []):
            s1, s2 = r.get("stage1"), r["stage2"]
            # a run recorded before recipes existed trained the patent's
            recipe = "/".join((r.get("recipe") or PRESETS["patent"].as_dict()).values())
            kd = f"; soft targets off after step {s2['kd_off']['step']}" if s2.get("kd_off") else ""
            rows.append((r["name"], r["model"], r["params"], recipe + kd,
                         f"{s1['fsp_loss_start']:.4g} → {s1['fsp_loss_end']:.4g}" if s1 else "-",
                         f"{s1['seconds']:.0f} + {s2['seconds']:.0f}" if s1 else f"{s2['seconds']:.0f}",
                         s2["val_acc"][-1], s2["test_acc"][-1]))
        head = "".join(f"<th>{h}</th>" for h in ("network", "model", "parameters", "recipe (init/stage 1/guidance)",
                                                 "FSP loss (stage 1)", "seconds (stage 1 + 2)", "val accuracy",
                                                 "test accuracy"))
        body = "".join("<tr>" + "".join(f"<td>{html.escape(f'{c:.4f}' if isinstance(c, float) else str(c))}</td>"
                                        for c in row) + "</tr>" for row in rows)
        parts.append(f"<h2>Ladder</h2><table><tr>{head}</tr>{body}</table>")
    if bench_p.is_file():
        bench = json.loads(bench_p.read_text())
        if "summary" in bench:
            figures += bench_curves(run, bench)
            md = run / "bench.md"
            if md.is_file():
                parts.append(f"<h2>Bench</h2><pre>{html.escape(md.read_text())}</pre>")
    parts += [_img(t, p) for t, p in figures]
    cfg = next((run / n for n in ("resolved-config.yaml", "config.yaml", "bench-config.yaml") if (run / n).is_file()),
               None)
    if cfg is not None:
        parts.append(f"<h2>Config</h2><pre>{html.escape(_relevant_config(cfg, bench_p.is_file()))}</pre>")
    if summary_p.is_file():
        slim = {k: v for k, v in json.loads(summary_p.read_text()).items() if k != "config"}
        parts.append("<h2>Summary</h2>" + _table(_flatten(slim)))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
img{{max-width:100%}}figure{{margin:1.5em 0}}figcaption{{font-weight:bold;margin-bottom:.4em}}
pre{{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}}.big{{font-size:18px}}</style></head>
<body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>"""
    out = inside(run, "report.html")
    out.write_text(page)
    return out
