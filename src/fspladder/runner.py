"""Run a whole ladder from a :class:`RunConfig` and write its outputs.

Out directory layout::

    config.yaml        the resolved config (every default filled in)
    metrics.jsonl      one line per epoch per stage per rung (plus events)
    rung-K-NAME.pt     checkpoint of each finished rung
    flow-K-NAME.npz    mean FSP matrices of the previous network and the student before/after stage 1
    state.pt           the unfinished stage's last completed epoch (model, optimiser, scheduler, RNG)
    summary.json       teacher and rungs: sizes, stage-1 and stage-2 records; totals
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from .checkpoint import atomic_write_bytes, atomic_write_json, load_checkpoint, load_model, save_checkpoint
from .config import ConfigError, ModelConfig, RunConfig, Stage1Config, Stage2Config, TeacherConfig, config_to_dict
from .data import DataSplits, load_cifar, load_fashion_mnist, load_idx_folder, load_image_folder
from .distributed import DistInfo
from .faults import kill_point
from .engine import FlowTarget, TrainContext, evaluate, mean_flows, train_stage1, train_stage2
from .flow import FsPair
from .align import ChannelAligner
from .ladder import LadderError, Rung, default_pairs, validate_ladder
from .models import accepted_kwargs, create_model
from .precision import native_bf16, resolve_amp, resolve_teacher_amp

__all__ = ["run_ladder", "train_network", "make_aligner", "flow_target", "ResumeError", "load_data", "resolve_device", "build_student", "MetricsLog", "format_table"]


def resolve_device(name: str, dist: DistInfo | None = None) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank if dist and dist.enabled else 0)
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available here; use device: cpu or auto")
    return dev


def load_data(cfg: RunConfig) -> DataSplits:
    d = cfg.data
    if d.name == "fashion-mnist":
        splits = load_fashion_mnist(d.root, d.val_size, cfg.seed, d.classes)
    elif d.name == "idx":
        splits = load_idx_folder(d.root, d.val_size, cfg.seed, "idx", d.classes)  # type: ignore[arg-type]
    elif d.name in ("cifar10", "cifar100"):
        splits = load_cifar(d.root, 10 if d.name == "cifar10" else 100, d.val_size, cfg.seed)  # type: ignore[arg-type]
    else:
        splits = load_image_folder(d.root, d.image_size, d.channels, d.val_size, cfg.seed)  # type: ignore[arg-type]
    if d.train_subset:
        splits.train = splits.train.subset(torch.arange(min(d.train_subset, len(splits.train))))
    if d.test_subset:
        splits.test = splits.test.subset(torch.arange(min(d.test_subset, len(splits.test))))
    return splits


class _NoLog:
    """The metrics sink of ranks other than 0."""

    def __call__(self, rec: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` and flushes each line."""

    def __init__(self, path: Path, tensorboard: str | None = None) -> None:
        self.path = path
        self._f = None  # opened on the first record, so a run refused before training leaves no file
        self._tb = None
        if tensorboard:  # optional; the config check says how to install it
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(tensorboard)

    def __call__(self, rec: dict[str, Any]) -> None:
        if self._f is None:
            self._f = open(self.path, "a", buffering=1)
        self._f.write(json.dumps({"time": round(time.time(), 3), **rec}) + "\n")
        if self._tb is not None and "rung" in rec:
            step = rec.get("epoch", rec.get("step", 0))
            stage = f"stage{rec['stage']}" if "stage" in rec else "stage1_steps"
            for k, v in rec.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("epoch", "step", "stage"):
                    self._tb.add_scalar(f"{rec['rung']}/{stage}/{k}", v, step)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
        if self._tb is not None:
            self._tb.close()


def _pairs(mc: ModelConfig | TeacherConfig, model: torch.nn.Module) -> list[FsPair]:
    return [FsPair.parse(p) for p in mc.pairs] if mc.pairs is not None else default_pairs(model)


def build_student(mc: ModelConfig, data: DataSplits, seed: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A freshly initialised student sized for ``data`` (seeded, so reruns match)."""
    kwargs = accepted_kwargs(mc.model, {"in_chans": data.in_chans, "num_classes": data.num_classes, **mc.kwargs})
    torch.manual_seed(seed)
    return create_model(mc.model, **kwargs), {"name": mc.model, "kwargs": kwargs}


def context_for(cfg: RunConfig, device: torch.device, data: DataSplits, log: Any = None,
                dist: DistInfo | None = None) -> TrainContext:
    """The engine's context for a run config (one place, for run, bench, plan and train)."""
    main = dist is None or dist.is_main
    amp = resolve_amp(cfg.amp, device)
    return TrainContext(device=device, data=data, seed=cfg.seed, channels_last=cfg.channels_last,
                        eval_batch_size=cfg.eval_batch_size, progress=cfg.progress and main,
                        crop_pad=cfg.data.crop_pad, flip=cfg.data.flip, log=log or (lambda rec: None),
                        dist=dist or DistInfo(), amp=amp,
                        teacher_amp=resolve_teacher_amp(cfg.teacher_amp, amp, device), compile=cfg.compile)


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "device": str(device), "cpu_threads": torch.get_num_threads(), "native_bf16": native_bf16(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


FLOW_BATCH = 256  # held-out images averaged for the saved FSP matrices


def _save_flows(path: Path, flows: dict[str, list[torch.Tensor]], pairs, prev_pairs) -> None:
    """``previous_i``, ``before_i``, ``after_i``: mean FSP matrices of pair ``i``, plus pair names."""
    import io

    arrays = {f"{k}_{i}": g.numpy() for k, gs in flows.items() for i, g in enumerate(gs)}
    arrays["pairs"] = np.array([str(p) for p in pairs])
    arrays["previous_pairs"] = np.array([str(p) for p in prev_pairs])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def make_aligner(cur: Rung, cur_shapes, prev: Rung, prev_shapes, allowed: bool, seed: int,
                 device: torch.device) -> ChannelAligner | None:
    """1x1 projections for a student wider than the network before it; None when shapes match."""
    if cur_shapes == prev_shapes:
        return None
    if not allowed:
        raise LadderError([f"{cur.name}: FSP shapes {cur_shapes} differ from {prev.name}'s {prev_shapes}; "
                           "set stage1.project_channels: true for this rung to align them"])
    torch.manual_seed(seed)
    return ChannelAligner(cur_shapes, prev_shapes).to(device)


@torch.no_grad()
def _num_outputs(model: torch.nn.Module, ctx: TrainContext) -> int:
    model.eval()
    return model(ctx.prepare(ctx.data.val.x[:2], False, None)).shape[-1]


def train_network(cfg: RunConfig, mc: ModelConfig, save: str | Path, command: str = "") -> dict[str, Any]:
    """Train one network from scratch with cross-entropy (stage 2 alone) and save it.

    This is how a teacher is made; the checkpoint records what it was trained
    on and how well it does, so a ladder can report it.
    """
    if cfg.stage2.fsp_weight > 0:
        raise ConfigError([f"stage2.fsp_weight is {cfg.stage2.fsp_weight}, but `fspladder train` trains one network "
                           "alone, with no previous network to align to; set stage2.fsp_weight: 0 "
                           "(or use `fspladder run` for a chain)"])
    device = resolve_device(cfg.device)
    data = load_data(cfg).to(device)
    ctx = context_for(cfg, device, data)
    model, spec = build_student(mc, data, cfg.seed)
    model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
    result = train_stage2(model, cfg.stage2, ctx, mc.model)
    meta = {"data": data.name, "classes": cfg.data.classes, "train_images": len(data.train),
            "val_size": cfg.data.val_size, "seed": cfg.seed, "stage2": config_to_dict(cfg.stage2),
            "val_acc": result["val_acc"][-1], "test_acc": result["test_acc"][-1],
            "train_acc": result["train_acc"], "seconds": result["seconds"], "command": command,
            "machine": machine_info(device), "torch": torch.__version__}
    save_checkpoint(save, model, spec, meta)
    return meta


STATE_FILE = "state.pt"  # the in-progress stage's last completed epoch, for --resume


class ResumeError(ValueError):
    """A run directory cannot be resumed."""


def _save_state(out: Path, rung: int, flows: dict[str, Any], snap: dict[str, Any],
                stage1_result: dict[str, Any] | None = None) -> None:
    import io

    buf = io.BytesIO()
    torch.save({"format": "fspladder-state-v1", "rung": rung, "flows": flows, "stage1_result": stage1_result,
                **snap}, buf)
    atomic_write_bytes(out / STATE_FILE, buf.getvalue())


def _load_state(out: Path) -> dict[str, Any] | None:
    path = out / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a partial file is impossible (atomic rename); anything else is foreign
        raise ResumeError(f"{path} cannot be read ({e}); delete it to restart the unfinished rung from scratch, "
                          "finished rungs are kept") from e
    if not isinstance(state, dict) or state.get("format") != "fspladder-state-v1":
        raise ResumeError(f"{path} is not an fspladder state file; delete it to restart the unfinished rung")
    return state


def run_ladder(cfg: RunConfig, out: str | Path, resume: bool = False, dist: DistInfo | None = None) -> dict[str, Any]:
    """Validate the chain, then train every rung (stage 1, then stage 2) in order.

    With ``resume``, ``out`` must hold an earlier run of the same config:
    finished rungs are loaded from their checkpoints, never retrained, and the
    rung in progress continues from the last completed epoch of its stage.
    """
    t_run = time.perf_counter()
    dist = dist or DistInfo()
    main = dist.is_main  # only rank 0 writes files
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for tmp in out.glob(".*.tmp") if main else []:  # left by a kill during a write; never read
        tmp.unlink()
    done: dict[str, dict[str, Any]] = {}
    state = None
    if not resume and main and any((out / f).exists() for f in ("summary.json", STATE_FILE, "metrics.jsonl")):
        raise ResumeError(f"{out} already holds a run; continue it with `fspladder run --resume {out}` or "
                          "choose another --out (nothing there was changed)")
    if resume:
        if (out / "summary.json").is_file():
            done = {r["name"]: r for r in json.loads((out / "summary.json").read_text())["rungs"]}
        state = _load_state(out)
    device = resolve_device(cfg.device, dist)
    data = load_data(cfg).to(device)
    log: Any = MetricsLog(out / "metrics.jsonl", cfg.tensorboard) if main else _NoLog()
    ctx = context_for(cfg, device, data, log, dist)
    mf = torch.channels_last if cfg.channels_last else torch.preserve_format

    # The chain: the trained teacher, then fresh students. Validate before any training.
    teacher_model, teacher_ckpt = load_model(cfg.teacher.checkpoint, {"name": cfg.teacher.model,
                                                                      "kwargs": cfg.teacher.kwargs})
    teacher_model.to(device, memory_format=mf)
    teacher_spec, teacher_meta = teacher_ckpt["model"], teacher_ckpt["meta"]
    chain = [Rung("teacher", teacher_model, _pairs(cfg.teacher, teacher_model),
                  {**teacher_spec, "checkpoint": cfg.teacher.checkpoint})]
    plan = None
    if cfg.plan.intermediates == "auto" and not resume:
        from .plan import PlanError, format_plan, run_plan

        plan = run_plan(cfg, data, device, chain[0], log)
        print(format_plan(plan), file=sys.stderr)
        if plan["choice"] is None:
            raise PlanError(plan["error"])
        cfg = planned_config(cfg, plan["choice"]["intermediates"])
    if not resume and main:  # the config that runs: with auto, the planned chain, so a resume does not re-plan
        atomic_write_bytes(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False).encode())
    for k, rc in enumerate(cfg.rungs, start=1):
        model, spec = build_student(rc, data, cfg.seed + k)
        chain.append(Rung(rc.name, model, _pairs(rc, model), spec))
    project = cfg.projects_channels()
    shapes = validate_ladder(chain, (data.in_chans, *data.image_size), project_channels=project)
    for r in chain:
        r.model.to(device, memory_format=mf)

    summary: dict[str, Any] = {
        "config": config_to_dict(cfg), "machine": machine_info(device),
        "precision": {"amp": ctx.amp, "teacher_amp": ctx.teacher_amp},  # what "auto" resolved to here
        "data": {
            "name": data.name, "train": len(data.train), "val": len(data.val), "test": len(data.test),
            "num_classes": data.num_classes},
        "teacher": {"name": "teacher", "model": teacher_spec["name"], "kwargs": teacher_spec["kwargs"],
                    "params": chain[0].num_params,
                    "checkpoint": cfg.teacher.checkpoint, "trained": teacher_meta,
                    "fsp_shapes": shapes[0]},
        "rungs": [],
    }
    if _num_outputs(teacher_model, ctx) == data.num_classes:  # else trained on other classes (transfer)
        summary["teacher"]["val_acc"] = evaluate(teacher_model, data.val, ctx)
        summary["teacher"]["test_acc"] = evaluate(teacher_model, data.test, ctx)
    try:
        for k, (prev, cur) in enumerate(zip(chain, chain[1:]), start=1):
            rc = cfg.rungs[k - 1]
            if cur.name in done:  # finished before the resume: load, never retrain
                ck = load_checkpoint(out / done[cur.name]["checkpoint"])
                cur.model.load_state_dict(ck["state_dict"])
                cur.model.eval()
                summary["rungs"].append(done[cur.name])
                log({"event": "rung_loaded", "rung": cur.name, "checkpoint": done[cur.name]["checkpoint"]})
                continue
            summary["rungs"].append(_train_rung(k, prev, cur, shapes, cfg, ctx, out,
                                                state if state and state["rung"] == k else None))
            summary["total_seconds"] = time.perf_counter() - t_run
            if main:
                atomic_write_json(out / "summary.json", summary)
            kill_point(f"rung-done:{cur.name}")
    finally:
        log.close()
    target = summary["rungs"][-1]
    summary["target"] = {"name": target["name"], "test_acc": target["stage2"]["test_acc"][-1],
                         "val_acc": target["stage2"]["val_acc"][-1]}
    summary["total_seconds"] = time.perf_counter() - t_run
    if resume:
        summary["resumed"] = True
    if plan is not None:
        measured = sum(r["stage1"]["seconds"] + r["stage2"]["seconds"] for r in summary["rungs"])
        summary["plan"] = {**plan, "measured_seconds": measured,
                           "predicted_over_measured": plan["choice"]["predicted_seconds"] / measured}
    if dist.enabled:
        summary["world_size"] = dist.world
    if main:
        atomic_write_json(out / "summary.json", summary)
    return summary


def planned_config(cfg: RunConfig, intermediates: list) -> RunConfig:
    """``cfg`` with the planned intermediate ResNets before its target and planning switched off."""
    import copy

    from .config import RungConfig

    new = copy.deepcopy(cfg)
    stage2 = {"epochs": cfg.plan.intermediate_stage2_epochs} if cfg.plan.intermediate_stage2_epochs else {}
    new.rungs = [RungConfig(model="resnet", name=f"student{i}", kwargs={"depth": d, "width": w}, stage2=dict(stage2))
                 for i, (d, w) in enumerate(intermediates, start=1)] + [cfg.rungs[-1]]
    new.plan.intermediates = "fixed"
    return new


def flow_target(cur: Rung, prev: Rung, s1: Stage1Config, s2: Stage2Config) -> FlowTarget | None:
    """Stage 2's FSP term against ``prev`` when ``stage2.fsp_weight`` > 0 (non-patent joint CE + FSP)."""
    if s2.fsp_weight <= 0:
        return None
    return FlowTarget(cur.pairs, prev.model, prev.pairs, s2.fsp_weight, s1.loss_norm, s1.pair_weights)


def _train_rung(k: int, prev: Rung, cur: Rung, shapes, cfg: RunConfig, ctx: TrainContext, out: Path,
                state: dict[str, Any] | None) -> dict[str, Any]:
    """Stage 1 and stage 2 of rung ``k``, saving a resumable state after every epoch."""
    rc = cfg.rungs[k - 1]
    main = ctx.dist.is_main
    s1, s2 = cfg.stage_for(rc, "stage1"), cfg.stage_for(rc, "stage2")
    ctx.seed = cfg.seed + k
    ctx.log({"event": "rung_start", "rung": cur.name, "index": k, "params": cur.num_params,
             "resumed_stage": state["stage"] if state else None})
    if state is not None and state["stage"] == 2:  # stage 1 had finished
        r1, flows = state["stage1_result"], state["flows"]
    else:
        aligner = make_aligner(cur, shapes[k], prev, shapes[k - 1], s1.project_channels, cfg.seed + k, ctx.device)
        x_fixed = ctx.prepare(ctx.data.val.x[:FLOW_BATCH], False, None)
        if state is None:  # mean FSP matrices on a fixed held-out batch, for the report's heatmaps
            flows = {"previous": mean_flows(prev.model, prev.pairs, x_fixed, batch_stats=False),
                     "before": mean_flows(cur.model, cur.pairs, x_fixed, batch_stats=True, aligner=aligner)}
        else:
            flows = state["flows"]
        r1 = train_stage1(cur.model, cur.pairs, prev.model, prev.pairs, s1, ctx, cur.name, aligner=aligner,
                          resume=state, on_epoch_end=lambda snap: main and _save_state(out, k, flows, snap))
        flows["after"] = mean_flows(cur.model, cur.pairs, x_fixed, batch_stats=True, aligner=aligner)
        del aligner  # projections serve stage 1 only
        if main:
            _save_flows(out / f"flow-{k}-{cur.name}.npz", flows, cur.pairs, prev.pairs)
        state = None
    r2 = train_stage2(cur.model, s2, ctx, cur.name, resume=state,
                      on_epoch_end=lambda snap: main and _save_state(out, k, flows, snap, r1),
                      joint=flow_target(cur, prev, s1, s2))
    cur.model.eval()
    entry = {"name": cur.name, "model": cur.spec["name"], "kwargs": cur.spec["kwargs"],
             "params": cur.num_params, "learns_from": prev.name, "fsp_shapes": shapes[k],
             "stage1": {k_: v for k_, v in r1.items() if k_ != "history"},
             "projected_channels": shapes[k] != shapes[k - 1],
             "stage2": r2, "checkpoint": f"rung-{k}-{cur.name}.pt"}
    if main:
        save_checkpoint(out / entry["checkpoint"], cur.model, cur.spec,
                        {"rung": cur.name, "val_acc": r2["val_acc"][-1], "test_acc": r2["test_acc"][-1]})
    return entry


def format_table(summary: dict[str, Any]) -> str:
    """A short text table of the teacher and every rung."""
    t = summary["teacher"]
    rows = [("network", "model", "params", "stage1 s", "FSP loss start->end", "stage2 s", "epochs", "val acc", "test acc")]
    rows.append(("teacher", t["model"], f"{t['params']:,}", "-", "-", "-", "-",
                 f"{t['val_acc']:.4f}" if "val_acc" in t else "-", f"{t['test_acc']:.4f}" if "test_acc" in t else "-"))
    for r in summary["rungs"]:
        s1, s2 = r["stage1"], r["stage2"]
        rows.append((r["name"], r["model"], f"{r['params']:,}", f"{s1['seconds']:.1f}",
                     f"{s1['fsp_loss_start']:.4g} -> {s1['fsp_loss_end']:.4g}", f"{s2['seconds']:.1f}",
                     str(s2["epochs"]), f"{s2['val_acc'][-1]:.4f}", f"{s2['test_acc'][-1]:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"target test accuracy {summary['target']['test_acc']:.4f}; total {summary['total_seconds']:.1f} s")
    return "\n".join(lines)
