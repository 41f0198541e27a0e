"""Running a bench: every arm at every budget for every seed, each run's record saved as it finishes.

An arm is a chain and a recipe (:data:`fspladder.recipes.ARMS`): ``target``
arms train the target right after the teacher, ``ladder`` arms train every
rung of the config. The chain before the target and the target's init and
stage 1 run once per seed; stage 2 then runs once per budget from the same
start, each budget with a complete learning-rate schedule of its own length.

Two clocks per run: the *target* clock (the target's stage-2 training
seconds) and the *pipeline* clock (everything the arm needs beyond the
already-trained teacher: intermediates' stages and the target's stage 1 count
too; work shared between budgets is counted in full for each budget).
Evaluation time is on neither clock.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..arms import WIDENED, Arm, fair_baseline, fair_baseline_line, recorded_levers
from ..arms import arm_plan as full_budget_plan
from ..chain import RungTask, Stage2Run, TaskOutcome, arm_tasks, bench_seeds, full_epochs, train_chain
from ..check import preflight
from ..checkpoint import atomic_write_bytes, atomic_write_json, json_safe
from ..config import ConfigError, RunConfig, config_to_dict, load_config
from ..engine import Stage2Result, evaluate, schedule_record
from ..estimate import ArmPlan, RunClock, estimate_bench, estimate_wanted
from ..faults import kill_point
from ..names import check_name, inside
from ..outputs import MetricsLog, check_out_dir, out_folder
from ..recipes import ARMS
from ..session import context_for, machine_info, memory_format, resolve_device
from .plot import plot_bench
from .summary import format_bench_md, summarize

__all__ = ["PRESETS", "run_bench", "resume_config", "bench_config_path", "extend_problems", "BENCH_CONFIG", "Arm"]

BENCH_CONFIG = "bench-config.yaml"  # the config the bench runs with (a resume reads it back)
RUNS_DIR = "runs"  # one JSON record per finished run, written atomically

# Presets are --set overrides applied before the user's own.
# The one cosine for an arm whose default is wsd (scratch, grow): set one variant each, not the whole mapping, so a
# config's own variants stay; decay_fraction null so a user's stage2.decay_fraction (wsd's) is not refused there.
def _cosine_variant(arm: str) -> str:
    return (f"bench.variants.{arm}-cosine={{arm: {arm}, set: {{stage2.schedule: cosine, "
            "stage2.decay_fraction: null}}")


PRESETS: dict[str, list[str]] = {
    # ~50-70 min on 2 CPU cores: a 10k-image training subset, a 4-epoch full budget. The target ends below its
    # teacher (trained on all 55k images for 15 epochs): the quick protocol. Scratch runs with both schedules:
    # its default wsd, and the one cosine the patent and soft arms train with (issue 32's fair baseline).
    "quick": ["data.train_subset=10000", "stage2.epochs=4", _cosine_variant("scratch"), "progress=false"],
    # The whole training set and a 15-epoch full budget (hours on CPU; minutes on a GPU).
    "full": ["stage2.epochs=15", "rungs.0.stage2.epochs=8", _cosine_variant("scratch"), "progress=false"],
    # The case users have (issue 16): the target trains on exactly its teacher's training images (the first
    # 8,000 of the seeded split), long enough to end above it. The shipped teacher resnet8_fmnist_8k was
    # trained on those images (its checkpoint records the command and their fingerprint). Every recipe arm;
    # 3 seeds; test accuracy on the first 5,000 test images. Issue 32: scratch at its best, so scratch and
    # growth each run with both schedules (their default wsd, and the one cosine the other recipes use), at 1, 2,
    # 3, 5, 8 and 10 epochs; the other recipes at 2, 5 and 10. About 160 minutes on 2 CPU cores. The benches in
    # docs/results were trained before wsd became scratch's and growth's default (their -wsd variants are these
    # arms now), so this preset does not extend them.
    "realistic": ["data.train_subset=8000", "data.test_subset=5000", "stage2.epochs=10",
                  "teacher.checkpoint=builtin:resnet8_fmnist_8k", "bench.seeds=3",
                  "bench.budgets=[0.1, 0.25, 0.3, 0.5, 0.75, 1.0]",
                  "bench.arms=[scratch, direct, ladder, soft, grow, w2s, ladder-w2s, grow-w2s]",
                  _cosine_variant("scratch"), _cosine_variant("grow"),
                  "bench.arm_budgets={" + ", ".join(f"{a}: [0.25, 0.5, 1.0]" for a in
                                                    ("direct", "ladder", "soft", "w2s", "ladder-w2s", "grow-w2s"))
                  + "}", "progress=false"],
}


# Keys outside ``bench`` that an extension may change: they decide how a run is shown, not what it trains.
_EXTEND_FREE = ("progress", "track")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def extend_problems(old: RunConfig, new: RunConfig) -> list[str]:
    """Why ``new`` cannot extend a bench that ran with ``old`` (empty: it can).

    An extension adds arms, variants, seeds or budgets and keeps every finished run, so it must train the rest
    exactly as the finished runs were trained: everything outside ``bench`` equal (but ``progress`` and
    ``track``, and the intermediate rungs while the bench has no ladder arm or variant and no variant that sets
    a rung), every old arm, variant, seed and budget still there, each variant unchanged. The machine, the
    training images and the teacher's weights are checked when the bench starts (:meth:`_Bench.continuation`).
    """
    a, b = config_to_dict(old), config_to_dict(new)
    ob, nb = old.bench, new.bench
    target_only = all(ARMS[x][0] == "target" for x in [*ob.arms, *(v["arm"] for v in ob.variants.values())])
    by_index = any(str(k).startswith("rungs") for v in ob.variants.values() for k in (v.get("set") or {}))
    if target_only and not by_index:
        for d in (a, b):  # no arm of the bench goes through the intermediates: a new ladder arm may bring its own
            d["rungs"] = d["rungs"][-1:]
    fa, fb = (_flat({k: v for k, v in d.items() if k != "bench" and k not in _EXTEND_FREE}) for d in (a, b))
    missing = object()  # a key set to null and a key left out are not the same config
    changed = sorted(k for k in fa.keys() | fb.keys() if fa.get(k, missing) != fb.get(k, missing))
    err = []
    if changed:
        err.append(f"--extend: {', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''} differ from the bench's "
                   "own config, so its finished runs would not compare with the new ones; change only the bench "
                   "section (arms, variants, seeds, budgets; the intermediate rungs too while the bench has no "
                   "ladder arm) or run a separate bench")
    labels = [*ob.arms, *ob.variants]
    gone = [x for x in ob.arms if x not in nb.arms] + [x for x in ob.variants if x not in nb.variants]
    if gone:
        err.append(f"--extend: the bench's arms {gone} are missing from the new config; an extension keeps every "
                   "arm it has (list them again)")
    moved = [x for x in ob.variants if x in nb.variants and nb.variants[x] != ob.variants[x]]
    if moved:
        err.append(f"--extend: variants {moved} differ from the bench's own; give the new definition its own name")
    if nb.seeds < ob.seeds or not set(ob.budgets) <= set(nb.budgets):
        err.append(f"--extend: the bench ran {ob.seeds} seeds at budgets {ob.budgets}; the new config must keep "
                   f"them (it has {nb.seeds} seeds, budgets {nb.budgets})")
    fewer = [x for x in labels if x not in gone
             and not set(ob.arm_budgets.get(x, ob.budgets)) <= set(nb.arm_budgets.get(x, nb.budgets))]
    if fewer:
        err.append(f"--extend: bench.arm_budgets drops budgets the bench already ran for {fewer}; keep them")
    return err


def _as_read(obj: Any) -> Any:
    """``obj`` as it reads back from bench.json (tuples as lists, non-finite numbers as null)."""
    return json.loads(json.dumps(json_safe(obj), default=str, allow_nan=False))


def _finished_records(out: Path, saved: dict[str, Any]) -> list[Any]:
    """Every finished run record of the bench in ``out``: the run files first (what :meth:`_Bench.done` reads
    first; a killed bench's newest), then bench.json's."""
    recs: list[Any] = []
    folder = out / RUNS_DIR
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            recs.append(json.loads(f.read_text()))
        except (OSError, ValueError):  # not a run file of this bench: the bench never reads it either
            continue
    return recs + list(saved.get("runs") or [])


def _owned_budgets(saved: dict[str, Any], owned: dict[str, Any]) -> dict[str, list[float] | None]:
    """The scratch variants the fair-baseline rule added to the saved bench, each with the budgets its config gave
    it (None: every budget), for :func:`fair_baseline`'s ``owned``. Read back from a file: a name the saved config
    does not hold, or budgets of a foreign shape, are left out."""
    bench = (saved.get("config") or {}).get("bench") if isinstance(saved.get("config"), dict) else None
    if not isinstance(bench, dict):
        return {}
    variants, budgets = bench.get("variants") or {}, bench.get("arm_budgets") or {}
    if not isinstance(variants, dict) or not isinstance(budgets, dict):
        return {}
    out: dict[str, list[float] | None] = {}
    for name in owned:
        b = budgets.get(name)
        if name in variants and (b is None or (isinstance(b, list) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in b))):
            out[name] = None if b is None else [float(x) for x in b]
    return out


def _added_record(before: dict[str, Any], now: dict[str, str]) -> dict[str, Any]:
    """bench.json's ``fair_baseline_added``: what the rule added, ever, and why; a widening is said after the reason
    the variant was added (the last widening only)."""
    out = dict(before)
    for k, why in now.items():
        first = str(out.get(k, "")).split(f"; {WIDENED}")[0]
        out[k] = f"{first}; {why}" if why.startswith(WIDENED) and first and not first.startswith(WIDENED) else why
    return out


def _run_file(out: Path, label: str, seed: int, budget: float) -> Path:
    return inside(out, RUNS_DIR, f"{check_name(label, 'bench arm or variant name')}__seed{seed}__budget{budget:g}.json")


class _Bench:
    def __init__(self, cfg: RunConfig, out: Path, resume: bool, extend: bool = False,
                 teacher: Any = None) -> None:
        self.t0 = time.perf_counter()
        self.own_teacher = teacher  # a trained nn.Module from Python instead of teacher.checkpoint
        self.resume = resume or extend  # an extension is a resume with a larger config
        check_out_dir(out)
        # The bench already in ``out`` (read once; empty for a new bench): what a resume or extension continues.
        path = out / "bench.json"
        self.saved: dict[str, Any] = json.loads(path.read_text()) if self.resume and path.is_file() else {}
        # The fair baseline's scratch variants, judged by the schedules finished runs trained with where there are
        # some: a new bench and an extension add them; a resume adds none to a config saved with them (a config
        # given again from Python gets them back, and one saved before the rule gets what it lacks).
        found = _finished_records(out, self.saved) if self.resume else []
        owned = self.saved.get("fair_baseline_added")  # read back from a file: a foreign shape owns nothing
        self.owned: dict[str, Any] = owned if isinstance(owned, dict) else {}
        cfg, self.added = fair_baseline(cfg, recorded_levers(found), owned=_owned_budgets(self.saved, self.owned))
        self.cfg, self.out, self.extend = cfg, out, extend
        if extend:
            old = resume_config(out, "--extend")  # refuses a directory that holds no bench
            problems = extend_problems(old, cfg)
            if problems:
                raise ConfigError([*problems[:-1], problems[-1] + " (nothing was changed)"])
        elif not resume and ((out / "bench.json").exists() or (out / RUNS_DIR).exists()):
            raise ConfigError([f"{out} already holds a bench; continue it with `fspladder bench --resume {out}`, add "
                               f"arms to it with `fspladder bench CONFIG --extend {out}`, or choose another --out "
                               "(nothing was changed)"])
        elif resume and "summary" in self.saved:
            raise ConfigError([f"{out} holds a finished bench; nothing to resume (nothing was changed); to add arms, "
                               f"seeds or budgets to it: `fspladder bench CONFIG --extend {out}`"])
        self.prior = float(self.saved.get("seconds", 0.0))
        self.plans: dict[tuple[str, int], list[RungTask]] = {}  # arm_plan's, per (arm, seed)

    def prepare(self) -> None:
        cfg = self.cfg
        self.device = resolve_device(cfg.device)
        # Every check `check --bench` makes, the bench's arms included, before any work.
        pf = preflight(cfg, bench=True, device=self.device, teacher_module=self.own_teacher, baseline=False)
        pf.raise_problems()
        pf.print_warnings()
        for k, why in self.added.items():  # recorded in bench.json too (fair_baseline_added)
            print(fair_baseline_line(k, why), file=sys.stderr)
        assert pf.data is not None and pf.teacher is not None and pf.arms is not None  # no problem: all built
        self.data = pf.data.to(self.device)
        self.log: Any = MetricsLog(inside(self.out, "metrics.jsonl"), hold=True)
        self.mf = memory_format(cfg)
        self.teacher, self.tck, self.other_classes = pf.teacher, pf.teacher_ck, pf.other_classes
        self.teacher.model.to(self.device, memory_format=self.mf)  # preflight loaded it on the CPU
        self.full = full_epochs(cfg)
        found = pf.arms
        self.arms, self.shapes, self.skipped = found.arms, found.shapes, found.skipped
        for k, why in self.skipped.items():  # recorded in bench.json and bench.md too
            print(f"bench: arm {k} skipped, its recipe cannot apply here: {why}", file=sys.stderr)
        # Each arm's own engine context, so a variant's amp, teacher_amp, compile or eval_batch_size takes effect.
        self.ctxs = {a.label: context_for(a.cfg, self.device, self.data, self.log) for a in self.arms}

    def protocol(self) -> dict[str, Any]:
        """What the teacher and the arms trained on, as fingerprints of the training images' indices."""
        meta = self.tck["meta"]
        arms_fp = self.data.train.fingerprint(self.data.name)
        teacher_fp = meta.get("train_fingerprint")
        return {"arms_train_images": len(self.data.train), "arms_fingerprint": arms_fp,
                "teacher_train_images": meta.get("train_images"), "teacher_fingerprint": teacher_fp,
                "same_training_images": None if teacher_fp is None else teacher_fp == arms_fp}

    def teacher_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"model": self.tck["model"], "source": self.tck["source"], "trained": self.tck["meta"]}
        if self.other_classes is None:
            ctx = next(iter(self.ctxs.values()))
            rec["val_acc"] = evaluate(self.teacher.model, self.data.val, ctx)
            rec["test_acc"] = evaluate(self.teacher.model, self.data.test, ctx)
        return rec

    def done(self, label: str, seed: int, budget: float) -> dict[str, Any] | None:
        """The finished run's record: its run file, else the one bench.json holds (a bench kept without its runs/
        folder, as one committed to a repository that ignores it, is extended without training its runs again)."""
        f = _run_file(self.out, label, seed, budget)
        if f.is_file():
            return json.loads(f.read_text())
        return next((r for r in self.saved.get("runs") or [] if isinstance(r, dict) and r.get("arm") == label
                     and r.get("seed") == seed and r.get("budget") == budget), None)

    def budgets_to_run(self, arm: Arm, seed: int) -> list[float]:
        """The budgets ``arm`` still has to train at for ``seed``: its own (``bench.arm_budgets``), not yet done."""
        own = self.cfg.bench.arm_budgets.get(arm.label, self.cfg.bench.budgets)
        return [bu for bu in self.cfg.bench.budgets if bu in own and self.done(arm.label, seed, bu) is None]

    def arm_plan(self, arm: Arm, seed: int) -> list[RungTask]:
        """The arm's tasks for ``seed`` (:func:`fspladder.chain.arm_tasks`), its target's stage 2 at every budget
        not yet done (empty when all are); made once per session, so the estimate's phases and the training are
        the same tasks (the clock follows them by identity)."""
        key = (arm.label, seed)
        if key not in self.plans:
            budgets = self.budgets_to_run(arm, seed)
            self.plans[key] = arm_tasks(arm.cfg, arm.rungs, arm.recipe, arm.label, seed, budgets,
                                        self.full) if budgets else []
        return self.plans[key]

    def run_arm(self, arm: Arm, seed: int) -> None:
        tasks = self.arm_plan(arm, seed)
        if not tasks:
            return

        def record(task: RungTask, run: Stage2Run, r2: Stage2Result, done: list[TaskOutcome]) -> None:
            """Each budget's record as it finishes (a kill keeps the budgets done): the target's, with what the
            intermediates before it (a ladder arm's) cost on the pipeline clock; an intermediate's run has none."""
            if run.budget is None:
                return
            chain = [{"rung": t.rung.name, "stage1_seconds": o.stage1.train_seconds if o.stage1 else 0.0,
                      "stage1_steps": o.stage1.steps_run if o.stage1 else 0,
                      "stage2_seconds": o.stage2[0].train_seconds, "val_acc": o.stage2[0].val_acc[-1]}
                     for t, o in zip(tasks, done[:-1])]
            r1, s2 = done[-1].stage1, run.cfg
            pre = sum(c["stage1_seconds"] + c["stage2_seconds"] for c in chain) + (r1.train_seconds if r1 else 0.0)
            rec = {"arm": arm.label, "base_arm": arm.base, "recipe": arm.recipe.as_dict(), "seed": seed,
                   "budget": run.budget, "epochs": r2.epochs, "val_acc": r2.val_acc, "test_acc": r2.test_acc,
                   "train_acc": r2.train_acc, "target_seconds": r2.train_seconds,
                   "pipeline_seconds": pre + r2.train_seconds, "pre_seconds": pre, "init": done[-1].init,
                   "stage1_seconds": r1.train_seconds if r1 else 0.0, "stage1_steps": r1.steps_run if r1 else 0,
                   "fsp_loss_start": r1.fsp_loss_start if r1 else None, "fsp_loss_end": r1.fsp_loss_end if r1 else None,
                   "chain": chain, "kd_off": r2.kd_off, "lr": s2.lr,
                   "schedule": r2.schedule, "ema": r2.ema, "growth_noise": s2.growth_noise,
                   "val_acc_raw": r2.val_acc_raw or None}
            budget = float(run.budget)  # type: ignore[arg-type]  # a bench's runs always have one
            atomic_write_json(_run_file(self.out, arm.label, seed, budget), rec)
            kill_point(f"bench-run:{arm.label}:{seed}:{budget:g}")

        train_chain(self.teacher, tasks, self.ctxs[arm.label], self.shapes[arm.label], self.device, self.mf,
                    on_stage2=record)

    def all_runs(self) -> list[dict[str, Any]]:
        """Every finished run's record, in the bench's own order (seed, arm, budget), whatever order they ran in."""
        out = []
        for seed in bench_seeds(self.cfg):
            for arm in self.arms:
                for budget in self.cfg.bench.budgets:
                    rec = self.done(arm.label, seed, budget)
                    if rec is not None:
                        out.append(rec)
        return out

    def record(self, final: bool) -> dict[str, Any]:
        b = self.cfg.bench
        bench = {"config": config_to_dict(self.cfg), "machine": machine_info(self.device),
                 "precision": {a.label: {"amp": c.amp, "teacher_amp": c.teacher_amp} for a, c in
                               zip(self.arms, self.ctxs.values())},
                 "arms": [a.label for a in self.arms], "recipes": {a.label: a.recipe.as_dict() for a in self.arms},
                 "skipped": self.skipped, "fair_baseline_added": _added_record(self.owned, self.added),
                 "budgets": b.budgets, "full_epochs": self.full, "teacher": self.teacher_rec,
                 "protocol": self.protocol(), "runs": self.all_runs(),
                 "seconds": self.prior + time.perf_counter() - self.t0}
        if final:
            bench["summary"] = summarize(bench["runs"], bench["arms"], b.budgets, b.target_accuracy,
                                         self.teacher_rec.get("val_acc"))
        return bench

    def estimate(self) -> None:
        """Profile the bench's stages and print its predicted wall time; the clock then follows the training."""
        try:
            plans = [ArmPlan(self.ctxs[arm.label], self.shapes[arm.label], tasks)
                     for seed in bench_seeds(self.cfg) for arm in self.arms if (tasks := self.arm_plan(arm, seed))]
            self.est = estimate_bench(self.teacher, plans, time.perf_counter() - self.t0,
                                      teacher_eval=self.other_classes is None,
                                      memory_format=self.mf) if estimate_wanted() else None
        except Exception as e:  # the estimate is a courtesy: its failure (e.g. memory) must not stop the bench
            print(f"estimate unavailable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                  "the bench goes on", file=sys.stderr)
            self.est = None
        self.clock = RunClock(self.est) if self.est is not None else None
        if self.clock is not None:  # it hears every arm's steps and records once it listens to the log (run)
            print(self.est.line(), file=sys.stderr)

    def continuation(self) -> list[str]:
        """Why the runs in ``out`` cannot be continued here: another machine (their seconds would not compare),
        other training images, or another teacher behind the same checkpoint name."""
        old = self.saved
        flag, err = ("--extend" if self.extend else "--resume"), []
        now = _as_read(machine_info(self.device))
        was = old.get("machine")
        if was is not None and was != now:
            diff = "; ".join(f"{k} {was.get(k)} -> {now.get(k)}" for k in sorted(was.keys() | now.keys())
                             if was.get(k) != now.get(k))
            err.append(f"{flag} {self.out}: this machine or its settings differ from those that trained the bench's "
                       f"runs ({diff}), so the new runs' seconds would not compare with theirs; continue it there "
                       "(with the same thread count), or start a new bench")
        if "protocol" in old and old["protocol"] != _as_read(self.protocol()):
            err.append(f"{flag} {self.out}: the training images or the teacher's differ from those of the bench's "
                       f"runs (fingerprints {old['protocol']}); point data and teacher where they were")
        moved = self.schedule_changes()
        if moved:
            err.append(f"{flag} {self.out}: {'; '.join(moved)}: the finished runs of these arms trained with another "
                       "stage-2 schedule (a recipe default changed since), so new runs under the same names would not "
                       "compare with theirs; start a new bench (its variants can give each schedule), or continue "
                       "this one with the fspladder version that trained it")
        trained = (old.get("teacher") or {}).get("trained")
        if trained is not None and trained != _as_read(self.tck["meta"]):
            err.append(f"{flag} {self.out}: the teacher checkpoint {self.cfg.teacher.checkpoint} is not the one the "
                       "bench's runs learned from (retrained or replaced); restore it, or start a new bench")
        return err

    def schedule_changes(self) -> list[str]:
        """Each arm or variant with runs still to train whose finished runs recorded another learning-rate curve
        or weight average than it would train with now, as ``label (was -> now)``: the config says the same (a
        null key: the recipe's default) while a default changed under it, which the config comparison of an
        extension cannot see. An arm with nothing left to train adds no run under its name, and its finished runs
        keep their own record of the schedule (the summary reads it), so it may stay beside new arms. The runs are
        read from bench.json and from this bench's own run files; records without a schedule (older benches) say
        nothing, and records without ``ema`` nothing on the average."""
        recs = [r for r in _finished_records(self.out, self.saved) if isinstance(r, dict)]
        # the curve and the weight average (a run records its decay as ``ema``, None without one)
        now = {a.label: _as_read({**schedule_record(s2), "ema": s2.ema or None}) for a in self.arms
               if any(self.budgets_to_run(a, seed) for seed in bench_seeds(self.cfg))
               for s2 in [full_budget_plan(a)[-1].s2]}
        out: dict[str, str] = {}
        for rec in recs:
            label, was = rec.get("arm"), rec.get("schedule")
            if label not in now or label in out or not isinstance(was, dict):
                continue
            want = dict(now[label])
            if "ema" in rec:  # older records lack it: they say nothing on the average
                was = {**was, "ema": rec["ema"]}
            else:
                del want["ema"]
            if isinstance(rec.get("epochs"), (int, float)) and isinstance(want.get("warmup_epochs"), (int, float)):
                want["warmup_epochs"] = min(want["warmup_epochs"], rec["epochs"])  # a budget clips its warm-up
            if want != was:
                out[label] = f"{label} (" + ", ".join(f"{k} {was.get(k)} -> {want.get(k)}" for k in want
                                                      if was.get(k) != want.get(k)) + ")"
        return list(out.values())

    on_ready: Callable[[], None] | None = None  # run_bench's: told once every check has passed

    def run(self) -> dict[str, Any]:
        self.prepare()
        if self.resume:
            problems = self.continuation()
            if problems:
                raise ConfigError([*problems[:-1], problems[-1] + " (nothing was changed)"])
        if self.on_ready is not None:
            self.on_ready()
        self.estimate()
        self.out.mkdir(parents=True, exist_ok=True)
        inside(self.out, RUNS_DIR).mkdir(exist_ok=True)
        self.log.open()
        if self.cfg.track:  # trackers may refuse (exit 2): before the bench's files change
            from ..tracking import open_trackers

            for t in open_trackers(self.cfg.track, self.out, config_to_dict(self.cfg), "fspladder bench", bench=True):
                self.log.listen(t)
        if self.extend and self.saved:
            # Unfinished again, before the config changes: a kill from here on is continued by `--resume`.
            unfinished = {k: v for k, v in self.saved.items() if k not in ("summary", "estimate")}
            atomic_write_json(inside(self.out, "bench.json"), unfinished)
        if not self.resume or self.extend or self.added:  # every check has passed: the bench's config is now this
            atomic_write_bytes(inside(self.out, BENCH_CONFIG),
                               yaml.safe_dump(config_to_dict(self.cfg), sort_keys=False).encode())
        if self.clock is not None:
            self.log.listen(self.clock)
        for tmp in (self.out / RUNS_DIR).glob(".*.tmp"):
            tmp.unlink()
        failed = True
        try:
            self.log({"event": "bench_start", "resume": self.resume, "skipped": self.skipped})
            self.teacher_rec = self.teacher_record()
            for seed in bench_seeds(self.cfg):
                for arm in self.arms:
                    self.log({"event": "arm_start", "arm": arm.label, "seed": seed})
                    self.run_arm(arm, seed)
                    atomic_write_json(inside(self.out, "bench.json"), self.record(final=False))
            failed = False
        finally:
            self.log.close(failed)
        bench = self.record(final=True)
        if self.est is not None:
            measured = time.perf_counter() - self.t0  # this session, as the estimate was made for it
            bench["estimate"] = {**self.est.to_dict(), "measured_seconds": measured,
                                 "predicted_over_measured": self.est.total / measured}
        atomic_write_json(inside(self.out, "bench.json"), bench)
        atomic_write_bytes(inside(self.out, "bench.md"), format_bench_md(bench).encode())
        plot_bench(bench, inside(self.out, "curves.png"))
        return bench


def run_bench(cfg: RunConfig, out: str | Path, resume: bool = False, extend: bool = False,
              teacher: Any = None, *, on_ready: Callable[[], None] | None = None) -> dict[str, Any]:
    """Train every arm at every budget for every seed; write bench.json, bench.md and curves.png.

    With ``resume``, ``out`` holds a killed bench: its finished runs are kept and the rest run. With ``extend``,
    ``out`` holds a bench (finished or not) and ``cfg`` adds arms, variants, seeds or budgets to it
    (:func:`extend_problems` says what may change): its finished runs are kept, the new ones run, and the summary
    covers them all. ``bench.json``'s ``seconds`` add up every session. ``teacher``: a trained ``nn.Module`` from
    Python instead of ``teacher.checkpoint`` (its normalisation in ``cfg.teacher.preprocessing``).
    ``on_ready``: called once every check has passed, before anything is written or trained.
    """
    bench = _Bench(cfg, out_folder(out, "out"), resume, extend, teacher)
    bench.on_ready = on_ready
    return bench.run()


def bench_config_path(out: str | Path, flag: str = "--resume") -> Path:
    """The config file of the bench in ``out``; refuses a directory that holds no bench."""
    path = Path(out) / BENCH_CONFIG
    if not path.is_file():
        raise ConfigError([f"{flag} {out}: no {BENCH_CONFIG} there; is it the --out directory of a bench?"])
    return path


def resume_config(out: str | Path, flag: str = "--resume") -> RunConfig:
    """The config a bench directory was started with."""
    return load_config(bench_config_path(out, flag))

