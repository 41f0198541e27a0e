"""The validation accuracy after the first stage-2 epoch of one bench arm, for a few seeds.

Made to check docs/results.md's ImageNet-layout pair, where grow-kd and grow-w2s stood at 0.8598 after their
first epoch for all three seeds: the arm is built, grown and trained exactly as `fspladder bench` does
(the bench's own chain plan, fspladder.chain.arm_tasks, the full budget's schedule), and stopped after its
first epoch.

    python scripts/first_epoch_probe.py configs/resnet-imagenet.yaml grow-kd 0 100 200
    python scripts/first_epoch_probe.py configs/resnet-imagenet.yaml grow-kd 0 100 --set stage2.growth_noise=0
    OMP_NUM_THREADS=1 python scripts/first_epoch_probe.py configs/resnet-imagenet.yaml grow-kd 0 100 200 --save p1.pt
    OMP_NUM_THREADS=2 python scripts/first_epoch_probe.py configs/resnet-imagenet.yaml grow-kd 0 --against p1.pt

Besides each seed's accuracy it prints how its predictions agree with the teacher's and the other seeds', how
many images only one of two seeds gets right, and the largest parameter difference between them: the same
count of right answers need not mean the same answers.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
import torch.nn as nn

from fspladder.chain import arm_tasks, build_student, full_epochs, run_stage1, run_stage2
from fspladder.check import preflight
from fspladder.config import load_config
from fspladder.data import ImageSet
from fspladder.engine import TrainContext
from fspladder.models import logits_of
from fspladder.session import context_for, memory_format, resolve_device


class _FirstEpochDone(Exception):
    pass


@torch.no_grad()
def predictions(model: nn.Module, data: ImageSet, ctx: TrainContext) -> torch.Tensor:
    """Eval-mode argmax of ``model`` on every image of ``data``, ``(N,)``, as fspladder's evaluate scores them."""
    was = model.training
    model.eval()
    step = ctx.eval_batch_size
    chunks = [torch.arange(i, min(len(data), i + step)) for i in range(0, len(data), step)]
    out = []
    for x_uint8 in data.stream(chunks):
        with ctx.autocast():
            out.append(logits_of(model(ctx.prepare(x_uint8, False, None))).argmax(1).cpu())
    model.train(was)
    return torch.cat(out)


def _agree(a: torch.Tensor, b: torch.Tensor) -> str:
    return f"{(a == b).float().mean().item():.4f} ({int((a != b).sum())} differ)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="a bench config (the arm must be one of its arms or variants)")
    ap.add_argument("arm", help="the arm or variant to probe, e.g. grow-kd")
    ap.add_argument("seeds", nargs="+", type=int, help="seeds as the bench numbers them (0, 100, 200, ...)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--save", metavar="PATH", help="save each seed's epoch-1 validation predictions here")
    ap.add_argument("--against", metavar="PATH", help="compare each seed's predictions with a --save of another "
                    "run of the same seeds (e.g. at another thread count: what float rounding alone changes)")
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    device = resolve_device(cfg.device)
    pf = preflight(cfg, bench=True, device=device)  # the bench's own checks and arms
    pf.raise_problems()
    assert pf.data is not None and pf.teacher is not None and pf.arms is not None
    data, teacher = pf.data.to(device), pf.teacher
    teacher.model.to(device, memory_format=memory_format(cfg))
    arm = next((a for a in pf.arms.arms if a.label == args.arm), None)
    if arm is None or len(arm.rungs) != 1:
        raise SystemExit(f"{args.arm}: not a target-only arm of {args.config} ({[a.label for a in pf.arms.arms]})")
    shapes = pf.arms.shapes[arm.label]
    val = data.val
    y = val.y.cpu()
    teacher_pred = predictions(teacher.model, val, context_for(arm.cfg, device, data))
    print(f"teacher: val_acc {(teacher_pred == y).float().mean().item():.4f} on {len(val)} images")
    preds: dict[int, torch.Tensor] = {}
    weights: dict[int, dict[str, torch.Tensor]] = {}
    for seed in args.seeds:
        # the bench's own task for this seed at the full budget (fspladder.chain.arm_tasks): its seeds, its schedule
        task = arm_tasks(arm.cfg, arm.rungs, arm.recipe, arm.label, seed, [1.0], full_epochs(arm.cfg))[-1]
        target = build_student(task, data, device, memory_format(cfg))

        def log(rec: dict, seed: int = seed, model: nn.Module = target.model) -> None:
            if rec.get("stage") == 2 and rec.get("epoch") == 1:
                p = predictions(model, val, ctx)
                preds[seed] = p
                weights[seed] = {k: v.detach().cpu().clone() for k, v in model.named_parameters()}
                print(f"{args.arm} seed {seed}: epoch 1 val_acc {rec['val_acc']:.4f} ({int((p == y).sum())} right), "
                      f"train_loss {rec['train_loss']:.4f}; agrees with the teacher {_agree(p, teacher_pred)}")
                raise _FirstEpochDone

        ctx = context_for(arm.cfg, device, data, log)
        ctx.progress = False
        run_stage1(teacher, target, task, ctx, (shapes[0], shapes[1]))  # the recipe's init (and stage 1, if any)
        grown = predictions(target.model, val, ctx)
        print(f"{args.arm} seed {seed}: as started val_acc {(grown == y).float().mean().item():.4f}, "
              f"agrees with the teacher {_agree(grown, teacher_pred)}")
        try:
            run_stage2(teacher, target, task, dataclasses.replace(task.stage2[0], name="probe", eval_test=False), ctx)
        except _FirstEpochDone:
            pass
    seeds = list(preds)
    for i, a in enumerate(seeds):  # the same count of right answers need not mean the same answers
        for b in seeds[i + 1:]:
            right_a, right_b = preds[a] == y, preds[b] == y
            diff = max((weights[a][k] - weights[b][k]).abs().max().item() for k in weights[a])
            print(f"seeds {a} and {b}: predictions agree {_agree(preds[a], preds[b])}; right for one only: "
                  f"{int((right_a & ~right_b).sum())} / {int((right_b & ~right_a).sum())}; largest parameter "
                  f"difference {diff:.4f}")
    if args.save:
        torch.save(preds, args.save)
    if args.against:
        other = torch.load(args.against)
        for seed in (s for s in seeds if s in other):
            print(f"seed {seed} against {args.against}: {int((other[seed] == y).sum())} right there, "
                  f"{int((preds[seed] == y).sum())} here; predictions agree {_agree(preds[seed], other[seed])}")


if __name__ == "__main__":
    main()
