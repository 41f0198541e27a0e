"""``fspladder check``: every problem of a run config, found before any training.

Checks, in one pass: keys, types and ranges (strict parsing); the data folder
and files; the teacher checkpoint and whether it can read this data; that
every model builds and returns logits for the data's classes; tap names
against the real models; the ladder's ordering and FSP shapes; whether each
rung's recipe can apply (growth, soft targets, joint FSP) and whether a
recipe key is set that nothing reads; with ``--bench``, every arm and variant
of the config's bench the same way. Later checks that depend on a failed
earlier one are skipped rather than reported twice.

These checks are :func:`preflight`, the one function every command calls
before any work (``run``, ``bench``, ``plan``, ``train`` for the network it
trains, ``run_ladder`` and ``train_network`` from Python): what ``check``
refuses, they refuse in the same words, and they reuse the data and teacher it
built. It also warns where sizes will train badly (a batch larger than the
training set or leaving an epoch fewer than 10 steps, few images per class).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

import torch

from .arms import BenchArms, bench_arms, fair_baseline, fair_baseline_line
from .chain import RungTask, run_tasks
from .checkpoint import CheckpointError
from .config import ConfigError, ModelConfig, RunConfig, parse_config_lenient
from .data import DataSplits
from .errors import FspladderError
from .flow import TapError, check_taps
from .ladder import LadderError, Rung
from .memory import chain_memory, model_memory, optimizer_copies, training_bytes
from .models import is_model, probe_logits
from .models.outputs import MODEL_FAILURES, failure_line
from .recipes import PRESETS
from .rung import (
    build_student,
    chain_problems,
    check_teacher_alone,
    foreign_teacher,
    student_rung,
    teacher_accuracy_problems,
    teacher_for,
)
from .session import load_data, resolve_device
from .teacher_source import with_teacher_preprocessing

__all__ = ["check_config", "preflight", "Preflight", "MIN_STEPS", "MIN_PER_CLASS", "planned_key_refusal",
           "key_problem_words"]

MIN_STEPS = 10  # an epoch with fewer optimiser steps than this barely trains: warned about
MIN_PER_CLASS = 10  # fewer training images per class than this: warned about
# Keys that decide which images load and how many: with a problem in one, its default would stand in and the data
# would load with a value the user did not set (a 144-image folder read with val_size 5000: "-4,856 images").
_LOADING_KEYS = ("data.root", "data.name", "data.val_size", "data.train_subset", "data.test_subset", "data.classes",
                 "data.image_size", "data.channels", "seed")


def _build_failure(mc: ModelConfig, e: RuntimeError) -> str:
    """Why building ``mc`` raised ``e``, in one line: out of memory names the model, its kwargs and the bytes asked
    for (torch's allocator says them)."""
    text, kw = str(e), f" with kwargs {mc.kwargs}" if mc.kwargs else ""
    asked = re.search(r"allocate (\d+) bytes", text) or re.search(r"allocate ([\d.]+ [KMGT]iB)", text, re.I)
    if asked is None and "out of memory" not in text.lower() and "not enough memory" not in text.lower():
        return f"{mc.model}{kw} cannot be built: {(text.strip().splitlines() or ['RuntimeError'])[0]}"
    size = asked.group(1) if asked else ""
    if size.isdigit():
        size = f"{int(size) / 2 ** 30:,.1f} GiB"
    return (f"{mc.model}{kw} is too large to build here: out of memory"
            f"{f' (one of its tensors asks for {size})' if size else ''}; choose a smaller model (e.g. a lower width "
            "or depth)")


def _output_problem(model: torch.nn.Module, data: DataSplits, where: str) -> str | None:
    out, why = probe_logits(model, (data.in_chans, *data.image_size))
    if out is None:
        return (f"{where}: the model fails on the data's images ({data.in_chans}x{data.image_size[0]}x"
                f"{data.image_size[1]}): {why}")
    if out.dim() != 2 or out.shape[1] != data.num_classes or out.shape[0] != 2:  # 2: the probe's batch
        return (f"{where}: the model returns logits of shape {tuple(out.shape)} for a batch of 2 images, but the "
                f"data has {data.num_classes} classes: its output must be (batch, {data.num_classes}); pass "
                "num_classes to it, and end it in a classifier (e.g. pooling and nn.Linear) if it returns a feature "
                "map")
    if not out.is_floating_point():
        return (f"{where}: the model returns logits of dtype {out.dtype}; cross-entropy needs floating-point logits: "
                "return the classifier's output, not class indices")
    return None


def key_problem_words(problems: list[str]) -> str:
    """:meth:`RunConfig.recipe_key_problems`'s lines in a few words each (what is set and why it is not read, without
    the fix), for a planner candidate's note."""
    return "; ".join(p.split("; ")[0] for p in problems)


def planned_key_refusal(cfg: RunConfig) -> str | None:
    """With ``plan.intermediates: auto`` (or ``fspladder plan``): one line when no recipe of ``plan.recipes`` can take
    the stage-2 keys set (:meth:`RunConfig.planned_key_problems`), naming a recipe that could; None when one can
    (the planner then skips only the others' candidates)."""
    found = cfg.planned_key_problems()
    if not found or any(not p for p in found.values()):
        return None
    takers = [n for n, p in cfg.planned_key_problems([n for n in PRESETS if n not in found]).items() if not p]
    fix = (f"add {' or '.join(takers[:2])} to plan.recipes, or remove those keys" if takers
           else "remove those keys")
    return (f"no recipe of plan.recipes ({', '.join(found)}) can take the stage-2 keys set here, so the planner would "
            f"have no candidate ({key_problem_words(next(iter(found.values())))}): {fix}")


@dataclass
class Preflight:
    """What :func:`preflight` found and built: the problems (empty: the command may start), what is worth knowing
    beforehand (``notes``: the data path; ``warnings``: sizes that will train badly), and what the checks built
    for the command to reuse instead of building it again (the data, the teacher on the CPU, a trained model)."""

    cfg: RunConfig
    problems: list[str]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    data: DataSplits | None = None
    teacher: Rung | None = None
    teacher_ck: dict[str, Any] | None = None
    other_classes: str | None = None
    model: torch.nn.Module | None = None  # train: the network it trains, built and checked
    spec: dict[str, Any] | None = None
    arms: BenchArms | None = None  # with ``bench``: the bench's arms, checked

    def print_warnings(self) -> None:
        """Each warning as one ``warning:`` line on stderr, before the command starts its work."""
        for w in self.warnings:
            print(f"warning: {w}", file=sys.stderr)

    def raise_problems(self) -> None:
        """:class:`ConfigError` with every problem, when there is one."""
        if self.problems:
            raise ConfigError(self.problems)


def _batch_warnings(pf: Preflight, stages: list[tuple[str, int, int, str]]) -> None:
    """Warn where a stage's batch leaves an epoch fewer than ``MIN_STEPS`` steps. ``stages``: (the batch size's
    key as the user sets it, its value, the images that stage trains on, what they are)."""
    seen: set[str] = set()
    for key, batch, n, what in stages:
        steps = max(1, n // batch)
        if steps >= MIN_STEPS or key in seen:
            continue
        seen.add(key)
        fit = max(1, n // MIN_STEPS)
        if batch > n:
            pf.warnings.append(f"{key}={batch} is larger than the {n:,} {what}: every epoch is one step of all "
                               f"{n:,}, too few to learn from; set {key} to at most {fit} ({MIN_STEPS} steps per "
                               "epoch) or train on more images")
        else:
            pf.warnings.append(f"{key}={batch} gives {steps} step(s) per epoch on {n:,} {what} (fewer than "
                               f"{MIN_STEPS}): training will barely move; set {key} to at most {fit}")


def _size_warnings(pf: Preflight, data: DataSplits, stages: list[tuple[str, int, int, str]]) -> None:
    """Sizes that run but train on almost nothing, each naming the key the user set and the data's real sizes."""
    d = pf.cfg.data
    n, k = len(data.train), data.num_classes
    if d.train_subset is not None and d.train_subset > n:
        pf.notes.append(f"note: data.train_subset={d.train_subset:,} is more than the {n:,} training images left after "
                        f"data.val_size={d.val_size:,} are held out: all {n:,} are used")
    if d.test_subset is not None and d.test_subset > len(data.test):
        pf.notes.append(f"note: data.test_subset={d.test_subset:,} is more than the {len(data.test):,} test images: "
                        "all are used")
    for what, key, m in (("validation", "data.val_size", len(data.val)), ("test", "data.test_subset", len(data.test))):
        if m < MIN_PER_CLASS * k and (key == "data.val_size" or d.test_subset is not None):
            pf.notes.append(f"note: {key}={m:,}: {what} accuracy is measured on {m:,} image(s) for {k} classes, so it "
                            f"moves in steps of {1 / m:.3g}; use at least {MIN_PER_CLASS * k:,} to compare runs")
    if n < MIN_PER_CLASS * k:
        why = f"data.train_subset={d.train_subset:,}" if d.train_subset is not None and d.train_subset <= n else \
            f"data.val_size={d.val_size:,} held out of {n + len(data.val):,}"
        pf.warnings.append(f"data: {n:,} training images for {k} classes ({why}): fewer than {MIN_PER_CLASS} per "
                           "class, so accuracy stays near chance; train on more images")
    _batch_warnings(pf, stages)


def _memory(pf: Preflight, found: tuple[str, str | None, str | None]) -> None:
    """The models' memory estimate (:mod:`fspladder.memory`): a note, and a warning or a problem."""
    note, warning, problem = found
    pf.notes.append(note)
    pf.warnings += [warning] if warning else []
    pf.problems += [problem] if problem else []


def _stages(tasks: list[RungTask], n: int) -> list[tuple[str, int, int, str]]:
    """(batch-size key, batch size, images) of every stage that trains: stage 2 of each rung, stage 1 where its
    recipe has one (on ``stage1.images`` of them when set)."""
    out = []
    for i, task in enumerate(tasks):
        rc = task.rung
        for stage, sc in (("stage1", task.s1), ("stage2", task.s2)):
            if stage == "stage1" and not task.recipe.has_stage1:
                continue
            key = f"rungs.{i}.{stage}.batch_size" if "batch_size" in getattr(rc, stage) else f"{stage}.batch_size"
            few = stage == "stage1" and sc.images is not None and sc.images < n
            out.append((key, sc.batch_size, sc.images if few else n,
                        f"training images stage1.images={sc.images:,} keeps" if few else "training images"))
    return out


def preflight(cfg: RunConfig | dict[str, Any], *, bench: bool = False, train: ModelConfig | None = None,
              data: DataSplits | None = None, device: torch.device | None = None,
              teacher_module: torch.nn.Module | None = None, baseline: bool = True) -> Preflight:
    """Every check ``fspladder check`` makes, before any work: the one function ``check``, ``run``, ``train``,
    ``bench`` and ``plan`` call, so that what one accepts no other refuses later.

    ``cfg``: a parsed config, or the raw mapping (then parsed here, every key problem reported). ``bench``: also
    every arm and variant of the bench. ``train``: the network ``fspladder train`` trains (then the data and that
    network are checked, not the teacher or the rungs). ``data``: splits passed from Python instead of
    ``cfg.data``. ``device``: where the data path is planned for (default ``cfg.device``). ``teacher_module``: a
    trained network passed from Python instead of ``teacher.checkpoint``. ``baseline``: with ``bench``, add the
    fair baseline's scratch variants first (:func:`fspladder.arms.fair_baseline`; ``pf.cfg`` holds them) as the
    bench does; the bench passes False, having added them itself (judged by its finished runs' schedules).
    Nothing is written."""
    pf = _preflight(cfg, bench, train, data, device, teacher_module, baseline)
    # One line per problem: some messages (a tap's, torch's) span lines; the CLI prints each problem on one.
    # The same problem found twice (the run's chain and a bench arm's) is reported once.
    pf.problems[:] = dict.fromkeys(" ".join(ln.strip() for ln in p.splitlines() if ln.strip()) for p in pf.problems)
    return pf


def _preflight(cfg: RunConfig | dict[str, Any], bench: bool, train: ModelConfig | None, data: DataSplits | None,
               device: torch.device | None, teacher_module: torch.nn.Module | None, baseline: bool) -> Preflight:
    if isinstance(cfg, RunConfig):
        pf = Preflight(cfg, [])
    else:
        parsed, problems = parse_config_lenient(cfg)
        pf = Preflight(parsed, problems)
    if bench and baseline and not pf.problems:  # a config that parsed cleanly: the rule builds its arms
        pf.cfg, added = fair_baseline(pf.cfg)
        pf.notes += [fair_baseline_line(k, why) for k, why in added.items()]
    cfg, problems = pf.cfg, pf.problems
    splits = data
    if splits is not None:  # the teacher's normalisation, as load_data applies it to cfg.data
        try:
            splits = with_teacher_preprocessing(splits, cfg)
        except ConfigError as e:
            problems += [f"data: {p}" for p in e.problems]
            splits = None
    # A data key with a problem was not applied (its default stood in): loading with it would report sizes and
    # values the user did not set.
    if splits is None and data is None and not any(p.startswith(_LOADING_KEYS) for p in problems):
        path: list = []
        try:
            splits = load_data(cfg, device if device is not None else resolve_device(cfg.device), path)
        except FspladderError as e:
            problems.append(f"data: {e}")
        pf.notes += [str(p) for p in path]
    pf.data = splits
    if train is not None:
        return _preflight_train(pf, train, splits)
    teacher: Rung | None = None
    other: str | None = None
    try:
        if splits is not None:
            found, ck, why = teacher_for(cfg, splits, module=teacher_module)
            # Near chance: a problem for weights trained elsewhere (their preprocessing is the user's word), a
            # warning for fspladder's own (trained on this data path, so weak rather than misread).
            try:
                near = teacher_accuracy_problems(found, splits, cfg, why)
            except MODEL_FAILURES as e:  # its own code fails on real batches, though the zeros probe passed
                raise ConfigError([f"teacher {found.spec['checkpoint']} fails when scored on the validation "
                                   f"images: {failure_line(e)}"]) from e
            (problems if foreign_teacher(ck) else pf.warnings).extend(near)
            teacher, pf.teacher_ck, other = found, ck, why  # scored without failing: the chain may use it
        else:
            check_teacher_alone(cfg, module=teacher_module)  # the file itself can still be checked
    except ConfigError as e:
        problems += [f"teacher: {p}" for p in e.problems]
    except (CheckpointError, TapError) as e:
        problems.append(f"teacher.checkpoint: {e}")
    except FspladderError as e:  # any other refusal of the teacher (e.g. a model that will not build): listed
        problems.append(f"teacher: {e}")
    pf.teacher, pf.other_classes = teacher, other
    chain: list[Rung | None] = [teacher]
    for i, rc in enumerate(cfg.rungs):
        if not is_model(rc.model) or splits is None:
            chain.append(None)
            continue
        try:
            rung = student_rung(rc, splits, 0)
            check_taps(rung.model, rung.taps)
            out = _output_problem(rung.model, splits, f"rungs[{i}] ({rc.name})")
            if out:
                problems.append(out)
            chain.append(rung)
        except (TypeError, ValueError, KeyError, FspladderError) as e:  # TapError is a ValueError
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            problems.append(f"rungs[{i}] ({rc.name}): {msg}")
            chain.append(None)
        except RuntimeError as e:  # a built-in model too large to allocate here (a factory's: a ModelBuildError)
            problems.append(f"rungs[{i}] ({rc.name}): {_build_failure(rc, e)}")
            chain.append(None)
    if splits is None or any(r is None for r in chain) or any(p.startswith(("recipe", "rungs[")) for p in problems):
        return pf
    rungs: list[Rung] = chain  # type: ignore[assignment]
    try:
        tasks = run_tasks(cfg)  # the run's chain plan: what `run` will train
    except ConfigError as e:
        problems += e.problems
        return pf
    recipes, s1s = [t.recipe for t in tasks], [t.s1 for t in tasks]
    stages = _stages(tasks, len(splits.train))
    # after the stages resolved: the estimate reads each rung's stage 2 (its optimizer and EMA)
    _memory(pf, chain_memory(tasks, rungs, device or resolve_device(cfg.device)))
    try:
        _, found = chain_problems(rungs, recipes, s1s, (splits.in_chans, *splits.image_size), other)
        problems += found
        if cfg.plan.intermediates == "auto":  # the planner's recipe runs, not the config's: keys are checked per
            # candidate recipe (the planner skips those that cannot take them), refused only when none can
            refusal = planned_key_refusal(cfg)
            problems += [refusal] if refusal else []
            pf.notes += [f"note: plan: the candidates of recipe {n} will be skipped: {key_problem_words(p)}"
                         for n, p in cfg.planned_key_problems().items() if p]
        else:
            problems += cfg.recipe_key_problems(recipes)
    except LadderError as e:  # the bench's arms are still checked: they build their own chains
        problems += [f"ladder: {p}" for p in e.problems]
        if not bench:
            return pf
    _size_warnings(pf, splits, stages)
    if bench and teacher is not None:  # what `fspladder bench` would refuse, found now
        arms = pf.arms = bench_arms(cfg, teacher, splits, other)
        problems += arms.problems
        pf.warnings += arms.warnings  # a baseline that lacks a schedule a transfer arm gets: it runs, but say so
        # the bench skips these (recorded in bench.json): say so before it runs
        pf.notes += [f"bench: arm {k} will be skipped, its recipe cannot apply here: {why}"
                     for k, why in arms.skipped.items()]
    return pf


def _preflight_train(pf: Preflight, mc: ModelConfig, splits: DataSplits | None) -> Preflight:
    """``fspladder train``'s part: the network builds for the data and returns its logits; no key is set that
    cross-entropy alone would not read."""
    cfg, problems = pf.cfg, pf.problems
    scratch = PRESETS["scratch"]
    problems += cfg.recipe_key_problems([scratch], "`fspladder train` trains with cross-entropy alone, which does "
                                                   "not use it", rungs_train=False)
    if splits is None:
        return pf
    where = f"--model {mc.model}"
    try:
        model, spec = build_student(mc, splits, cfg.seed)
    except (TypeError, ValueError, KeyError, FspladderError) as e:
        problems.append(f"{where}: {e.args[0] if isinstance(e, KeyError) and e.args else e}")
        return pf
    out = _output_problem(model, splits, where)
    if out:
        problems.append(out)
        return pf
    model.train()
    pf.model, pf.spec = model, spec
    n, dev = sum(p.numel() for p in model.parameters()), resolve_device(cfg.device)
    extra = training_bytes(n, optimizer_copies(cfg.stage2.optimizer), bool(cfg.stage2.ema), dev.type == "cpu")
    _memory(pf, model_memory(dev, n, [(mc.model, n, extra)], f"--model {mc.model}"))
    try:
        s2 = cfg.stage2.resolved(scratch)
    except ConfigError as e:
        problems += e.problems
        return pf
    _size_warnings(pf, splits, [("stage2.batch_size", s2.batch_size, len(splits.train), "training images")])
    return pf


def check_config(data: dict[str, Any], notes: list[str] | None = None,
                 bench: bool = False) -> tuple[RunConfig, list[str]]:
    """Return the parsed config and the list of every problem found (empty when it can run).

    ``bench``: also check every arm and variant of the config's ``bench`` section as ``fspladder bench``
    will (``fspladder check --bench``); without it, only what ``fspladder run`` does is checked.

    ``notes`` receives what the config will do that is worth knowing beforehand (the data path and its
    memory estimate, sizes that will train badly). The checks are :func:`preflight`'s, which every command
    makes before it starts."""
    pf = preflight(data, bench=bench)
    if notes is not None:
        notes += pf.notes + [f"note: {w}" for w in pf.warnings]
    return pf.cfg, pf.problems
