"""Run a whole ladder from a :class:`RunConfig` into a run directory (layout: :mod:`fspladder.outputs`).

Everything that can be checked is checked before anything is written: the
data, the teacher against the data, every model, the chain's order and FSP
shapes, and every rung's recipe. A refused run leaves no file behind.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import yaml

from .chain import FLOW_BATCH, RungTask, build_chain, run_tasks, train_task
from .check import preflight
from .checkpoint import (
    atomic_write_bytes,
    atomic_write_json,
    check_writable,
    json_safe,
    load_checkpoint,
    save_checkpoint,
)
from .config import ConfigError, ModelConfig, RunConfig, config_to_dict
from .data import DataSplits
from .distributed import DistInfo
from .engine import Stage1Result, evaluate, schedule_record, train_stage2
from .estimate import EpochLines, RunClock, estimate_ladder, estimate_wanted
from .faults import kill_point
from .names import check_name, inside
from .outputs import (
    CONFIG_FILE,
    LEGACY_CONFIG_FILE,
    PYTHON_DATA,
    PYTHON_TEACHER,
    SESSION_SECONDS,
    STATE_FILE,
    MetricsLog,
    NoLog,
    ResumeError,
    check_out_dir,
    load_state,
    out_folder,
    prior_seconds,
    save_flows,
    save_state,
)
from .rung import RungOutcome, chain_problems, teacher_digest
from .session import context_for, machine_info, memory_format, resolve_device

__all__ = ["run_ladder", "train_network", "format_table", "ResumeError", "run_config_path", "refuse_taken"]


def _summary_to_resume(out: Path) -> dict[str, Any] | None:
    """The summary.json of the run in ``out`` (None when there is none yet), refused in one line when it is not one
    fspladder wrote (its finished rungs are read from it: a name, a checkpoint)."""
    f = out / "summary.json"
    if not f.is_file():
        return None
    try:
        prev = json.loads(f.read_text())
        rungs = prev.get("rungs", []) if isinstance(prev, dict) else None
        ok = isinstance(rungs, list) and all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in rungs)
    except (ValueError, UnicodeDecodeError, OSError):  # JSONDecodeError is a ValueError
        ok = False
    if not ok:
        raise ResumeError(f"{f} is not a summary fspladder wrote (unreadable, or its rungs lack their names); restore "
                          "it from a backup, or start the run again in another --out (nothing was changed)")
    return prev


def refuse_taken(out: Path) -> None:
    """:class:`ResumeError` when ``out`` already holds a run (a new run would mix its files with it); before any
    work, planning included (:func:`fspladder.plan_and_run` asks first)."""
    check_out_dir(out)
    if any((out / f).exists() for f in ("summary.json", STATE_FILE, "metrics.jsonl", CONFIG_FILE)):
        raise ResumeError(f"{out} already holds a run; continue it with `fspladder run --resume {out}` or "
                          "choose another --out (nothing there was changed)")


def run_config_path(out: Path) -> Path:
    """The config a run directory was run with (older runs wrote config.yaml)."""
    return out / CONFIG_FILE if (out / CONFIG_FILE).is_file() else out / LEGACY_CONFIG_FILE


def train_network(cfg: RunConfig, mc: ModelConfig, save: str | Path, command: str = "") -> dict[str, Any]:
    """Train one network from scratch with cross-entropy (stage 2 alone) and save it.

    This is how a teacher is made; the checkpoint records what it was trained
    on (preprocessing, classes, input shape) and how well it does, so a ladder
    can report it and ``fspladder predict`` can use it on its own.
    """
    from .recipes import PRESETS

    check_writable(save)  # before any training: an existing file or a folder is refused now, not after
    if not isinstance(cfg, RunConfig) or not isinstance(mc, ModelConfig):
        raise ConfigError([f"train_network takes a RunConfig and a ModelConfig, got {type(cfg).__name__} and "
                           f"{type(mc).__name__}"])
    recipe = PRESETS["scratch"]
    device = resolve_device(cfg.device)
    pf = preflight(cfg, train=mc, device=device)  # `check`'s checks, for this network: nothing runs before them
    pf.raise_problems()
    pf.print_warnings()
    assert pf.data is not None and pf.model is not None and pf.spec is not None  # no problem: preflight built them
    data = pf.data.to(device)
    s2 = cfg.stage2.resolved(recipe)
    # one line per epoch, on a terminal and in a piped log alike (the bars show on a terminal only)
    ctx = context_for(cfg, device, data, EpochLines(s2.epochs))
    model, spec = pf.model, pf.spec  # built with cfg.seed, as build_student would again
    model.to(device, memory_format=memory_format(cfg))
    result = train_stage2(model, s2, ctx, mc.model, seed=cfg.seed)
    meta = {"data": data.name, "classes": cfg.data.classes, "train_images": len(data.train),
            "train_fingerprint": data.train.fingerprint(data.name), "train_subset": cfg.data.train_subset,
            "val_size": cfg.data.val_size, "seed": cfg.seed, "stage2": config_to_dict(s2),
            "val_acc": result.val_acc[-1], "test_acc": result.test_acc[-1], "train_acc": result.train_acc,
            "seconds": result.seconds, "command": command, "machine": machine_info(device),
            "torch": torch.__version__, "preprocessing": data.describe()}
    save_checkpoint(save, model, spec, meta)
    return meta


class _Run:
    """One session of a ladder run: validated chain, outputs, the rungs' training."""

    def __init__(self, cfg: RunConfig, out: Path, resume: bool, dist: DistInfo, data: DataSplits | None,
                 teacher: nn.Module | None = None, plan: dict[str, Any] | None = None) -> None:
        self.t0 = time.perf_counter()
        self.plan = plan  # the planner's record when the apps planned this chain (plan.auto)
        self.own_data, self.own_teacher = data, teacher
        self.cfg, self.out, self.resume, self.dist, self.main = cfg, out, resume, dist, dist.is_main
        self.done: dict[str, dict[str, Any]] = {}
        self.state: dict[str, Any] | None = None
        self.prior = 0.0
        if self.main:
            check_out_dir(out)
        if resume and cfg.plan.intermediates == "auto":
            raise ResumeError(f"a resume continues the chain that was planned: load {out / CONFIG_FILE} (its "
                              "intermediates spelled out) instead of a config with plan.intermediates: auto")
        if cfg.plan.intermediates == "auto":  # the planner sits above the runner: it plans, then calls it
            raise ConfigError(["plan.intermediates: auto is planned before the run: call fspladder.plan_and_run(cfg, "
                               "out) (what `fspladder run` does), or list the rungs and set plan.intermediates: "
                               "fixed"])
        if resume:
            self.check_teacher_resumes()
            prev = _summary_to_resume(out)
            if prev is not None and "target" in prev:
                acc = prev["target"].get("test_acc") if isinstance(prev["target"], dict) else None
                said = f" (target test accuracy {acc:.4f})" if isinstance(acc, (int, float)) else ""
                raise ResumeError(f"{out} holds a finished run{said}; there is nothing to resume and nothing was "
                                  f"changed (`fspladder report {out}` rewrites its report)")
            self.done = {r["name"]: r for r in (prev or {}).get("rungs", [])}
            for name, r in self.done.items():  # read back from a file: a name or path is untrusted, refused now
                check_name(name, f"{out / 'summary.json'}: a rung's name")
                inside(out, str(r.get("checkpoint") or ""))
            self.state = load_state(out, len(cfg.rungs))
            self.prior = prior_seconds(out / "metrics.jsonl")
        elif self.main:
            refuse_taken(out)

    def check_teacher_resumes(self) -> None:
        """A resume learns from the teacher the run started with: a network passed from Python again (its weights'
        digest as recorded), or ``teacher.checkpoint`` when none was; else one line, nothing changed."""
        path = run_config_path(self.out)
        try:
            saved = yaml.safe_load(path.read_text()) if path.is_file() else None
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
            raise ResumeError(f"{path} cannot be read ({type(e).__name__}); it is not the config fspladder wrote: "
                              "restore it, or start the run again in another --out (nothing was changed)") from e
        teacher = saved.get("teacher") if isinstance(saved, dict) else None
        was = isinstance(teacher, dict) and PYTHON_TEACHER in teacher
        own = self.own_teacher
        how = f"run_ladder(cfg, {str(self.out)!r}, resume=True, teacher=the same network)"
        if was and own is None:
            raise ResumeError(f"{self.out}: that run learned from a teacher passed from Python, not "
                              f"teacher.checkpoint; resume it with {how} (nothing was changed)")
        if own is not None and isinstance(teacher, dict) and not was:
            raise ResumeError(f"{self.out}: that run learned from teacher.checkpoint, not a network passed from "
                              "Python; resume it without teacher= (nothing was changed)")
        if was and isinstance(own, nn.Module):
            recorded = teacher.get("state_digest")  # type: ignore[union-attr]
            if recorded != teacher_digest(own):
                why = "differ from" if recorded else "cannot be checked (no digest recorded) against"
                raise ResumeError(f"{self.out}: the weights of the teacher passed now {why} those the run learned "
                                  f"from; resume it with {how}, or start a new run (nothing was changed)")

    def check_schedule_resumes(self) -> None:
        """A stage 2 continues on the learning-rate curve and with the weight average it started with: the resumed
        state's recorded schedule (``Stage2Result.schedule``) must be the one its rung would train with now, and its
        weight average (the "ema" weights among its modules, their decay ``Stage2Result.ema``) the one it would
        keep now, else one line, nothing changed. The config records a null key (the recipe's default) as null, so
        a default changed since (issue 32: scratch and grow from one cosine to wsd) would bend the curve mid-stage
        unseen. A state of stage 1 starts its stage 2 afresh, finished rungs are loaded, and a state saved before
        a record existed says nothing on what it lacks."""
        st = self.state
        if st is None or st["stage"] != 2:
            return
        task = self.tasks[st["rung"] - 1]
        rec = st.get("result")  # read back from a file: untrusted, so a foreign shape says nothing here
        rec = rec if isinstance(rec, dict) else {}
        was, now = rec.get("schedule"), schedule_record(task.s2)
        moved = ({k: (was.get(k), now.get(k)) for k in now if was.get(k) != now.get(k)}
                 if isinstance(was, dict) and was else {})
        mods, had = st.get("modules"), rec.get("ema")
        if isinstance(mods, dict):  # every state has its modules: an average's weights are there, or none are
            want = task.s2.ema or None
            if "ema" not in mods:
                had = None
            elif not isinstance(had, (int, float)) or isinstance(had, bool):
                had = "on" if want is None else want  # an older state: on, its decay unrecorded
            if had != want:
                moved["ema"] = (had, want)
        if moved:
            diff = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in moved.items())
            raise ResumeError(f"{self.out}: rung {task.name}'s stage 2 started with another learning-rate schedule "
                              f"or weight average than this fspladder version would continue it with ({diff}; a "
                              "recipe default changed since); continue it with the fspladder version that started "
                              "it, or start a new run (nothing was changed)")

    def seconds(self) -> float:
        """This run's seconds so far, earlier sessions of a resumed run included."""
        return self.prior + time.perf_counter() - self.t0

    def prepare(self) -> None:
        """Data, teacher, plan, chain and recipes, all checked; nothing is written yet."""
        cfg, dist = self.cfg, self.dist
        self.device = resolve_device(cfg.device, dist)
        # every check `check` makes, before any work
        pf = preflight(cfg, data=self.own_data, device=self.device, teacher_module=self.own_teacher)
        pf.raise_problems()
        if self.main:
            pf.print_warnings()
        assert pf.data is not None and pf.teacher is not None and pf.teacher_ck is not None  # no problem: built
        self.data: DataSplits = pf.data.to(self.device)
        self.log: Any = MetricsLog(inside(self.out, "metrics.jsonl"), hold=True) if self.main else NoLog()
        self.ctx = context_for(cfg, self.device, self.data, self.log, dist)
        mf = memory_format(cfg)
        self.teacher, self.tck, self.other_classes = pf.teacher, pf.teacher_ck, pf.other_classes
        self.teacher.model.to(self.device, memory_format=mf)  # preflight loaded it on the CPU
        self.tasks: list[RungTask] = run_tasks(cfg)
        self.chain = build_chain(self.teacher, self.tasks, self.data, self.device, mf)
        recipes = [t.recipe for t in self.tasks]
        self.shapes, problems = chain_problems(self.chain, recipes, [t.s1 for t in self.tasks],
                                               (self.data.in_chans, *self.data.image_size), self.other_classes)
        problems += cfg.recipe_key_problems(recipes)
        if problems:
            raise ConfigError(problems)
        self.check_schedule_resumes()
        for k, rc in enumerate(cfg.rungs, start=1):  # a RunConfig built in Python skipped the parser's name check
            self.rung_file("rung", k, rc.name, ".pt")
            self.rung_file("flow", k, rc.name, ".npz")

    def rung_file(self, kind: str, k: int, name: str, suffix: str) -> Path:
        """``OUT/KIND-K-NAME.SUFFIX``: the name checked, the path refused unless it lies inside ``OUT``."""
        return inside(self.out, f"{kind}-{k}-{check_name(name, f'rungs[{k - 1}].name')}{suffix}")

    def start_outputs(self) -> None:
        out = self.out
        if not self.main:
            return
        out.mkdir(parents=True, exist_ok=True)
        for tmp in out.glob(".*.tmp"):  # left by a kill during a write; never read
            tmp.unlink()
        if not self.resume:  # the config that runs: with auto, the planned chain, so a resume does not re-plan
            atomic_write_bytes(inside(out, CONFIG_FILE), yaml.safe_dump(self.config_record(), sort_keys=False).encode())
        self.log.open()
        for rec in self.plan_records:  # the planning that chose this chain, as it was logged then
            self.log(rec)
        if self.cfg.track:  # rank 0 only: the other ranks have no log to listen to
            from .tracking import open_trackers

            for t in open_trackers(self.cfg.track, out, self.config_record(), "fspladder run"):
                self.log.listen(t)
        # what this session spent before its log opened (loading, checks, the estimate's profile): a resume adds it
        self.log({"event": "run_start", "resume": self.resume, "prior_seconds": self.prior,
                  SESSION_SECONDS: time.perf_counter() - self.t0})

    def config_record(self) -> dict[str, Any]:
        """The config as it ran; with data passed from Python, its data section says so instead of keys that
        were not used (a CLI resume of it is refused, naming the Python call)."""
        d = config_to_dict(self.cfg)
        if self.own_data is not None:
            d["data"] = {PYTHON_DATA: self.data.name, "note": "passed to run_ladder(data=...); the config's data keys "
                         "were not used: resume with run_ladder(cfg, out, resume=True, data=the same splits)"}
        if self.own_teacher is not None:  # teacher.checkpoint was not used either: a CLI resume must not load it
            d["teacher"] = {**{k: v for k, v in d["teacher"].items() if k != "checkpoint"},
                            PYTHON_TEACHER: type(self.own_teacher).__name__,
                            "state_digest": self.tck["source"]["state_digest"],  # what a resume's teacher must match
                            "note": "passed to run_ladder(teacher=...); resume with run_ladder(cfg, out, resume=True, "
                                    "teacher=the same network)"}
        return d

    def summary_head(self) -> dict[str, Any]:
        cfg, data, ctx = self.cfg, self.data, self.ctx
        spec = self.tck["model"]
        s: dict[str, Any] = {
            "config": self.config_record(), "machine": machine_info(self.device),
            "precision": {"amp": ctx.amp, "teacher_amp": ctx.teacher_amp},  # what "auto" resolved to here
            "data": {"name": data.name, "train": len(data.train), "val": len(data.val), "test": len(data.test),
                     "num_classes": data.num_classes, "streamed": data.streamed, "preprocessing": data.describe()},
            "teacher": {"name": "teacher", "model": spec["name"], "kwargs": spec["kwargs"],
                        "params": self.teacher.num_params, "checkpoint": self.teacher.spec["checkpoint"],
                        "source": self.tck["source"], "trained": self.tck["meta"], "fsp_shapes": self.shapes[0],
                        # the normalisation it sees: teacher.preprocessing, else the data's own statistics
                        "preprocessing": {"mean": list(data.mean), "std": list(data.std),
                                          "from": "teacher.preprocessing" if cfg.teacher.preprocessing.mean
                                          is not None else "the data's statistics"}},
            "rungs": [],
        }
        if self.other_classes is None:  # a teacher trained on other classes (transfer) has no accuracy here
            s["teacher"]["val_acc"] = evaluate(self.teacher.model, data.val, ctx)
            s["teacher"]["test_acc"] = evaluate(self.teacher.model, data.test, ctx)
        else:
            s["teacher"]["no_accuracy"] = (f"not measured: {self.other_classes}, so its outputs need not mean this "
                                           "data's classes")
        return s

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.main:
            atomic_write_json(inside(self.out, "summary.json"), json_safe(summary))

    def train_rung(self, k: int, state: dict[str, Any] | None) -> dict[str, Any]:
        """Rung ``k``'s task (:func:`fspladder.chain.train_task`), saving a resumable state after every epoch, its
        FSP matrices after stage 1 and its checkpoint at the end."""
        ctx, out, main = self.ctx, self.out, self.main
        prev, cur, task = self.chain[k - 1], self.chain[k], self.tasks[k - 1]
        recipe = task.recipe
        ctx.log({"event": "rung_start", "rung": cur.name, "index": k, "params": cur.num_params,
                 "recipe": recipe.as_dict(), "resumed_stage": state["stage"] if state else None})

        def saver(flows: dict[str, Any], r1: Stage1Result | None):
            return lambda snap: main and save_state(out, k, flows, snap, r1.to_dict() if r1 else None)

        def on_flows(flows: dict[str, Any]) -> None:
            if main:
                save_flows(self.rung_file("flow", k, cur.name, ".npz"), flows, cur.pairs, prev.pairs)

        done = train_task(prev, cur, task, ctx, (self.shapes[k - 1], self.shapes[k]), resume=state, saver=saver,
                          flow_batch=FLOW_BATCH, on_flows=on_flows)
        r1, r2 = done.stage1, done.stage2[0]
        entry = RungOutcome(cur.name, cur.spec["name"], cur.spec["kwargs"], cur.num_params, prev.name,
                            recipe.as_dict(), done.init, self.shapes[k], self.shapes[k] != self.shapes[k - 1], r1, r2,
                            self.rung_file("rung", k, cur.name, ".pt").name).to_dict()
        if main:
            save_checkpoint(inside(out, entry["checkpoint"]), cur.model, cur.spec, {
                "rung": cur.name, "learns_from": prev.name, "recipe": recipe.as_dict(), "val_acc": r2.val_acc[-1],
                "test_acc": r2.test_acc[-1], "seed": task.seed, "preprocessing": self.data.describe()})
        return entry

    def estimate(self) -> None:
        """Profile the job's stages and print its predicted wall time; the clock then follows the training."""
        st = self.state
        self.est, self.clock = None, None
        if not estimate_wanted():
            return
        try:
            self.est = estimate_ladder(
                self.ctx, self.chain, self.tasks, self.shapes, time.perf_counter() - self.t0, done=set(self.done),
                stage2_only={self.chain[st["rung"]].name} if st is not None and st["stage"] == 2 else set(),
                teacher_eval=self.other_classes is None)
        except Exception as e:  # the estimate is a courtesy: its failure (e.g. memory) must not stop the run
            if self.main:
                print(f"estimate unavailable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                      "training goes on", file=sys.stderr)
            return
        self.clock = RunClock(self.est) if self.main else None
        if self.clock is not None:  # it hears steps and records once it listens to the log (run)
            print(self.est.line(), file=sys.stderr)

    on_ready: Callable[[], None] | None = None  # run_ladder's: told once every check has passed
    plan_records: list[dict[str, Any]] = []  # run_ladder's: the planner's records (never mutated: reassigned)

    def run(self) -> dict[str, Any]:
        self.prepare()
        if self.main and self.on_ready is not None:
            self.on_ready()
        self.estimate()
        self.start_outputs()
        if self.clock is not None:
            self.log.listen(self.clock)
        state = self.state
        failed = True
        rungs_seconds = 0.0
        try:
            summary = self.summary_head()
            for k in range(1, len(self.chain)):
                cur = self.chain[k]
                if cur.name in self.done:  # finished before the resume: load, never retrain
                    entry = self.done[cur.name]
                    cur.model.load_state_dict(load_checkpoint(inside(self.out, str(entry["checkpoint"])))["state_dict"])
                    cur.model.eval()
                    summary["rungs"].append(entry)
                    self.log({"event": "rung_loaded", "rung": cur.name, "checkpoint": entry["checkpoint"]})
                    continue
                t_rung = time.perf_counter()
                summary["rungs"].append(self.train_rung(k, state if state and state["rung"] == k else None))
                rungs_seconds += time.perf_counter() - t_rung  # the rungs' whole wall time: what a plan predicts
                summary["total_seconds"] = self.seconds()
                self.write_summary(summary)
                kill_point(f"rung-done:{cur.name}")
            failed = False
        finally:
            self.log.close(failed)
        target = summary["rungs"][-1]
        summary["target"] = {"name": target["name"], "test_acc": target["stage2"]["test_acc"][-1],
                             "val_acc": target["stage2"]["val_acc"][-1]}
        summary["total_seconds"] = self.seconds()
        if self.resume:
            summary["resumed"] = True
            summary["seconds_before_resume"] = self.prior
        if self.plan is not None:  # the plan predicted the rungs' training: steps, evaluation, writes
            summary["plan"] = {**self.plan, "measured_seconds": rungs_seconds,
                               "predicted_over_measured": self.plan["choice"]["predicted_seconds"] / rungs_seconds}
        if self.est is not None:
            measured = time.perf_counter() - self.t0  # this session, as the estimate was made for it
            summary["estimate"] = {**self.est.to_dict(), "measured_seconds": measured,
                                   "predicted_over_measured": self.est.total / measured}
        if self.dist.enabled:
            summary["world_size"] = self.dist.world
        self.write_summary(summary)
        return summary


def run_ladder(cfg: RunConfig, out: str | Path, resume: bool = False, dist: DistInfo | None = None,
               data: DataSplits | None = None, teacher: nn.Module | None = None, *,
               on_ready: Callable[[], None] | None = None, plan: dict[str, Any] | None = None,
               plan_records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Validate the chain, then train every rung (its recipe's init, stage 1 and stage 2) in order.

    ``data``: your own splits (``DataSplits.from_tensors`` / ``from_datasets``) instead of ``cfg.data``.
    ``teacher``: your trained network (an ``nn.Module``; a copy is used) instead of ``teacher.checkpoint``; give
    the normalisation it was trained with as ``cfg.teacher.preprocessing`` (else the data's statistics apply).
    With ``resume``, ``out`` must hold an earlier run of the same config (and the same ``data``):
    finished rungs are loaded from their checkpoints, never retrained, and the
    rung in progress continues from the last completed epoch of its stage.
    ``on_ready``: called once every check has passed, before anything is written or trained (the CLI's
    ``fspladder run -> DIR`` line). ``plan``: the planner's record when the chain was planned
    (:func:`fspladder.plan_and_run`, which plans a config with ``plan.intermediates: auto`` and then calls this;
    this function itself refuses such a config); ``plan_records``: the planner's metrics records (its probes'
    epochs), written at the head of ``metrics.jsonl``.
    """
    if not isinstance(cfg, RunConfig):
        raise ConfigError([f"run_ladder takes a RunConfig (fspladder.load_config(path, overrides)), got "
                           f"{type(cfg).__name__}"])
    if data is not None and not isinstance(data, DataSplits):
        from .data import DataFileError

        raise DataFileError(f"run_ladder(data=...) takes DataSplits, got {type(data).__name__}; see "
                            "DataSplits.from_tensors and DataSplits.from_datasets")
    run = _Run(cfg, out_folder(out, "out"), resume, dist or DistInfo(), data, teacher, plan)
    run.plan_records = plan_records or []
    run.on_ready = on_ready
    return run.run()


def format_table(summary: dict[str, Any]) -> str:
    """A short text table of the teacher and every rung."""
    t = summary["teacher"]
    rows = [("network", "model", "params", "recipe", "stage1 s", "FSP loss start->end", "stage2 s", "epochs",
             "val acc", "test acc")]
    rows.append(("teacher", t["model"], f"{t['params']:,}", "-", "-", "-", "-", "-",
                 f"{t['val_acc']:.4f}" if "val_acc" in t else "-", f"{t['test_acc']:.4f}" if "test_acc" in t else "-"))
    for r in summary["rungs"]:
        s1, s2 = r["stage1"], r["stage2"]
        recipe = r.get("recipe") or {}
        from .recipes import Recipe, recipe_name

        rec = recipe_name(Recipe(**recipe)) if recipe else "patent"
        rows.append((r["name"], r["model"], f"{r['params']:,}", rec or "/".join(recipe.values()),
                     f"{s1['seconds']:.1f}" if s1 else "-",
                     f"{s1['fsp_loss_start']:.4g} -> {s1['fsp_loss_end']:.4g}" if s1 else "-",
                     f"{s2['seconds']:.1f}", str(s2["epochs"]), f"{s2['val_acc'][-1]:.4f}",
                     f"{s2['test_acc'][-1]:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"target test accuracy {summary['target']['test_acc']:.4f}; total {summary['total_seconds']:.1f} s")
    return "\n".join(lines)
