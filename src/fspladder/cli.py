"""Command-line interface: ``fspladder run | bench | plan | check | report | train | predict | layers | models``.

An error the user can cause (any :class:`fspladder.errors.FspladderError`)
ends in one line, ``fspladder CMD: error: ...``, and exit status 2; anything
else is a bug and shows its traceback with a line asking to report it.
"""

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
    from .config import ConfigError, load_config
    from .distributed import init_from_env
    from .outputs import PYTHON_DATA, PYTHON_TEACHER
    from .plan.auto import plan_and_run
    from .runner import format_table, run_config_path, run_ladder

    if args.resume:
        if args.config or args.overrides or args.out is not None:
            raise ConfigError(["--resume DIR continues DIR with the config saved there; drop CONFIG, --set and --out"])
        out = Path(args.resume)
        path = run_config_path(out)
        if not path.is_file():
            raise ConfigError([f"--resume {out}: no resolved-config.yaml there; is it the --out directory of a run?"])
        from .config import read_config_data

        saved_cfg = read_config_data(path)
        saved = saved_cfg.get("data")
        if isinstance(saved, dict) and PYTHON_DATA in saved:
            raise ConfigError([f"--resume {out}: that run trained on data passed from Python; resume it there with "
                               f"run_ladder(cfg, {str(out)!r}, resume=True, data=the same splits)"])
        if isinstance(saved_cfg.get("teacher"), dict) and PYTHON_TEACHER in saved_cfg["teacher"]:
            raise ConfigError([f"--resume {out}: that run learned from a teacher passed from Python; resume it there "
                               f"with run_ladder(cfg, {str(out)!r}, resume=True, teacher=the same network)"])
        cfg = load_config(path, ["progress=false"] if args.no_progress else [])
        dist = init_from_env(cfg.device)
        summary = run_ladder(cfg, out, resume=True, dist=dist,  # said once every check has passed
                             on_ready=lambda: print(f"fspladder run: resuming {out}", file=sys.stderr))
    else:
        out = _out_arg(args.out, "runs/")
        cfg = _load(args)
        dist = init_from_env(cfg.device)
        if dist.enabled and args.out is None:
            raise ConfigError(["under torchrun give --out DIR, so that every process writes to the same place"])
        where = f"fspladder run -> {out}" + (f" ({dist.world} processes)" if dist.enabled else "")
        # said once every check has passed: a refused run names no folder it never made
        summary = plan_and_run(cfg, out, dist=dist, on_ready=lambda: print(where, file=sys.stderr))
    if dist.enabled:  # leave together: a rank exiting mid-teardown makes gloo abort the others
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    if not dist.is_main:
        return 0
    print(format_table(summary))
    print(f"outputs in {out}/ (summary.json, metrics.jsonl, resolved-config.yaml, checkpoints)")
    return _report_unless(args, out)


def _out_arg(value: str | None, default_prefix: str) -> Path:
    """--out as given (an empty one refused: it would quietly mean the current folder), else
    DEFAULT_PREFIX + the date and time."""
    from .outputs import out_folder

    if value is None:
        return Path(f"{default_prefix}{datetime.now():%Y%m%d-%H%M%S}")
    return out_folder(value)


def _report_unless(args: argparse.Namespace, out: Path) -> int:
    """Write report.html into ``out`` unless --no-report was given."""
    if not args.no_report:
        from .report import write_report

        print(f"report: {write_report(out)}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .check import check_config
    from .config import read_config_data

    overrides = list(args.overrides) + (["progress=false"] if args.no_progress else [])
    notes: list[str] = []
    _, problems = check_config(read_config_data(args.config, overrides), notes, bench=args.bench)
    for n in notes:
        print(n)
    if problems:
        print(f"{len(problems)} problem(s) in {args.config or 'the default config'}:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 2
    what = "config, data, teacher checkpoint, models, taps, ladder, recipes" + (", bench arms" if args.bench else "")
    print(f"{args.config or 'default config'}: OK ({what})")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from .check import preflight
    from .checkpoint import atomic_write_json
    from .config import ConfigError
    from .names import inside
    from .plan import format_plan, run_plan
    from .session import memory_format, resolve_device

    if args.measured:  # offline: recipe and schedule for the budget from finished benches; nothing trains
        return _plan_measured(args)
    pre = []
    for key, val in (("time_budget", args.time_budget), ("target_accuracy", args.target_accuracy),
                     ("planning_budget", args.planning_budget)):
        if val is not None:
            pre.append(f"plan.{key}={val}")
    cfg = _load(args, pre)
    if cfg.stage1_epochs_problems(planning=True):  # the plan would rank recipes whose stage 1 never runs
        raise ConfigError(cfg.stage1_epochs_problems(planning=True))
    if args.out is not None:
        from .outputs import check_out_dir

        check_out_dir(_out_arg(args.out, ""))
    device = resolve_device(cfg.device)
    pf = preflight(cfg, device=device)  # every check `check` makes, before any measurement
    pf.raise_problems()
    pf.print_warnings()
    data, teacher, ck = pf.data.to(device), pf.teacher, pf.teacher_ck
    teacher.model.to(device, memory_format=memory_format(cfg))  # preflight loaded it on the CPU
    plan = run_plan(cfg, data, device, teacher, teacher_meta=ck)
    print(format_plan(plan))
    if args.out:
        atomic_write_json(inside(args.out, "plan.json"), plan)
    return 0 if plan["choice"] else 2


def _plan_measured(args: argparse.Namespace) -> int:
    from .bench.results import load_bench
    from .checkpoint import atomic_write_json
    from .config import ConfigError
    from .names import inside
    from .plan.budget import choose_by_budget, curves_from_benches, format_budget_choice

    if args.time_budget is None or args.config or args.overrides or args.target_accuracy is not None \
            or args.planning_budget is not None:
        raise ConfigError(["--measured DIR... chooses recipe and schedule for --time-budget S from finished "
                           "benches and trains nothing: give it --time-budget alone (and --out)"])
    out: Path | None = None
    if args.out is not None:  # an empty --out is refused here as by plan, run and bench
        from .outputs import check_out_dir

        out = _out_arg(args.out, "")
        check_out_dir(out)
    curves = curves_from_benches([(d, load_bench(d, "--measured")) for d in args.measured])
    pick, point, why = choose_by_budget(curves, args.time_budget)
    print(format_budget_choice(curves, args.time_budget, pick, point, why))
    if out is not None:
        atomic_write_json(inside(out, "plan.json"), {
            "time_budget": args.time_budget, "measured": list(args.measured), "machine": pick.machine,
            "choice": {"arm": pick.label, "recipe": pick.recipe, "schedule": pick.schedule, "epochs": point[1],
                       "seconds": point[0], "val_acc": point[2], "reason": why}})
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(write_report(args.run_dir))
    return 0


# bench's options that train (or choose what trains): --resummarize and --frontier take none of them
_BENCH_TRAINING = ("config", "overrides", "preset", "seeds", "budgets", "arms", "target_accuracy", "micro", "out",
                   "resume", "extend")


def _bench_teacher_from_python(out: Path) -> bool:
    """Whether the bench in ``out`` recorded a teacher passed from Python (its bench.json; False when it has none
    or it cannot be read: the resume then says what is wrong)."""
    import json

    from .rung import from_python

    try:
        saved = json.loads((out / "bench.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and isinstance(saved.get("teacher"), dict) and \
        from_python(saved["teacher"].get("source"))


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import PRESETS, format_bench_md, resume_config, run_bench
    from .bench.run import bench_config_path
    from .config import ConfigError

    if args.resummarize or args.frontier:  # offline: finished benches read back, nothing trains
        from .bench.results import format_frontier, frontier, load_bench, resummarize

        if args.resummarize and args.frontier or any(v for k, v in vars(args).items() if k in _BENCH_TRAINING):
            raise ConfigError(["--resummarize and --frontier read finished benches and train nothing; give one of "
                               "them alone with its directories"])
        for d in args.resummarize or []:
            print(f"{d}: {resummarize(d)['summary']['threshold_from']['scratch']}")
        if args.frontier:
            print(format_frontier(frontier([(d, load_bench(d, "--frontier")) for d in args.frontier])), end="")
        return 0
    if args.resume:
        grid = args.arms or args.seeds is not None or args.budgets or args.target_accuracy is not None or args.micro
        if args.config or args.overrides or args.out is not None or args.preset or args.extend or grid:
            raise ConfigError(["--resume DIR continues DIR with the config saved there; drop CONFIG, --set, "
                               "--preset, --out, --extend, --arms, --seeds, --budgets, --target-accuracy and "
                               "--micro (to add arms, seeds or budgets to DIR: `fspladder bench --extend DIR "
                               "--arms ...`)"])
        out = Path(args.resume)
        if _bench_teacher_from_python(out):  # its config names teacher.checkpoint, which it did not learn from
            raise ConfigError([f"--resume {out}: that bench learned from a teacher passed from Python; resume it "
                               f"there with run_bench(cfg, {str(out)!r}, resume=True, teacher=the same network)"])
        cfg = resume_config(out)
        bench = run_bench(cfg, out, resume=True,  # said once every check has passed
                          on_ready=lambda: print(f"fspladder bench: resuming {out}", file=sys.stderr))
    else:
        pre = list(PRESETS[args.preset]) if args.preset else []
        for key, val in (("seeds", args.seeds), ("target_accuracy", args.target_accuracy)):
            if val is not None:
                pre.append(f"bench.{key}={val}")
        if args.budgets:
            pre.append(f"bench.budgets=[{args.budgets}]")
        if args.arms:
            pre.append(f"bench.arms=[{args.arms}]")
        if args.extend and not args.config:  # the bench's own config, with the new arms, seeds or budgets
            args.config = str(bench_config_path(args.extend, "--extend"))
        cfg = _load(args, pre)
        if args.extend:
            if args.out is not None:
                raise ConfigError(["--extend DIR writes into DIR; drop --out"])
            out = Path(args.extend)
            where = f"fspladder bench: extending {out}"
        else:
            out = _out_arg(args.out, "runs/bench-")
            where = f"fspladder bench -> {out}"
        # Checks everything before it writes (and only then names its folder); the micro-benchmarks come after.
        bench = run_bench(cfg, out, extend=bool(args.extend), on_ready=lambda: print(where, file=sys.stderr))
        if args.micro:
            from .micro import run_micro

            run_micro(out, cfg)  # loads the data and teacher again after the bench: seconds
    print(format_bench_md(bench))
    print(f"outputs in {out}/ (bench.json, bench.md, curves.png, runs/)")
    return _report_unless(args, out)


def _cmd_train(args: argparse.Namespace) -> int:
    import yaml

    from .checkpoint import check_writable
    from .config import ConfigError, ModelConfig
    from .runner import train_network

    check_writable(args.save)
    if args.export_state_dict is not None and not args.export_state_dict.strip():  # else skipped without a word
        raise ConfigError(["--export-state-dict is empty: give the file to write the weights to (e.g. "
                           "mine.safetensors or mine-weights.pt), or drop --export-state-dict"])
    if args.export_state_dict:  # refused now, not after the training
        check_writable(args.export_state_dict)
        if Path(args.export_state_dict).expanduser().resolve() == Path(args.save).expanduser().resolve():
            raise ConfigError(["--export-state-dict must name another file than --save"])
    kwargs = {}
    if args.kwargs:
        try:
            kwargs = yaml.safe_load(args.kwargs)
        except yaml.YAMLError as e:
            raise ConfigError([f"--kwargs {args.kwargs!r} is not valid YAML ({e})"]) from e
        if not isinstance(kwargs, dict):
            raise ConfigError([f"--kwargs must be a mapping like '{{depth: 32, width: 2}}', got {args.kwargs!r}"])
    problems: list[str] = []
    ModelConfig(model=args.model, kwargs=kwargs)._check("--model", problems)
    if problems:
        raise ConfigError(problems)
    cfg = _load(args)
    command = "fspladder " + " ".join(shlex.quote(a) for a in args.argv)
    meta = train_network(cfg, ModelConfig(model=args.model, kwargs=kwargs), args.save, command)
    print(f"{args.model}: val acc {meta['val_acc']:.4f}, test acc {meta['test_acc']:.4f}, "
          f"{meta['seconds']:.0f} s -> {args.save}")
    if args.export_state_dict:
        from .teacher_source import export_state_dict

        export_state_dict(args.save, args.export_state_dict)
        print(f"its weights as a plain state_dict -> {args.export_state_dict}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import csv
    import json

    from .config import ConfigError, load_config
    from .predict import classify_files, image_files, load_for_inference, score_data

    if args.out is not None and not args.out.strip():  # else it would quietly print instead
        raise ConfigError(["--out is empty: give the CSV file to write (e.g. classes.csv), or drop --out to print"])
    if bool(args.inputs) == bool(args.data):
        raise ConfigError(["give either image files or folders to classify, or --data CONFIG to score a data set"])
    if not args.data and (args.overrides or args.split != "test"):
        raise ConfigError(["--set and --split apply to --data CONFIG (scoring a data set), not to image files"])
    if args.data and (args.out or args.top != 1):
        raise ConfigError(["--out and --top apply to classifying image files; --data prints the accuracy as JSON"])
    if args.top < 1:
        raise ConfigError([f"--top must be at least 1 (the classes to print per image), got {args.top}"])
    if args.out and args.top != 1:
        raise ConfigError(["--out writes each image's top class only; drop --top, or drop --out to print the top "
                           f"{args.top} classes"])
    if args.out:
        from .checkpoint import creatable

        out = Path(args.out).expanduser()
        why = "it is a folder; give a file name" if out.is_dir() else creatable(out.parent)
        if out.exists() and not why:
            why = "it exists and fspladder never overwrites a file: choose another name"
        if why:
            raise ConfigError([f"--out {out}: {why}"])
    if args.data:
        from .checkpoint import load_model

        model, ck = load_model(args.checkpoint)
        res = score_data(model.eval(), (ck["meta"] or {}).get("preprocessing"),
                         load_config(args.data, args.overrides), args.split)
        print(json.dumps(res))
        return 0
    model, prep = load_for_inference(args.checkpoint)
    rows = classify_files(model, prep, image_files(args.inputs), top=args.top)
    if args.out:
        import io

        from .checkpoint import atomic_write_bytes

        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["file", "class", "label", "probability"])
        for r in rows:
            w.writerow([r["file"], r["classes"][0], r["labels"][0], f"{r['probabilities'][0]:.6f}"])
        atomic_write_bytes(out, buf.getvalue().encode())
        print(f"{len(rows)} images classified -> {out}")
    else:
        for r in rows:
            print("\t".join([r["file"]] + [f"{c} {p:.4f}" for c, p in zip(r["classes"], r["probabilities"])]))
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .layers import layer_table

    try:
        shape = tuple(int(s) for s in args.input_shape.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or shape[0] > 64 or max(shape[1:]) > 4096:
        raise ConfigError([f"--input-shape must be three positive integers C,H,W like 1,28,28 (C up to 64, H and W up "
                           f"to 4096), got {args.input_shape!r}"])
    if not 1 <= args.num_classes <= 100_000:
        raise ConfigError([f"--num-classes must be between 1 and 100000, got {args.num_classes}"])
    try:
        table = layer_table(args.model, shape, num_classes=args.num_classes)
    except RuntimeError as e:  # the forward pass: channels, or an input smaller than a kernel, or out of memory
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError([f"{args.model} cannot run on one {shape[0]}x{shape[1]}x{shape[2]} input ({why}); give "
                           "--input-shape as the C,H,W of the images it reads"]) from None
    print(table)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    print("\n".join(list_models()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fspladder", description=(
        "Train a large network faster from a small trained one, step by step through networks of growing size: "
        "the FSP ladder of KR 10-2063377 (Yim et al. CVPR 2017) and other recipes (growth, soft targets)."))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a ladder: teacher -> intermediates -> target, each rung by its recipe")
    _add_config_args(p)
    p.add_argument("--out", help="output directory (default runs/DATE-TIME)")
    p.add_argument("--resume", metavar="DIR", help="continue a killed run in DIR from its last completed epoch")
    p.add_argument("--no-report", action="store_true", help="skip writing report.html at the end")
    p.set_defaults(fn=_cmd_run)

    p = sub.add_parser("plan", help="choose the intermediates and the recipe from measured cost and probe accuracy")
    _add_config_args(p)
    p.add_argument("--time-budget", type=float, help="seconds the whole pipeline may take")
    p.add_argument("--target-accuracy", type=float, help="target probe validation accuracy to reach")
    p.add_argument("--planning-budget", type=float, help="seconds the planning itself may take (default 300)")
    p.add_argument("--measured", nargs="+", metavar="DIR",
                   help="choose recipe and schedule for --time-budget from finished benches of your pair, all run on "
                        "one machine (scratch with each of its schedules among them), read at the budgets they ran; "
                        "no probes")
    p.add_argument("--out", help="also write plan.json into this directory")
    p.set_defaults(fn=_cmd_plan)

    p = sub.add_parser("check",
                       help="validate a config (keys, data, checkpoint, taps, ladder, recipes) without training")
    _add_config_args(p)
    p.add_argument("--bench", action="store_true",
                   help="also check every arm and variant of the config's bench section, as `fspladder bench` will")
    p.set_defaults(fn=_cmd_check)

    p = sub.add_parser("report", help="write report.html (FSP heatmaps, curves, timings) for a run or bench dir")
    p.add_argument("run_dir", help="the --out directory of `fspladder run` or `fspladder bench`")
    p.set_defaults(fn=_cmd_report)

    from .recipes import ARMS, DEFAULT_ARMS

    p = sub.add_parser("bench", help="accuracy vs training seconds of every recipe against training from scratch")
    _add_config_args(p)
    p.add_argument("--preset", choices=["quick", "full", "realistic"],
                   help="quick: ~1 h on 2 CPU cores, target below its teacher; realistic: ~160 min, the teacher's "
                        "own data, targets that pass it; full: the whole data set")
    p.add_argument("--seeds", type=int, help="number of seeds (default 3)")
    p.add_argument("--budgets", help="stage-2 budgets as fractions of the full epochs, e.g. 0.25,0.5,1")
    p.add_argument("--arms", help=f"comma-separated arms from {','.join(ARMS)} (default: {','.join(DEFAULT_ARMS)})")
    p.add_argument("--target-accuracy", type=float,
                   help="accuracy for time-to-target (default: the best scratch arm or variant at full budget)")
    p.add_argument("--micro", action="store_true", help="also time one stage-1 step vs one CE step, and fsp_matrix")
    p.add_argument("--out", help="output directory (default runs/bench-DATE-TIME)")
    p.add_argument("--resume", metavar="DIR", help="continue a killed bench in DIR from its finished runs")
    p.add_argument("--extend", metavar="DIR",
                   help="add new arms, variants, seeds or budgets to the bench in DIR, keeping its runs (CONFIG "
                        "defaults to DIR's own bench-config.yaml)")
    p.add_argument("--resummarize", nargs="+", metavar="DIR",
                   help="recompute the summary and bench.md of finished benches from their runs (no training): "
                        "the best scratch as the threshold, times read at the budgets run")
    p.add_argument("--frontier", nargs="+", metavar="DIR",
                   help="print, per family and budget, the best recipe against the best scratch of finished benches")
    p.add_argument("--no-report", action="store_true", help="skip writing report.html at the end")
    p.set_defaults(fn=_cmd_bench)

    p = sub.add_parser("train", help="train one network from scratch with cross-entropy (e.g. a teacher)")
    _add_config_args(p)
    p.add_argument("--model", required=True, help="registered model name (e.g. resnet8) or package.module:factory")
    p.add_argument("--kwargs", help="the model's keyword arguments as YAML, e.g. '{depth: 32, width: 2}'")
    p.add_argument("--save", required=True, help="checkpoint file to write (never overwritten)")
    p.add_argument("--export-state-dict", metavar="PATH",
                   help="also write the weights as a plain state_dict (.safetensors by that suffix, else torch.save) "
                        "for model.load_state_dict in your own code")
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("predict", help="classify images, or score a data set, with a trained checkpoint")
    p.add_argument("checkpoint", help="a checkpoint of `fspladder run` (rung-K-NAME.pt) or `fspladder train`")
    p.add_argument("inputs", nargs="*", help="image files and/or folders of images to classify")
    p.add_argument("--data", metavar="CONFIG", help="score this config's data set instead (its test split)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the --data config")
    p.add_argument("--split", choices=["test", "val", "train"], default="test", help="which split --data scores")
    p.add_argument("--top", type=int, default=1, help="classes to print per image (default 1)")
    p.add_argument("--out", help="write the classes to this CSV file instead of printing them")
    p.set_defaults(fn=_cmd_predict)

    p = sub.add_parser("layers", help="list a model's tap-able modules with their output shapes")
    p.add_argument("model", help="registered model name, e.g. resnet20")
    p.add_argument("--input-shape", default="3,32,32", help="C,H,W of one input (default 3,32,32)")
    p.add_argument("--num-classes", type=int, default=10)
    p.set_defaults(fn=_cmd_layers)

    p = sub.add_parser("models", help="list registered models")
    p.set_defaults(fn=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import FspladderError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.fn(args)
    except FspladderError as e:
        print(f"fspladder {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fspladder {args.command}: interrupted; finished rungs' checkpoints and finished bench runs are kept",
              file=sys.stderr)
        return 130
    except Exception:
        import traceback

        traceback.print_exc()
        print(f"fspladder {args.command}: internal error (a bug in fspladder, not in your input); please report it "
              "in the project's issue tracker with the command and the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
