"""Micro-benchmarks: the cost of a stage-1 step and of the FSP matrix itself.

* one stage-1 step of the target against the network before it against one
  cross-entropy step of the target, on the config's data, both timed by the
  whole-run estimate's profiler (the engine's own steps, not a hand-built
  copy), compared per training image;
* :func:`fspladder.fsp_matrix` (batched matmul) against the broadcast form
  ``(a.unsqueeze(2) * b.unsqueeze(1)).mean(-1)`` used by some public code:
  median time, and peak memory measured as the growth of the process's
  peak resident set size (VmHWM) in a fresh subprocess per variant (CPU) or
  ``torch.cuda.max_memory_allocated`` (GPU).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from .chain import build_chain, run_tasks
from .check import preflight
from .checkpoint import atomic_write_json
from .config import ConfigError, RunConfig, parse_config
from .engine import TrainContext
from .errors import FspladderError
from .estimate import StageProfiler, forked_rng
from .flow import fsp_matrix
from .ladder import Rung
from .names import inside
from .recipes import PRESETS
from .rung import chain_problems
from .session import context_for, machine_info, memory_format, resolve_device

__all__ = ["run_micro", "step_ratio", "fsp_costs", "FSP_SIZES"]

# (B, m, n, h, w): stem/section sizes of CIFAR ResNets at batch 128, and a wide one.
FSP_SIZES = [(128, 16, 16, 32, 32), (128, 16, 32, 16, 16), (128, 32, 64, 8, 8), (64, 64, 128, 16, 16)]


def _median_time(fn, repeats: int, sync) -> float:
    times = []
    for i in range(repeats + 2):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        if i >= 2:  # two warm-up calls
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def step_ratio(cfg: RunConfig, ctx: TrainContext, teacher: Rung) -> dict[str, Any]:
    """Seconds of one stage-1 step of the config's target against the network before it, and of one
    cross-entropy step of the target, each the median of the whole-run estimate's engine steps
    (:class:`fspladder.estimate.StageProfiler`: the real stage code, on ``ctx``'s data), and their ratio per
    training image (the two stages' batch sizes may differ)."""
    tasks = run_tasks(cfg, recipe=PRESETS["patent"])
    chain = build_chain(teacher, tasks, ctx.data, ctx.device, memory_format(cfg))
    shapes, problems = chain_problems(chain, [t.recipe for t in tasks], [t.s1 for t in tasks],
                                      (ctx.data.in_chans, *ctx.data.image_size), None)
    if problems:
        raise ConfigError(problems)
    prev, cur, task = chain[-2], chain[-1], tasks[-1]
    with forked_rng(ctx.device):
        prof = StageProfiler(ctx)
        s1 = prof.stage1(prev, cur, task, (shapes[-2], shapes[-1]))
        s2 = prof.stage2(prev, cur, dataclasses.replace(task, recipe=PRESETS["scratch"]), task.s2)
    b1, b2 = task.s1.batch_size, task.s2.batch_size
    return {"student": cur.spec["name"], "previous": prev.spec["name"], "stage1_batch": b1, "stage2_batch": b2,
            "input": [ctx.data.in_chans, *ctx.data.image_size], "teacher_amp": ctx.teacher_amp,
            "ce_step_s": s2["step"], "stage1_step_s": s1["step"], "ratio": (s1["step"] / b1) / (s2["step"] / b2),
            "method": "median engine steps of the whole-run estimate's profiler (fspladder.estimate.StageProfiler)"}


def _broadcast(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(2), b.flatten(2)  # (B, m, hw), (B, n, hw)
    return (a.unsqueeze(2) * b.unsqueeze(1)).mean(-1)  # materialises (B, m, n, hw)


def _peak_rss_kib() -> int:
    """This process's peak resident set (KiB). Linux's VmHWM belongs to the current address
    space; ru_maxrss would also carry the parent's peak across exec, hiding the child's own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_child(variant: str, size: tuple[int, ...], q) -> None:
    torch.set_num_threads(1)
    bsz, m, n, h, w = size
    a, b = torch.randn(bsz, m, h, w), torch.randn(bsz, n, h, w)
    before = _peak_rss_kib()
    (fsp_matrix if variant == "bmm" else _broadcast)(a, b)
    q.put((_peak_rss_kib() - before) * 1024)  # KiB -> bytes


def _peak_bytes(variant: str, size: tuple[int, ...], device: torch.device) -> int:
    if device.type == "cuda":
        bsz, m, n, h, w = size
        a, b = torch.randn(bsz, m, h, w, device=device), torch.randn(bsz, n, h, w, device=device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        (fsp_matrix if variant == "bmm" else _broadcast)(a, b)
        return torch.cuda.max_memory_allocated(device) - base
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_rss_child, args=(variant, size, q))
    p.start()
    p.join()
    return int(q.get(timeout=5))


def fsp_costs(device: torch.device, sizes=FSP_SIZES, repeats: int = 10) -> list[dict[str, Any]]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for size in sizes:
        bsz, m, n, h, w = size
        a, b = torch.randn(bsz, m, h, w, device=device), torch.randn(bsz, n, h, w, device=device)
        torch.testing.assert_close(fsp_matrix(a, b), _broadcast(a, b), rtol=1e-4, atol=1e-4)
        t_bmm = _median_time(lambda: fsp_matrix(a, b), repeats, sync)
        t_bc = _median_time(lambda: _broadcast(a, b), repeats, sync)
        rows.append({"B": bsz, "m": m, "n": n, "h": h, "w": w, "bmm_s": t_bmm, "broadcast_s": t_bc,
                     "speedup": t_bc / t_bmm, "bmm_peak_bytes": _peak_bytes("bmm", size, device),
                     "broadcast_peak_bytes": _peak_bytes("broadcast", size, device),
                     "broadcast_intermediate_bytes": 4 * bsz * m * n * h * w})
    return rows


def format_micro(res: dict[str, Any]) -> str:
    s = res["step"]
    head = s["error"] if "error" in s else (
        f"stage-1 step (batch {s['stage1_batch']}, teacher_amp {s['teacher_amp']}) vs CE step (batch "
        f"{s['stage2_batch']}) of {s['student']} after {s['previous']}, input {s['input']}: "
        f"{s['stage1_step_s'] * 1e3:.1f} ms vs {s['ce_step_s'] * 1e3:.1f} ms = {s['ratio']:.2f}x per image")
    return "\n".join([head, "fsp_matrix (bmm) vs broadcast-and-mean:",
                      f"{'B,m,n,h,w':>22}  {'bmm ms':>8}  {'bcast ms':>9}  {'speedup':>7}  "
                      f"{'bmm peak MiB':>12}  {'bcast peak MiB':>14}", *_fsp_rows(res)])


def _fsp_rows(res: dict[str, Any]) -> list[str]:
    rows = []
    for r in res["fsp"]:
        shape = f"{r['B']},{r['m']},{r['n']},{r['h']},{r['w']}"
        rows.append(f"{shape:>22}  {r['bmm_s'] * 1e3:8.2f}  {r['broadcast_s'] * 1e3:9.2f}  {r['speedup']:6.1f}x  "
                    f"{r['bmm_peak_bytes'] / 2**20:12.1f}  {r['broadcast_peak_bytes'] / 2**20:14.1f}")
    return rows


def run_micro(out: str | Path, cfg: RunConfig | None = None, device: str = "auto", *,
              ctx: TrainContext | None = None, teacher: Rung | None = None) -> dict[str, Any]:
    """Run both micro-benchmarks, print them and write ``micro.json`` with the machine they ran on. ``ctx`` and
    ``teacher``: the data's engine context and the teacher already loaded (a bench's); else both are loaded
    from ``cfg`` after `check`'s checks."""
    cfg = cfg or parse_config({})
    dev = resolve_device(device if device != "auto" else cfg.device)
    try:  # a step ratio this config cannot give (its data, its chain) is said in micro.json, not a failure
        if ctx is None or teacher is None:
            pf = preflight(cfg, device=dev)
            pf.raise_problems()
            assert pf.data is not None and pf.teacher is not None  # no problem: preflight built them
            ctx = context_for(cfg, dev, pf.data.to(dev))
            ctx.progress = False
            teacher = pf.teacher
            teacher.model.to(dev, memory_format=memory_format(cfg))
        step: dict[str, Any] = step_ratio(cfg, ctx, teacher)
    except FspladderError as e:
        step = {"error": f"no stage-1 step ratio for this config: {e}"}
    res = {"machine": machine_info(dev), "step": step, "fsp": fsp_costs(dev)}
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(inside(out, "micro.json"), res)
    print(format_micro(res))
    return res


if __name__ == "__main__":
    import sys

    print(json.dumps(run_micro(sys.argv[1] if len(sys.argv) > 1 else "runs/micro")["step"], indent=1))
