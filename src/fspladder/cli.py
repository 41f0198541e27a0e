"""Command-line interface: ``fspladder run | bench | plan | check | report | train | layers | models``."""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import datetime
from pathlib import Path

__all__ = ["main"]


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config; omitted = the built-in default (Fashion-MNIST ladder)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set stage2.epochs=5 --set rungs.1.model=resnet32")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _load(args: argparse.Namespace, pre: list[str] | None = None):
    from .config import load_config

    overrides = list(pre or []) + list(args.overrides)
    if args.no_progress:
        overrides.append("progress=false")
    return load_config(args.config, overrides)


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .distributed import init_from_env
    from .runner import format_table, run_ladder

    if args.resume:
        from .config import load_config

        if args.config or args.overrides or args.out:
            raise ConfigError(["--resume DIR continues DIR with the config saved there (DIR/config.yaml); "
                               "drop CONFIG, --set and --out"])
        out = Path(args.resume)
        if not (out / "config.yaml").is_file():
            raise ConfigError([f"--resume {out}: no config.yaml there; is it the --out directory of a run?"])
        cfg = load_config(out / "config.yaml", ["progress=false"] if args.no_progress else [])
        dist = init_from_env(cfg.device)
        if dist.is_main:
            print(f"fspladder run: resuming {out}", file=sys.stderr)
        summary = run_ladder(cfg, out, resume=True, dist=dist)
    else:
        cfg = _load(args)
        dist = init_from_env(cfg.device)
        if dist.enabled and not args.out:
            raise ConfigError(["under torchrun give --out DIR, so that every process writes to the same place"])
        out = Path(args.out or f"runs/{datetime.now():%Y%m%d-%H%M%S}")
        if dist.is_main:
            print(f"fspladder run -> {out}" + (f" ({dist.world} processes)" if dist.enabled else ""), file=sys.stderr)
        summary = run_ladder(cfg, out, dist=dist)
    if dist.enabled:  # leave together: a rank exiting mid-teardown makes gloo abort the others
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    if not dist.is_main:
        return 0
    print(format_table(summary))
    print(f"outputs in {out}/ (summary.json, metrics.jsonl, config.yaml, checkpoints)")
    return _report_unless(args, out)


def _report_unless(args: argparse.Namespace, out: Path) -> int:
    """Write report.html into ``out`` unless --no-report was given."""
    if not args.no_report:
        from .report import write_report

        print(f"report: {write_report(out)}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .check import check_config
    from .config import read_config_data

    _, problems = check_config(read_config_data(args.config, args.overrides))
    if problems:
        print(f"{len(problems)} problem(s) in {args.config or 'the default config'}:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 2
    print(f"{args.config or 'default config'}: OK (config, data, teacher checkpoint, models, taps, ladder)")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .ladder import Rung
    from .plan import format_plan, run_plan
    from .runner import _pairs, load_data, resolve_device

    pre = []
    if args.time_budget is not None:
        pre.append(f"plan.time_budget={args.time_budget}")
    if args.target_accuracy is not None:
        pre.append(f"plan.target_accuracy={args.target_accuracy}")
    if args.planning_budget is not None:
        pre.append(f"plan.planning_budget={args.planning_budget}")
    cfg = _load(args, pre)
    device = resolve_device(cfg.device)
    data = load_data(cfg).to(device)
    teacher, ck = load_model(cfg.teacher.checkpoint, {"name": cfg.teacher.model, "kwargs": cfg.teacher.kwargs})
    teacher.to(device, memory_format=torch_channels_last(cfg))
    plan = run_plan(cfg, data, device, Rung("teacher", teacher, _pairs(cfg.teacher, teacher), ck["model"]))
    print(format_plan(plan))
    if args.out:
        from .checkpoint import atomic_write_json

        atomic_write_json(Path(args.out) / "plan.json", plan)
    return 0 if plan["choice"] else 2


def torch_channels_last(cfg):
    import torch

    return torch.channels_last if cfg.channels_last else torch.preserve_format


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(write_report(args.run_dir))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import PRESETS, format_bench_md, run_bench

    pre = list(PRESETS[args.preset]) if args.preset else []
    if args.seeds is not None:
        pre.append(f"bench.seeds={args.seeds}")
    if args.budgets:
        pre.append(f"bench.budgets=[{args.budgets}]")
    if args.arms:
        pre.append(f"bench.arms=[{args.arms}]")
    if args.target_accuracy is not None:
        pre.append(f"bench.target_accuracy={args.target_accuracy}")
    cfg = _load(args, pre)
    out = Path(args.out or f"runs/bench-{datetime.now():%Y%m%d-%H%M%S}")
    print(f"fspladder bench -> {out}", file=sys.stderr)
    if args.micro:
        from .micro import run_micro

        run_micro(out, cfg)
    bench = run_bench(cfg, out)
    print(format_bench_md(bench))
    print(f"outputs in {out}/ (bench.json, bench.md, curves.png)")
    return _report_unless(args, out)


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import ModelConfig
    from .runner import train_network

    cfg = _load(args)
    mc = ModelConfig(model=args.model)
    command = "fspladder " + " ".join(shlex.quote(a) for a in args.argv)
    meta = train_network(cfg, mc, args.save, command)
    print(f"{args.model}: val acc {meta['val_acc']:.4f}, test acc {meta['test_acc']:.4f}, "
          f"{meta['seconds']:.0f} s -> {args.save}")
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    from .layers import layer_table

    try:
        shape = tuple(int(s) for s in args.input_shape.split(","))
    except ValueError:
        raise SystemExit(f"--input-shape must be C,H,W integers like 1,28,28, got {args.input_shape!r}") from None
    print(layer_table(args.model, shape, num_classes=args.num_classes))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    print("\n".join(list_models()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fspladder", description=(
        "Train a large network faster by transferring the information flow (FSP matrices) of a small "
        "trained network through networks of growing size (Yim et al. CVPR 2017; KR 10-2063377)."))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a ladder: teacher -> intermediates -> target")
    _add_config_args(p)
    p.add_argument("--out", help="output directory (default runs/DATE-TIME)")
    p.add_argument("--resume", metavar="DIR", help="continue a killed run in DIR from its last completed epoch")
    p.add_argument("--no-report", action="store_true", help="skip writing report.html at the end")
    p.set_defaults(fn=_cmd_run)

    p = sub.add_parser("plan", help="choose how many intermediates from measured cost and probe accuracy")
    _add_config_args(p)
    p.add_argument("--time-budget", type=float, help="seconds the whole pipeline may take")
    p.add_argument("--target-accuracy", type=float, help="target probe validation accuracy to reach")
    p.add_argument("--planning-budget", type=float, help="seconds the planning itself may take (default 300)")
    p.add_argument("--out", help="also write plan.json into this directory")
    p.set_defaults(fn=_cmd_plan)

    p = sub.add_parser("check", help="validate a config (keys, data, checkpoint, taps, ladder) without training")
    _add_config_args(p)
    p.set_defaults(fn=_cmd_check)

    p = sub.add_parser("report", help="write report.html (FSP heatmaps, curves, timings) for a run or bench dir")
    p.add_argument("run_dir", help="the --out directory of `fspladder run` or `fspladder bench`")
    p.set_defaults(fn=_cmd_report)

    p = sub.add_parser("bench", help="accuracy vs training seconds: ladder, direct, scratch, soft targets, growth")
    _add_config_args(p)
    p.add_argument("--preset", choices=["quick", "full"], help="quick: ~1 h on 2 CPU cores; full: whole data set")
    p.add_argument("--seeds", type=int, help="number of seeds (default 3)")
    p.add_argument("--budgets", help="stage-2 budgets as fractions of the full epochs, e.g. 0.25,0.5,1")
    p.add_argument("--arms", help="comma-separated arms from scratch,direct,ladder,soft,grow,grow-fsp "
                   "(default: all but grow-fsp)")
    p.add_argument("--target-accuracy", type=float, help="accuracy for time-to-target (default: scratch at full budget)")
    p.add_argument("--micro", action="store_true", help="also time one stage-1 step vs one CE step, and fsp_matrix")
    p.add_argument("--out", help="output directory (default runs/bench-DATE-TIME)")
    p.add_argument("--no-report", action="store_true", help="skip writing report.html at the end")
    p.set_defaults(fn=_cmd_bench)

    p = sub.add_parser("train", help="train one network from scratch with cross-entropy (e.g. a teacher)")
    _add_config_args(p)
    p.add_argument("--model", required=True, help="registered model name, e.g. resnet8")
    p.add_argument("--save", required=True, help="checkpoint file to write")
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("layers", help="list a model's tap-able modules with their output shapes")
    p.add_argument("model", help="registered model name, e.g. resnet20")
    p.add_argument("--input-shape", default="3,32,32", help="C,H,W of one input (default 3,32,32)")
    p.add_argument("--num-classes", type=int, default=10)
    p.set_defaults(fn=_cmd_layers)

    p = sub.add_parser("models", help="list registered models")
    p.set_defaults(fn=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataFileError
    from .engine import DivergenceError
    from .flow import TapError
    from .ladder import LadderError
    from .report import ReportError
    from .plan import PlanError
    from .runner import ResumeError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.fn(args)
    except (ConfigError, LadderError, TapError, CheckpointError, DataFileError, DivergenceError, ReportError, ResumeError, PlanError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"fspladder {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fspladder {args.command}: interrupted; finished rungs' checkpoints are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
