"""``fspladder bench``: does the ladder beat training from scratch, and at what cost?

The same target network is trained in several *arms* (same data, validation
split and optimiser), each at several stage-2 *budgets* (fractions of the full
epoch budget, each with a complete learning-rate schedule of its own length),
over several seeds:

* ``scratch``: the target alone, cross-entropy only;
* ``direct``:  teacher -> target, two stages, no intermediates (the FSP paper);
* ``ladder``:  teacher -> intermediates -> target (the patent);
* ``soft``:    the target with soft targets from the same teacher (Hinton KD);
* ``grow``:    the target initialised by function-preserving growth of the teacher;
* ``grow-fsp``: (not in the patent; opt-in) the teacher's blocks copied into
  the target, the new blocks kept at their fresh initialisation and trained
  alone in a stage 1 to reproduce the teacher's FSP matrices, then stage 2.

``stage2.fsp_weight`` > 0 (a variant's ``set``) adds an FSP term to stage 2
(joint CE + FSP, not in the patent): against the previous network for
``direct`` and ``ladder``, against the teacher for ``scratch``, ``grow`` and
``grow-fsp``.

Two clocks per run: the *target* clock (the target's own stage-2 training
seconds) and the *pipeline* clock (everything the arm needs beyond the
already-trained teacher: intermediates' stages and the target's stage 1 count
too; stage-1 work shared between budgets is counted in full for each budget).
Evaluation time is on neither clock.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from .baselines import can_grow, grow_resnet, grown_copies, soft_target_loss
from .checkpoint import atomic_write_bytes, atomic_write_json, load_model
from .config import ConfigError, RunConfig, config_to_dict, variant_config
from .engine import train_stage1, train_stage2
from .ladder import LadderError, Rung, validate_ladder
from .runner import (MetricsLog, _pairs, build_student, context_for, flow_target, load_data, machine_info, make_aligner,
                     resolve_device)

__all__ = ["PRESETS", "run_bench", "summarize", "time_to_target", "format_bench_md", "plot_bench"]

# Presets are --set overrides applied before the user's own.
PRESETS: dict[str, list[str]] = {
    # ~45-60 min on 2 CPU cores: a 10k-image training subset, a 4-epoch full budget.
    # (The default intermediate already trains 2 stage-2 epochs; the preset leaves rungs alone.)
    "quick": ["data.train_subset=10000", "stage2.epochs=4", "progress=false"],
    # The whole training set and a 15-epoch full budget (hours on CPU; minutes on a GPU).
    "full": ["stage2.epochs=15", "rungs.0.stage2.epochs=8", "progress=false"],
}


def _epochs(budget: float, full: int) -> int:
    return max(1, round(budget * full))


def _record(arm: str, seed: int, budget: float, r2: dict[str, Any], pre_seconds: float,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"arm": arm, "seed": seed, "budget": budget, "epochs": r2["epochs"], "val_acc": r2["val_acc"],
            "test_acc": r2["test_acc"], "train_acc": r2["train_acc"],
            "target_seconds": r2["train_seconds"], "pipeline_seconds": pre_seconds + r2["train_seconds"],
            "pre_seconds": pre_seconds, **(extra or {})}


def run_bench(cfg: RunConfig, out: str | Path) -> dict[str, Any]:
    """Train every arm at every budget for every seed; write bench.json, bench.md and curves.png."""
    out = Path(out)
    if (out / "bench.json").exists():
        raise ConfigError([f"{out} already holds a bench (bench.json); choose another --out (nothing was changed)"])
    out.mkdir(parents=True, exist_ok=True)
    b = cfg.bench
    device = resolve_device(cfg.device)
    data = load_data(cfg).to(device)
    log = MetricsLog(out / "metrics.jsonl", cfg.tensorboard)
    mf = torch.channels_last if cfg.channels_last else torch.preserve_format
    teacher, tck = load_model(cfg.teacher.checkpoint, {"name": cfg.teacher.model, "kwargs": cfg.teacher.kwargs})
    teacher.to(device, memory_format=mf).eval()
    t_rung = Rung("teacher", teacher, _pairs(cfg.teacher, teacher), tck["model"])
    full = cfg.stage_for(cfg.rungs[-1], "stage2").epochs

    def fresh(rc, seed: int) -> Rung:
        m, spec = build_student(rc, data, seed)
        return Rung(rc.name, m.to(device, memory_format=mf), _pairs(rc, m), spec)

    # Every arm and variant as (label, base arm, its config); all chains validated before any training.
    shape_in = (data.in_chans, *data.image_size)
    plan: list[tuple[str, str, RunConfig]] = [(a, a, cfg) for a in b.arms]
    plan += [(name, v["arm"], variant_config(cfg, v.get("set") or {})) for name, v in b.variants.items()]
    shapes: dict[str, list] = {}
    for label, arm, vc in list(plan):
        if arm in ("direct", "ladder"):
            chain = vc.rungs if arm == "ladder" else vc.rungs[-1:]
            shapes[label] = validate_ladder([t_rung] + [fresh(rc, 0) for rc in chain], shape_in,
                                            vc.projects_channels(chain))
        if arm in ("grow", "grow-fsp") and not can_grow(teacher, fresh(vc.rungs[-1], 0).model):
            log({"event": "arm_skipped", "arm": label, "why": "the target does not contain the teacher's structure"})
            plan.remove((label, arm, vc))
        joint = vc.stage_for(vc.rungs[-1], "stage2").fsp_weight > 0
        if arm == "soft" and joint:
            raise ConfigError([f"bench: {label} sets stage2.fsp_weight on the soft arm, whose stage 2 already has "
                               "its own loss; use it with scratch, direct, ladder, grow or grow-fsp"])
        if arm == "scratch" and joint:  # (grow and grow-fsp need equal widths, so their shapes match)
            # The FSP term compares the target with the teacher: their FSP matrices must match, checked now
            # rather than as a shape error after other arms have trained.
            try:
                validate_ladder([t_rung, fresh(vc.rungs[-1], 0)], shape_in, False)
            except LadderError as e:
                shapes_differ = "; ".join(p.split(";")[0] for p in e.problems)  # the shapes, not stage 1's fixes
                raise ConfigError([f"bench: {label} sets stage2.fsp_weight, which compares the target's FSP "
                                   f"matrices with the teacher's, but they differ ({shapes_differ}); set "
                                   "stage2.fsp_weight: 0 for this arm, or tap target layers whose channel counts "
                                   "equal the teacher's"]) from None
    arms = [label for label, _, _ in plan]
    # Each arm's own engine context, so a variant's amp, teacher_amp, compile or eval_batch_size takes effect.
    ctxs = {label: context_for(vc, device, data, log) for label, _, vc in plan}
    precision = {label: {"amp": c.amp, "teacher_amp": c.teacher_amp} for label, c in ctxs.items()}  # as resolved

    runs: list[dict[str, Any]] = []
    t_bench = time.perf_counter()

    def stage2(vc: RunConfig, ctx, target: Rung, prev: Rung, budget, name, seed, loss_fn=None):
        s2 = copy.copy(vc.stage_for(vc.rungs[-1], "stage2"))
        s2.epochs = _epochs(budget, full)
        s2.warmup_epochs = min(s2.warmup_epochs, s2.epochs)
        ctx.seed = seed
        joint = flow_target(target, prev, vc.stage_for(vc.rungs[-1], "stage1"), s2)
        # Only the final test accuracy enters the summary: score the test set once, not every epoch.
        return train_stage2(target.model, s2, ctx, name, loss_fn=loss_fn, eval_test="last", joint=joint)

    def save():
        atomic_write_json(out / "bench.json", {"config": config_to_dict(cfg), "machine": machine_info(device),
                                               "precision": precision, "arms": arms, "budgets": b.budgets,
                                               "full_epochs": full, "runs": runs,
                                               "seconds": time.perf_counter() - t_bench})

    def run_arm(label: str, arm: str, vc: RunConfig, seed: int) -> None:
        target_rc = vc.rungs[-1]
        ctx = ctxs[label]
        if arm in ("scratch", "soft", "grow"):
            for budget in b.budgets:
                target = fresh(target_rc, seed + 7)
                loss_fn = soft_target_loss(teacher, b.kd_temperature, b.kd_alpha) if arm == "soft" else None
                if arm == "grow":
                    grow_resnet(teacher, target.model)
                r2 = stage2(vc, ctx, target, t_rung, budget, f"{label}/{budget}", seed, loss_fn)
                runs.append(_record(label, seed, budget, r2, 0.0, {"base_arm": arm}))
                save()
            return
        # direct, ladder and grow-fsp: the chain before the target (and its stage 1) runs once per seed.
        prev, pre_seconds, stages = t_rung, 0.0, []
        chain_shapes = shapes.get(label)
        if arm == "ladder":
            for k, rc in enumerate(vc.rungs[:-1], start=1):
                cur = fresh(rc, seed + k)
                ctx.seed = seed + k
                s1 = vc.stage_for(rc, "stage1")
                al = make_aligner(cur, chain_shapes[k], prev, chain_shapes[k - 1], s1.project_channels,
                                  seed + k, device)
                r1 = train_stage1(cur.model, cur.pairs, prev.model, prev.pairs, s1, ctx, f"{label}/{rc.name}", al)
                r2 = train_stage2(cur.model, vc.stage_for(rc, "stage2"), ctx, f"{label}/{rc.name}", eval_test=False,
                                  joint=flow_target(cur, prev, s1, vc.stage_for(rc, "stage2")))
                pre_seconds += r1["train_seconds"] + r2["train_seconds"]
                stages.append({"rung": rc.name, "stage1_seconds": r1["train_seconds"],
                               "stage1_steps": r1.get("stopped_at_step", r1["steps"]),
                               "stage2_seconds": r2["train_seconds"], "val_acc": r2["val_acc"][-1]})
                cur.model.eval()
                prev = cur
        target = fresh(target_rc, seed + 7)
        ctx.seed = seed + 7
        s1 = vc.stage_for(target_rc, "stage1")
        if arm == "grow-fsp":
            # Copy the teacher's blocks, keep the new ones fresh, and align only the new ones.
            grow_resnet(teacher, target.model, identity=False)
            copied = [p for m in grown_copies(teacher, target.model) for p in m.parameters()]
            for p in copied:
                p.requires_grad_(False)
            try:
                r1 = train_stage1(target.model, target.pairs, prev.model, prev.pairs, s1, ctx, f"{label}/target")
            finally:
                for p in copied:
                    p.requires_grad_(True)
        else:
            al = make_aligner(target, chain_shapes[-1], prev, chain_shapes[-2], s1.project_channels, seed + 7, device)
            r1 = train_stage1(target.model, target.pairs, prev.model, prev.pairs, s1, ctx, f"{label}/target", al)
        pre_seconds += r1["train_seconds"]
        start = copy.deepcopy(target.model.state_dict())
        for budget in b.budgets:
            target.model.load_state_dict(start)
            r2 = stage2(vc, ctx, target, prev, budget, f"{label}/{budget}", seed)
            runs.append(_record(label, seed, budget, r2, pre_seconds, {
                "base_arm": arm, "stage1_seconds": r1["train_seconds"],
                "stage1_steps": r1.get("stopped_at_step", r1["steps"]), "fsp_loss_start": r1["fsp_loss_start"],
                "fsp_loss_end": r1["fsp_loss_end"], "chain": stages}))
            save()

    for si in range(b.seeds):
        seed = cfg.seed + 100 * si
        for label, arm, vc in plan:
            log({"event": "arm_start", "arm": label, "seed": seed})
            run_arm(label, arm, vc, seed)
    log.close()
    save()
    result = summarize(runs, arms, b.budgets, b.target_accuracy)
    bench = {"config": config_to_dict(cfg), "machine": machine_info(device), "precision": precision,
             "arms": arms, "budgets": b.budgets,
             "full_epochs": full, "teacher": {"model": tck["model"], "trained": tck["meta"]},
             "runs": runs, "summary": result, "seconds": time.perf_counter() - t_bench}
    atomic_write_json(out / "bench.json", bench)
    atomic_write_bytes(out / "bench.md", format_bench_md(bench).encode())
    plot_bench(bench, out / "curves.png")
    return bench


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def time_to_target(points: list[tuple[float, float]], target: float) -> dict[str, Any]:
    """Least seconds at which accuracy reaches ``target`` along measured ``(seconds, acc)`` points.

    Points are sorted by seconds; between the last point below the target and
    the first at or above it the seconds are linearly interpolated (labelled
    so). If the first point already reaches it, its seconds are an upper
    bound (``"at_most"``); if none does, ``"not reached"``.
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
              target_accuracy: float | None = None) -> dict[str, Any]:
    """Per arm and budget: mean ± std over seeds; time to target on both clocks; generalisation gap."""
    by: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault((r["arm"], r["budget"]), []).append(r)
    full = max(budgets)
    if target_accuracy is None:
        ref = by.get(("scratch", full))
        target_accuracy = _mean_std([r["val_acc"][-1] for r in ref])[0] if ref else None
    out: dict[str, Any] = {"target_accuracy": target_accuracy,
                           "target_from": "scratch mean final val acc at the full budget", "arms": {}}
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
        ttt = {}
        if target_accuracy is not None and rows:
            for clock in ("target_seconds", "pipeline_seconds"):
                ttt[clock] = time_to_target([(v[clock][0], v["val_acc"][0]) for v in rows.values()], target_accuracy)
        out["arms"][arm] = {"budgets": rows, "time_to_target": ttt}
    ref = out["arms"].get("scratch", {}).get("budgets", {}).get(str(full))
    if ref:
        for arm, a in out["arms"].items():
            for clock in ("target_seconds", "pipeline_seconds"):
                t = a["time_to_target"].get(clock, {})
                if t.get("seconds") is not None:
                    t["ratio_to_scratch_full"] = t["seconds"] / ref[clock][0]
    return out


def _pm(ms: tuple[float, float], fmt: str = ".4f") -> str:
    return f"{ms[0]:{fmt}} ± {ms[1]:{fmt}}"


def _ttt(t: dict[str, Any]) -> str:
    if not t or t.get("seconds") is None:
        return "not reached"
    mark = {"at_most": "≤ ", "interpolated": "~"}.get(t["how"], "")
    ratio = f" ({t['ratio_to_scratch_full']:.2f}×)" if "ratio_to_scratch_full" in t else ""
    return f"{mark}{t['seconds']:.0f} s{ratio}"


def format_bench_md(bench: dict[str, Any]) -> str:
    """The bench table in Markdown, computed from ``bench["summary"]`` alone."""
    s = bench["summary"]
    budgets = bench["budgets"]
    mach = bench["machine"]
    lines = [f"# fspladder bench", "",
             f"Machine: {mach.get('gpu', mach['platform'])}, torch {mach['torch']}, {mach['cpu_threads']} threads; "
             f"full budget {bench['full_epochs']} epochs; {len(set(r['seed'] for r in bench['runs']))} seeds; "
             f"bench wall time {bench['seconds']:.0f} s.", ""]
    if s["target_accuracy"] is not None:
        lines += [f"Target accuracy {s['target_accuracy']:.4f} ({s['target_from']}). Time to target: least seconds "
                  "at which the arm's mean final val accuracy reaches it across budgets; ~ interpolated between "
                  "budgets, ≤ reached at the smallest budget; ratio to scratch's full-budget seconds.", ""]
    head = "| arm | " + " | ".join(f"test acc @{b:g}" for b in budgets) + \
        " | time to target (target clock) | time to target (pipeline clock) | gap train−test @1 | 1st-epoch val acc @1 |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for arm, a in s["arms"].items():
        cells = [_pm(a["budgets"][str(b)]["test_acc"]) if str(b) in a["budgets"] else "-" for b in budgets]
        fb = a["budgets"].get(str(max(budgets)), {})
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {_ttt(a['time_to_target'].get('target_seconds', {}))} | "
                     f"{_ttt(a['time_to_target'].get('pipeline_seconds', {}))} | "
                     f"{_pm(fb['gap']) if fb else '-'} | {_pm(fb['first_epoch_val_acc']) if fb else '-'} |")
    variants = bench["config"]["bench"].get("variants") or {}
    if variants:
        lines += ["", "Variants (an arm with config overrides):", ""]
        lines += [f"- **{name}**: {v['arm']} with " + (", ".join(f"`{k}: {json.dumps(x)}`" for k, x in
                                                             (v.get("set") or {}).items()) or "no overrides")
                  for name, v in variants.items()]
    lines += ["", "Seconds per run, mean over seeds (target clock / pipeline clock):", "",
              "| arm | " + " | ".join(f"@{b:g}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for arm, a in s["arms"].items():
        cells = [f"{a['budgets'][str(b)]['target_seconds'][0]:.0f} / {a['budgets'][str(b)]['pipeline_seconds'][0]:.0f}"
                 if str(b) in a["budgets"] else "-" for b in budgets]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_bench(bench: dict[str, Any], path: str | Path) -> None:
    """Final test accuracy against pipeline seconds per budget; one line per arm, ±1 std band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, clock, title in ((axes[0], "pipeline_seconds", "pipeline clock"), (axes[1], "target_seconds", "target clock")):
        for arm, a in bench["summary"]["arms"].items():
            rows = [a["budgets"][str(b)] for b in bench["budgets"] if str(b) in a["budgets"]]
            xs = [r[clock][0] for r in rows]
            ys = [r["test_acc"][0] for r in rows]
            sd = [r["test_acc"][1] for r in rows]
            ax.plot(xs, ys, marker="o", label=arm)
            ax.fill_between(xs, [y - d for y, d in zip(ys, sd)], [y + d for y, d in zip(ys, sd)], alpha=0.2)
        ax.set_xlabel(f"training seconds ({title})")
        ax.set_ylabel("final test accuracy")
        ax.set_title(f"accuracy vs {title}; points = budgets")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
