"""Micro-benchmarks: the cost of a stage-1 step and of the FSP matrix itself.

* one stage-1 step (frozen previous network to its last tap + student to its
  last tap + FSP loss + backward + update) against one cross-entropy step of
  the same student, same batch;
* :func:`fspladder.fsp_matrix` (batched matmul) against the broadcast form
  ``(a.unsqueeze(2) * b.unsqueeze(1)).mean(-1)`` used by some public code:
  median time, and peak memory measured as the growth of the process's
  peak resident set size (VmHWM) in a fresh subprocess per variant (CPU) or
  ``torch.cuda.max_memory_allocated`` (GPU).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .checkpoint import atomic_write_json
from .config import RunConfig, parse_config
from .flow import FlowRecorder, FsPair, flow_of, fsp_matrix, taps_of
from .fold import fold_batchnorm
from .losses import fsp_loss
from .models import create_model
from .names import inside
from .precision import autocast_for, resolve_amp, resolve_teacher_amp

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


def step_ratio(cfg: RunConfig, device: torch.device, batch: int = 128, repeats: int = 10) -> dict[str, Any]:
    """Median seconds of one stage-1 step and one CE step of the target, and their ratio."""
    c, (h, w), k = 1, (28, 28), 10
    torch.manual_seed(0)
    target = cfg.rungs[-1]
    student = create_model(target.model, in_chans=c, num_classes=k, **target.kwargs).to(device)
    prev = create_model(cfg.rungs[-2].model if len(cfg.rungs) > 1 else "resnet8", in_chans=c, num_classes=k).to(device)
    mf = torch.channels_last if cfg.channels_last else torch.preserve_format
    student.to(memory_format=mf)
    prev.to(memory_format=mf).eval()
    x = torch.randn(batch, c, h, w, device=device).contiguous(memory_format=mf)
    y = torch.randint(0, k, (batch,), device=device)
    pairs = [FsPair.parse(p) for p in student.default_fsp_pairs]
    taps = taps_of(pairs)
    opt = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def ce_step():
        loss = F.cross_entropy(student(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # As train_stage1 runs it: the frozen network folded, under the resolved teacher_amp (precision.py).
    amp = resolve_amp(cfg.amp, device)
    teacher_amp = resolve_teacher_amp(cfg.teacher_amp, amp, device)
    prev, _ = fold_batchnorm(prev, taps)
    rs, rp = FlowRecorder(student, taps, stop_early=True), FlowRecorder(prev, taps, stop_early=True)

    def fsp_step():
        with torch.no_grad(), autocast_for(device, teacher_amp):
            gp = flow_of(rp.run(x), pairs)
        loss = fsp_loss(flow_of(rs.run(x), pairs), gp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with rs, rp:
        t_fsp = _median_time(fsp_step, repeats, sync)
    t_ce = _median_time(ce_step, repeats, sync)
    return {"student": target.model, "previous": prev.__class__.__name__, "batch": batch, "input": [c, h, w],
            "teacher_amp": teacher_amp, "ce_step_s": t_ce, "stage1_step_s": t_fsp, "ratio": t_fsp / t_ce}


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
    lines = [f"stage-1 step (frozen network folded, teacher_amp {s['teacher_amp']}) vs CE step "
             f"({s['student']}, batch {s['batch']}, input {s['input']}): "
             f"{s['stage1_step_s'] * 1e3:.1f} ms vs {s['ce_step_s'] * 1e3:.1f} ms = {s['ratio']:.2f}x",
             "fsp_matrix (bmm) vs broadcast-and-mean:",
             f"{'B,m,n,h,w':>22}  {'bmm ms':>8}  {'bcast ms':>9}  {'speedup':>7}  "
             f"{'bmm peak MiB':>12}  {'bcast peak MiB':>14}"]
    for r in res["fsp"]:
        shape = f"{r['B']},{r['m']},{r['n']},{r['h']},{r['w']}"
        lines.append(f"{shape:>22}  {r['bmm_s'] * 1e3:8.2f}  {r['broadcast_s'] * 1e3:9.2f}  {r['speedup']:6.1f}x  "
                     f"{r['bmm_peak_bytes'] / 2**20:12.1f}  {r['broadcast_peak_bytes'] / 2**20:14.1f}")
    return "\n".join(lines)


def run_micro(out: str | Path, cfg: RunConfig | None = None, device: str = "auto") -> dict[str, Any]:
    """Run both micro-benchmarks, print them and write ``micro.json`` with the machine they ran on."""
    from .session import machine_info, resolve_device

    cfg = cfg or parse_config({})
    dev = resolve_device(device if device != "auto" else cfg.device)
    res = {"machine": machine_info(dev), "step": step_ratio(cfg, dev), "fsp": fsp_costs(dev)}
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(inside(out, "micro.json"), res)
    print(format_micro(res))
    return res


if __name__ == "__main__":
    import sys

    print(json.dumps(run_micro(sys.argv[1] if len(sys.argv) > 1 else "runs/micro")["step"], indent=1))
