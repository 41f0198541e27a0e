"""The validation accuracy after the first stage-2 epoch of one bench arm, for a few seeds.

Made to check docs/results.md's ImageNet-layout pair, where grow-kd and grow-w2s stood at 0.8598 after their
first epoch for all three seeds: the arm is built, grown and trained exactly as `fspladder bench` does
(bench.run's rung functions, the full budget's schedule), and stopped after its first epoch.

    python scripts/first_epoch_probe.py configs/resnet-imagenet.yaml grow-kd 0 100 200
    python scripts/first_epoch_probe.py configs/resnet-imagenet.yaml grow-kd 0 100 --set stage2.growth_noise=0
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

from fspladder.bench.run import _Bench
from fspladder.config import load_config
from fspladder.rung import init_rung, stage2_of_rung, student_rung


class _FirstEpochDone(Exception):
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="a bench config (the arm must be one of its arms or variants)")
    ap.add_argument("arm", help="the arm or variant to probe, e.g. grow-kd")
    ap.add_argument("seeds", nargs="+", type=int, help="seeds as the bench numbers them (0, 100, 200, ...)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = ap.parse_args()
    bench = _Bench(load_config(args.config, args.set), Path(tempfile.mkdtemp()), resume=False)
    bench.prepare()
    arm = next((a for a in bench.arms if a.label == args.arm), None)
    if arm is None or len(arm.rungs) != 1:
        raise SystemExit(f"{args.arm}: not a target-only arm of {args.config} ({[a.label for a in bench.arms]})")
    ctx, trc = bench.ctxs[arm.label], arm.rungs[-1]
    s1 = arm.cfg.stage_for(trc, "stage1")
    s2 = copy.copy(arm.cfg.stage_for(trc, "stage2", arm.recipe))
    for seed in args.seeds:
        target = student_rung(trc, bench.data, seed + 7, bench.device, bench.mf)  # the bench's seeding
        init_rung(bench.teacher, target, arm.recipe, seed + 7, s2.growth_noise)

        def log(rec: dict, seed: int = seed) -> None:
            if rec.get("stage") == 2 and rec.get("epoch") == 1:
                print(f"{args.arm} seed {seed}: epoch 1 val_acc {rec['val_acc']:.4f}, "
                      f"train_loss {rec['train_loss']:.4f}")
                raise _FirstEpochDone

        ctx.log = log
        try:
            stage2_of_rung(bench.teacher, target, arm.recipe, s1, s2, ctx, seed=seed, name="probe", eval_test=False)
        except _FirstEpochDone:
            pass


if __name__ == "__main__":
    main()
