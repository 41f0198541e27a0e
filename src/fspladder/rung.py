"""Build, load and train one rung of the ladder: the one place `run`, `bench`, `plan` and `check` share.

A rung is a student and the network before it. Training it follows its recipe
(:mod:`fspladder.recipes`): *init* (fresh, or grown from the previous network),
*stage 1* (the FSP loss of patent eq. 3, or none), *stage 2* (cross-entropy,
patent eq. 4, with the recipe's guidance from the previous network).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from .align import ChannelAligner
from .checkpoint import CheckpointError, load_model, resolve_checkpoint, state_digest
from .config import ConfigError, ModelConfig, RunConfig, Stage1Config, Stage2Config, TeacherConfig
from .data import DataSplits
from .engine import (
    FlowTarget,
    SoftTargets,
    Stage1Result,
    Stage2Result,
    TrainContext,
    evaluate,
    train_stage1,
    train_stage2,
)
from .engine.loop import StateSink
from .flow import FsPair
from .growth import GROW_NOISE, fresh_blocks_problem, grow, grown_copies, growth_problem
from .ladder import LadderError, Rung, default_pairs, validate_ladder
from .models import create_for_data, module_device, probe_classes
from .recipes import Recipe
from .session import context_for
from .teacher_source import (
    file_sha256,
    is_fspladder_file,
    load_user_teacher,
    preprocessing_record,
    read_teacher_weights,
)

__all__ = ["pairs_of", "build_student", "student_rung", "load_teacher", "check_teacher_alone", "teacher_digest",
           "teacher_for", "teacher_problems", "teacher_knows_the_classes", "teacher_accuracy_problems", "near_chance",
           "foreign_teacher", "from_python", "PYTHON_OBJECT", "chain_problems", "rung_problems",
           "make_aligner", "aligner_for", "guidance_for", "init_rung", "stage1_of_rung", "stage2_of_rung",
           "RungOutcome"]

PYTHON_OBJECT = "python object"  # the source's format a run records for a teacher passed to run_ladder(teacher=...)


def pairs_of(mc: ModelConfig | TeacherConfig, model: nn.Module) -> list[FsPair]:
    """The FSP pairs a config names for ``model``, else the model's declared defaults, else none (then only
    recipes without FSP can use it; :func:`fspladder.ladder.validate_ladder` says so)."""
    if mc.pairs is not None:
        return [FsPair.parse(p) for p in mc.pairs]
    return default_pairs(model) if getattr(model, "default_fsp_pairs", None) else []


def build_student(mc: ModelConfig, data: DataSplits, seed: int) -> tuple[nn.Module, dict[str, Any]]:
    """A freshly initialised student sized for ``data`` (seeded, so reruns match)."""
    model, kwargs = create_for_data(mc.model, data.in_chans, data.num_classes, mc.kwargs, seed=seed,
                                    image_size=data.image_size)
    return model, {"name": mc.model, "kwargs": kwargs}


def student_rung(mc: ModelConfig, data: DataSplits, seed: int, device: torch.device | None = None,
                 memory_format: torch.memory_format = torch.preserve_format, name: str | None = None) -> Rung:
    model, spec = build_student(mc, data, seed)
    if device is not None:
        model.to(device, memory_format=memory_format)
    return Rung(name or getattr(mc, "name", "") or mc.model, model, pairs_of(mc, model), spec)


def teacher_digest(module: nn.Module) -> str:
    """The digest of a network's weights (:func:`fspladder.checkpoint.state_digest`): what a run records of a
    teacher passed from Python, so that a resume can tell whether it was given the same one."""
    return state_digest(module.state_dict())


def load_teacher(cfg: RunConfig, device: torch.device | None = None,
                 memory_format: torch.memory_format = torch.preserve_format, *, data: DataSplits | None = None,
                 module: nn.Module | None = None) -> tuple[Rung, dict[str, Any]]:
    """The trained first network and its record (``{"model", "meta", "source"}``), frozen in eval mode.

    ``module``: a trained network passed from Python (a copy is used; the caller's stays as it is). Otherwise
    ``teacher.checkpoint``: an fspladder checkpoint (its architecture inside), or weights fspladder did not write
    (state_dict, Lightning-style, .safetensors) built by ``teacher.model``/``teacher.kwargs``, sized for ``data``
    where the factory takes ``in_chans``/``num_classes``. ``source`` is ``{"file", "sha256", "format", ...}`` or
    ``{"format": "python object", "state_digest"}``."""
    tc = cfg.teacher
    pre = preprocessing_record(tc)
    if module is not None:
        if not isinstance(module, nn.Module):
            raise ConfigError([f"teacher= takes a trained torch.nn.Module, got {type(module).__name__}"])
        try:
            model = copy.deepcopy(module)
        except Exception as e:  # e.g. a module holding a handle copy cannot copy: say so, in one line
            raise ConfigError([f"teacher=: the network cannot be copied ({type(e).__name__}: {e}); fspladder copies "
                               "it so that yours stays as it is: pass one copy.deepcopy can copy"]) from e
        name = tc.model or f"{type(module).__module__}:{type(module).__qualname__}"
        # its weights' digest: a resume checks that it continues from the same network (runner._Run)
        source = {"format": PYTHON_OBJECT, "state_digest": teacher_digest(model)}
        ck: dict[str, Any] = {"model": {"name": name, "kwargs": dict(tc.kwargs)},
                              "meta": {"source": source, "preprocessing": pre}}
        where = "the teacher passed from Python"
    else:
        path = resolve_checkpoint(tc.checkpoint)
        if is_fspladder_file(path):
            if tc.prefix is not None:
                raise CheckpointError(f"teacher.prefix is set but {path} is an fspladder checkpoint, whose keys fit "
                                      "as they are; remove teacher.prefix")
            model, ck = load_model(path, {"name": tc.model, "kwargs": tc.kwargs})
            ck["meta"] = ck["meta"] or {}
            ck["source"] = {"file": str(path), "sha256": file_sha256(path), "format": "fspladder"}
        else:
            model, ck = load_user_teacher(tc, data)
        where = tc.checkpoint
    if "source" not in ck:  # a user's file or a Python object: the record's meta holds it
        ck["source"] = ck["meta"]["source"]
    if device is not None:
        model.to(device, memory_format=memory_format)
    model.eval()
    return Rung("teacher", model, pairs_of(tc, model), {**ck["model"], "checkpoint": where}), ck


def check_teacher_alone(cfg: RunConfig, module: nn.Module | None = None) -> None:
    """What can be checked of the teacher without data (its file read, or the object passed from Python), building
    no network a user's factory would size by its defaults: :class:`CheckpointError` or :class:`ConfigError`."""
    if module is not None:
        if not isinstance(module, nn.Module):
            raise ConfigError([f"teacher= takes a trained torch.nn.Module, got {type(module).__name__}"])
        return
    if is_fspladder_file(resolve_checkpoint(cfg.teacher.checkpoint)):
        load_teacher(cfg)  # its architecture is inside: built as it was saved
    else:
        read_teacher_weights(cfg.teacher)


def teacher_problems(teacher: Rung, meta: dict[str, Any], data: DataSplits, cfg: RunConfig) -> list[str]:
    """What makes the teacher unusable on this data, each with the ways out."""
    name = teacher.spec.get("checkpoint", cfg.teacher.checkpoint)
    first = next((m for m in teacher.model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and first.in_channels != data.in_chans:
        grey = " or, for folder data, read the images as grey with data.channels: 1" if cfg.data.name == "folder" \
            and data.in_chans == 3 else ""
        return [f"teacher {name} reads {first.in_channels}-channel images but the data "
                f"({data.name}) has {data.in_chans} channels: train a teacher on this data (`fspladder train --model "
                f"resnet8 --save teacher.pt` with the same data keys) and set teacher.checkpoint to it{grey}"]
    n, why = probe_classes(teacher.model, (data.in_chans, *data.image_size))
    if n is None:
        return [f"teacher {name} cannot run on the data's images {data.in_chans}x"
                f"{data.image_size[0]}x{data.image_size[1]}: {why}"]
    if foreign_teacher(meta) and n != data.num_classes:  # its outputs are taken to be this data's classes, in order
        return [f"teacher {name} predicts {n} classes but the data has {data.num_classes}: set teacher.kwargs "
                "(e.g. num_classes) to the network that was trained, on data with its classes"]
    return []


def foreign_teacher(meta: dict[str, Any]) -> bool:
    """Whether a teacher record is of weights fspladder did not train (a user's file, or a Python object)."""
    source = meta.get("meta", {}).get("source")
    return source == PYTHON_OBJECT or (isinstance(source, dict) and source.get("format") != "fspladder")


def from_python(source: Any) -> bool:
    """Whether a teacher's recorded ``source`` is a network passed from Python (older records: the bare string)."""
    return source == PYTHON_OBJECT or (isinstance(source, dict) and source.get("format") == PYTHON_OBJECT)


# Near chance: within half of the majority-class share of always answering the validation split's most common
# class, and never more than 10 points above it. A teacher there has learned almost nothing it could pass on;
# a teacher read with the wrong preprocessing, class order or channels lands there (its answers collapse onto
# one or a few classes), while a weak but real one (e.g. 25 % on 100 classes) is far above it.
NEAR_CHANCE_FACTOR = 0.5
NEAR_CHANCE_CAP = 0.10
CHANCE_IMAGES = 1000  # validation images preflight scores the teacher on: sd at chance 0.0095 (10 classes)


def near_chance(acc: float, labels: torch.Tensor, num_classes: int) -> float | None:
    """The near-chance threshold when ``acc`` is below it (None when it is not): the share of the most common of
    ``labels`` plus min(half that share, 0.10)."""
    share = torch.bincount(labels.cpu(), minlength=num_classes).max().item() / max(1, labels.numel())
    limit = share + min(NEAR_CHANCE_FACTOR * share, NEAR_CHANCE_CAP)
    return limit if acc < limit else None


def teacher_accuracy_problems(teacher: Rung, data: DataSplits, cfg: RunConfig, other_classes: str | None,
                              ctx: TrainContext | None = None, images: int | None = CHANCE_IMAGES) -> list[str]:
    """A teacher whose validation accuracy (on the first ``images`` validation images) is near chance
    (:func:`near_chance`), with the accuracy and the likely causes; none for a teacher of other classes."""
    if other_classes is not None:
        return []
    val = data.val if images is None or len(data.val) <= images else data.val.subset(torch.arange(images))
    dev = module_device(teacher.model)
    ctx = ctx or context_for(cfg, dev, data)
    acc = evaluate(teacher.model, val, ctx)
    limit = near_chance(acc, val.y, data.num_classes)
    if limit is None:
        return []
    pre = cfg.teacher.preprocessing
    norm = (f"set teacher.preprocessing (mean {list(pre.mean)} and std {list(pre.std)} now) to the normalisation it "
            "was trained with" if pre.mean is not None else
            "set teacher.preprocessing: {mean, std} to the normalisation it was trained with (in [0, 1] units; now "
            f"the data's own, mean {[round(m, 4) for m in data.mean]} std {[round(s, 4) for s in data.std]})")
    names = ", ".join(f"{k} {n!r}" for k, n in enumerate((data.class_names or [])[:3]))
    return [f"teacher {teacher.spec.get('checkpoint', cfg.teacher.checkpoint)} scores {acc:.4f} on {len(val)} "
            f"validation images, near chance (below {limit:.4f}: the most common class's share plus min(half of it, "
            f"0.10)), so it does not read this data as it was trained to; likely causes: its preprocessing ({norm}), "
            f"its class order (its output k must mean the data's class k: {names}, ...), or its channels (grey or "
            "RGB, RGB or BGR; teacher.preprocessing.channels)"]


def teacher_knows_the_classes(meta: dict[str, Any], teacher: nn.Module, data: DataSplits,
                              cfg: RunConfig) -> str | None:
    """None when the teacher was trained on this data's classes; else why its outputs mean other classes."""
    teacher_outputs, _ = probe_classes(teacher, (data.in_chans, *data.image_size))
    if teacher_outputs != data.num_classes:
        return f"the teacher predicts {teacher_outputs} classes and the data has {data.num_classes}"
    if foreign_teacher(meta):  # no record of what it was trained on: its outputs are taken as this data's classes
        return None
    trained = meta.get("meta", {})
    if trained.get("data") not in (None, data.name) or trained.get("classes") != cfg.data.classes:
        return (f"the teacher was trained on {trained.get('data')} classes {trained.get('classes') or 'all'}, this run "
                f"uses {data.name} classes {cfg.data.classes or 'all'}")
    return None


def teacher_for(cfg: RunConfig, data: DataSplits, device: torch.device | None = None,
                memory_format: torch.memory_format = torch.preserve_format,
                module: nn.Module | None = None) -> tuple[Rung, dict[str, Any], str | None]:
    """The teacher (``module``, a trained network from Python, else ``teacher.checkpoint``), its record, and why
    its outputs mean other classes than the data's (None when they don't); :class:`ConfigError` when it cannot
    read this data at all."""
    teacher, ck = load_teacher(cfg, device, memory_format, data=data, module=module)
    problems = teacher_problems(teacher, ck, data, cfg)
    if problems:
        raise ConfigError(problems)
    return teacher, ck, teacher_knows_the_classes(ck, teacher.model, data, cfg)


def chain_problems(chain: Sequence[Rung], recipes: Sequence[Recipe], s1s: Sequence[Stage1Config],
                   input_shape: Sequence[int], other_classes: str | None) -> tuple[list, list[str]]:
    """The FSP shapes of every rung of ``chain`` (teacher first) and every reason it cannot train by ``recipes``
    (one per student). :class:`LadderError` when the chain itself is invalid: its order and FSP shapes
    (claim 3, eq. 2; only where a recipe compares FSP matrices).
    """
    shapes = validate_ladder(chain, input_shape, [s.project_channels for s in s1s],
                             compare=[r.compares_whole_flows for r in recipes])
    problems = [p for k in range(1, len(chain)) for p in rung_problems(
        chain[k - 1], chain[k], recipes[k - 1], s1s[k - 1], shapes[k - 1], shapes[k],
        other_classes if k == 1 else None, input_shape)]
    return shapes, problems


def rung_problems(prev: Rung, cur: Rung, recipe: Recipe, s1: Stage1Config, prev_shapes: Sequence[tuple[int, int]],
                  cur_shapes: Sequence[tuple[int, int]], other_classes: str | None,
                  input_shape: Sequence[int] | None = None) -> list[str]:
    """Why ``cur`` cannot learn from ``prev`` by ``recipe`` (one message per problem, each with a fix).

    ``other_classes`` says why ``prev``'s outputs mean other classes than the data's (None when they don't);
    ``input_shape`` is the data's (C, H, W), which growth checks both networks on.
    """
    where = f"{cur.name} (recipe {recipe})"
    out: list[str] = []
    if recipe.grows:
        why = growth_problem(prev.model, cur.model, input_shape)
        if why:
            out.append(f"{where}: cannot grow from {prev.name}: {why}")
        elif recipe.has_stage1 and (fresh := fresh_blocks_problem(prev.model, cur.model)):
            out.append(f"{where}: grow with stage1 fsp aligns only the new blocks grown from {prev.name}, and {fresh}; "
                       "use recipe grow (function-preserving, wider too), or patent with "
                       "stage1.project_channels: true")
    weights = s1.pair_weights
    if (recipe.compares_flows
            and weights is not None and len(weights) != len(cur.pairs)):
        out.append(f"{where}: stage1.pair_weights lists {len(weights)} weight(s) but {cur.name} has {len(cur.pairs)} "
                   f"FSP pairs; give one weight per pair, e.g. {[1.0] * len(cur.pairs)}, or remove the key (all 1.0)")
    if recipe.joint_flow and list(prev_shapes) != list(cur_shapes):
        out.append(f"{where}: the joint FSP term compares {cur.name}'s FSP matrices {list(cur_shapes)} with "
                   f"{prev.name}'s {list(prev_shapes)}, which differ (projections serve stage 1 only); tap layers "
                   "of equal channel counts or use another guidance")
    if recipe.soft_targets and other_classes:
        out.append(f"{where}: soft targets need the previous network to predict the data's classes, but "
                   f"{other_classes}; use guidance ce (e.g. recipe patent or grow)")
    return out


def make_aligner(cur_shapes, prev_shapes, allowed: bool, seed: int, device: torch.device,
                 name: str = "student") -> ChannelAligner | None:
    """1x1 projections for a student wider than the network before it; None when shapes match."""
    if list(cur_shapes) == list(prev_shapes):
        return None
    if not allowed:
        raise LadderError([f"{name}: FSP shapes {cur_shapes} differ from the previous network's {prev_shapes}; "
                           "set stage1.project_channels: true for this rung to align them"])
    torch.manual_seed(seed)
    return ChannelAligner(cur_shapes, prev_shapes).to(device)


def guidance_for(prev: Rung, cur: Rung, recipe: Recipe, s1: Stage1Config,
                 s2: Stage2Config) -> FlowTarget | SoftTargets | None:
    """Stage 2's guidance from ``prev`` for ``recipe`` (None: cross-entropy alone, the patent)."""
    if recipe.joint_flow:
        return FlowTarget(cur.pairs, prev.model, prev.pairs, s2.fsp_weight, s1.loss_norm, s1.pair_weights)
    if recipe.soft_targets:
        return SoftTargets(prev.model, s2.kd_temperature, s2.kd_alpha, early=recipe.soft_targets_early,
                           until=s2.kd_until)
    return None


def init_rung(prev: Rung, cur: Rung, recipe: Recipe, seed: int, noise: float | None = None) -> dict[str, Any]:
    """Apply the recipe's init to ``cur`` (fresh weights are already there); returns the record of it.

    ``noise``: growth's split noise (the rung's ``stage2.growth_noise``; None: the recipes' default)."""
    if not recipe.grows:
        return {"init": "random"}
    # grow + fsp: new blocks stay fresh, stage 1 aligns them; grow alone: new blocks are identities.
    return {"init": "grow", **grow(prev.model, cur.model, identity=recipe.identity_growth,
                                   noise=GROW_NOISE if noise is None else noise, seed=seed)}


def aligner_for(recipe: Recipe, s1: Stage1Config, prev_shapes, cur_shapes, seed: int, device: torch.device,
                name: str) -> ChannelAligner | None:
    """Stage 1's projections for a wider student (None without stage 1 or where the shapes match)."""
    if not recipe.has_stage1:
        return None
    return make_aligner(cur_shapes, prev_shapes, s1.project_channels, seed, device, name)


def stage1_of_rung(prev: Rung, cur: Rung, recipe: Recipe, s1: Stage1Config, ctx: TrainContext, *, seed: int,
                   name: str, aligner: ChannelAligner | None = None, resume: dict[str, Any] | None = None,
                   on_epoch_end: StateSink | None = None) -> Stage1Result | None:
    """The recipe's stage 1 (None for ``stage1: none``); ``aligner`` from :func:`aligner_for`, the caller's to
    discard after it."""
    if not recipe.has_stage1:
        return None
    frozen: list[torch.Tensor] = []
    if recipe.grows:  # only the new blocks learn the previous network's flow
        frozen = [p for m in grown_copies(prev.model, cur.model) for p in m.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        r1 = train_stage1(cur.model, cur.pairs, prev.model, prev.pairs, s1, ctx, name, seed=seed, aligner=aligner,
                          resume=resume, on_epoch_end=on_epoch_end)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    if frozen:
        r1.trained_parts = "new blocks"
    return r1


def stage2_of_rung(prev: Rung, cur: Rung, recipe: Recipe, s1: Stage1Config, s2: Stage2Config,
                   ctx: TrainContext, *, seed: int, name: str, eval_test: bool | str = True,
                   resume: dict[str, Any] | None = None, on_epoch_end: StateSink | None = None,
                   previous_val_acc: float | None = None) -> Stage2Result:
    """The recipe's stage 2: cross-entropy with its guidance from ``prev``."""
    guidance = guidance_for(prev, cur, recipe, s1, s2)
    if isinstance(guidance, SoftTargets) and previous_val_acc is not None:
        from dataclasses import replace

        guidance = replace(guidance, previous_val_acc=previous_val_acc)
    return train_stage2(cur.model, s2, ctx, name, seed=seed, guidance=guidance, eval_test=eval_test,  # type: ignore[arg-type]
                        resume=resume, on_epoch_end=on_epoch_end)


@dataclass
class RungOutcome:
    """What one trained rung records (summary.json's ``rungs`` entries)."""

    name: str
    model: str
    kwargs: dict[str, Any]
    params: int
    learns_from: str
    recipe: dict[str, str]
    init: dict[str, Any]
    fsp_shapes: list
    projected_channels: bool
    stage1: Stage1Result | None
    stage2: Stage2Result
    checkpoint: str

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["stage1"] = None if self.stage1 is None else {k: v for k, v in self.stage1.to_dict().items()
                                                        if k != "history"}
        d["stage2"] = self.stage2.to_dict()
        return d

