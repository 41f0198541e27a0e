"""Images per second: a hand-written PyTorch loop vs fspladder's stage 2 and stage 1.

Stage 1 is measured with the frozen previous network's forward pass in every
step (the default, needed when stage 1 augments), once under the frozen
network's default autocast (``teacher_amp: auto``: bf16 where the device has
native bf16, see fspladder/precision.py) and once in float32, and with its FSP
matrices computed once before training (``stage1.cache_teacher``, inputs
un-augmented); for the cached form the one-off cache pass is timed separately.
The student always trains in float32 here, as does the hand-written loop.

All of them train the same model at the same batch size on the same device,
from the same device-resident uint8 data with the same batched crop+flip
augmentation and normalisation, so the ratios show what fspladder's engine
(hooks, divergence guard, schedules, logging) costs on top of plain PyTorch.

    python benchmarks/throughput.py                      # CPU, Fashion-MNIST-shaped data
    python benchmarks/throughput.py --device cuda --steps 200
    python benchmarks/throughput.py --dry-run            # a few steps, to check the script runs

Writes results/throughput-<device>.json (numbers plus the machine they ran on).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import bench_parser

from fspladder import FsPair, create_model
from fspladder.config import Stage1Config, Stage2Config
from fspladder.data import DataSplits, ImageSet, apply_augment, draw_augment, normalize
from fspladder.engine import TrainContext, train_stage1, train_stage2
from fspladder.flow import FlowRecorder, flow_of, taps_of
from fspladder.fold import fold_batchnorm
from fspladder.precision import resolve_teacher_amp
from fspladder.recipes import PRESETS
from fspladder.session import machine_info


def fake_fmnist(n: int, device: torch.device) -> DataSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    s = ImageSet(x, y)
    small = ImageSet(x[:8], y[:8])
    return DataSplits(s, small, small, 10, (0.286,), (0.353,), "synthetic").to(device)


def hand_loop(model, data: DataSplits, batch: int, steps: int, device: torch.device) -> float:
    """The plain loop: index, augment, normalise, forward, cross-entropy, backward, SGD step. Seconds."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data.train), generator=gen)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for i in range(steps):
        idx = perm[i * batch : (i + 1) * batch].to(device)
        x = apply_augment(data.train.x[idx], draw_augment(batch, 2, True, gen), 2)
        x = normalize(x, data.mean, data.std).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), data.train.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    return time.perf_counter() - t


@torch.no_grad()
def teacher_pass(prev, pairs, data: DataSplits, ctx: TrainContext, batch: int, steps: int) -> float:
    """Stage 1's share for the frozen network alone: batch, augment, folded forward to the last tap,
    FSP matrices (as ``train_stage1`` does it). Seconds."""
    fast, _ = fold_batchnorm(prev, taps_of(pairs))
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data.train), generator=gen)
    sync = torch.cuda.synchronize if ctx.device.type == "cuda" else (lambda: None)
    with FlowRecorder(fast, taps_of(pairs), stop_early=True) as rec:
        sync()
        t = time.perf_counter()
        for i in range(steps):
            x, _ = ctx.batch(data.train, perm[i * batch : (i + 1) * batch], True, gen)
            with ctx.teacher_autocast():
                flow_of(rec.run(x), pairs)
        sync()
    return time.perf_counter() - t


@torch.no_grad()
def target_error(prev, pairs, data: DataSplits, ctx: TrainContext, batch: int) -> list[float]:
    """Relative Frobenius error, per pair, of the frozen network's FSP matrices under ``ctx.teacher_amp``
    against float32, on one batch: what the cheaper forward pass costs in target accuracy."""
    fast, _ = fold_batchnorm(prev, taps_of(pairs))
    x, _ = ctx.batch(data.train, torch.arange(batch), False, torch.Generator().manual_seed(0))
    with FlowRecorder(fast, taps_of(pairs), stop_early=True) as rec:
        exact = flow_of(rec.run(x), pairs)
        with ctx.teacher_autocast():
            cheap = flow_of(rec.run(x), pairs)
    return [((a - b).norm() / a.norm()).item() for a, b in zip(exact, cheap)]


def main() -> None:
    ap = bench_parser(__doc__, "2 steps, 1 repeat: check that it runs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--prev", default="resnet14", help="the frozen previous network in stage 1")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    a = ap.parse_args()
    if a.dry_run:
        a.steps, a.repeats = 2, 1
    device = torch.device(a.device)
    data = fake_fmnist(a.batch * a.steps, device)
    teacher_amp = resolve_teacher_amp("auto", "off", device)  # what `fspladder run` picks with amp off
    ctx = TrainContext(device=device, data=data, progress=False, eval_batch_size=1000, teacher_amp=teacher_amp)
    ctx32 = TrainContext(device=device, data=data, progress=False, eval_batch_size=1000)  # frozen net in float32

    def fresh(name):
        torch.manual_seed(0)
        return create_model(name, in_chans=1, num_classes=10).to(device, memory_format=torch.channels_last)

    prev = fresh(a.prev).eval()
    pairs = [FsPair.parse(p) for p in prev.default_fsp_pairs]
    s2 = Stage2Config(epochs=1, batch_size=a.batch).resolved(PRESETS["patent"])  # the patent recipe's schedule
    s1 = Stage1Config(epochs=1.0, batch_size=a.batch)
    s1c = Stage1Config(epochs=1.0, batch_size=a.batch, augment=False, cache_teacher=True)
    hand_loop(fresh(a.model), data, a.batch, min(3, a.steps), device)  # warm-up (allocator, kernels)
    secs: dict[str, list[float]] = {k: [] for k in (
        "hand_loop", "stage2", "stage1", "stage1_float32_teacher", "stage1_cached", "teacher_cache_pass",
        "teacher_share_of_stage1", "teacher_share_float32")}
    for _ in range(a.repeats):  # interleaved, so drifts in machine load hit all of them alike
        secs["hand_loop"].append(hand_loop(fresh(a.model), data, a.batch, a.steps, device))
        secs["stage2"].append(train_stage2(fresh(a.model), s2, ctx, "bench").train_seconds)
        secs["stage1"].append(train_stage1(fresh(a.model), pairs, prev, pairs, s1, ctx, "bench").train_seconds)
        secs["stage1_float32_teacher"].append(
            train_stage1(fresh(a.model), pairs, prev, pairs, s1, ctx32, "bench").train_seconds)
        r = train_stage1(fresh(a.model), pairs, prev, pairs, s1c, ctx, "bench")
        secs["stage1_cached"].append(r.train_seconds - r.cache_seconds)
        secs["teacher_cache_pass"].append(r.cache_seconds)
        secs["teacher_share_of_stage1"].append(teacher_pass(prev, pairs, data, ctx, a.batch, a.steps))
        secs["teacher_share_float32"].append(teacher_pass(prev, pairs, data, ctx32, a.batch, a.steps))
    ips = {k: a.batch * a.steps / statistics.median(v) for k, v in secs.items()}
    res = {"machine": machine_info(device), "model": a.model, "prev": a.prev, "batch": a.batch, "steps": a.steps,
           "repeats": a.repeats, "teacher_amp": teacher_amp,
           "teacher_amp_target_error": target_error(prev, pairs, data, ctx, a.batch), "images_per_second": ips,
           "stage2_over_hand_loop": ips["stage2"] / ips["hand_loop"],
           "stage1_step_cost_in_ce_steps": ips["stage2"] / ips["stage1"],
           "stage1_float32_teacher_step_cost_in_ce_steps": ips["stage2"] / ips["stage1_float32_teacher"],
           "stage1_cached_step_cost_in_ce_steps": ips["stage2"] / ips["stage1_cached"],
           "teacher_cache_pass_cost_per_image_in_ce_steps": ips["stage2"] / ips["teacher_cache_pass"],
           # Where a live stage-1 step's time goes: the frozen network's part (batch prep included,
           # which a CE step has too) and the rest (student to its last tap, its FSP, backward, step).
           "teacher_share_in_ce_steps": ips["stage2"] / ips["teacher_share_of_stage1"],
           "teacher_share_float32_in_ce_steps": ips["stage2"] / ips["teacher_share_float32"],
           "cache_bytes_per_image": r.cache_bytes_per_image, "seconds": secs}
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / f"throughput-{device.type}{'-dry' if a.dry_run else ''}.json"
    path.write_text(json.dumps(res, indent=2))
    print(f"{a.model}, batch {a.batch}, {a.steps} steps x {a.repeats} repeats on {res['machine'].get('gpu', device)}:")
    for k, v in ips.items():
        print(f"  {k:24s} {v:9.1f} images/s")
    print(f"  stage 2 / hand-written loop: {res['stage2_over_hand_loop']:.3f}x throughput")
    print(f"  one stage-1 step costs {res['stage1_step_cost_in_ce_steps']:.3f} cross-entropy steps "
          f"(frozen network under teacher_amp {teacher_amp}); "
          f"{res['stage1_float32_teacher_step_cost_in_ce_steps']:.3f} with it in float32")
    print(f"  with the teacher's FSP cached: {res['stage1_cached_step_cost_in_ce_steps']:.3f} cross-entropy steps, "
          f"plus a one-off pass of {res['teacher_cache_pass_cost_per_image_in_ce_steps']:.3f} CE steps' time per "
          f"batch ({res['cache_bytes_per_image']} bytes per image)")
    print(f"  the frozen network's FSP matrices under teacher_amp {teacher_amp} differ from float32 by "
          + ", ".join(f"{e:.2%}" for e in res["teacher_amp_target_error"]) + " (relative Frobenius, per pair)")
    print(f"  of a live stage-1 step, the frozen {a.prev}'s batch + forward + FSP alone costs "
          f"{res['teacher_share_in_ce_steps']:.3f} CE steps ({res['teacher_share_float32_in_ce_steps']:.3f} in float32)")
    print(f"  -> {path}")


if __name__ == "__main__":
    main()
