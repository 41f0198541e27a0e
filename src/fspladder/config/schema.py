"""The run configuration as dataclasses: every key, its default, its type and its allowed range.

Numeric keys declare their range with :func:`num`; the strict parser
(:mod:`.parse`) refuses NaN, infinities and values out of range for every one
of them, naming the key. The ``_check`` methods hold only what relates keys to
each other.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..names import name_problem, safe_name
from ..recipes import (
    ARMS,
    DEFAULT_ARMS,
    PRESETS,
    RECIPE_DEFAULT_KEYS,
    Recipe,
    parse_recipe,
    recipe_name,
    schedule_defaults,
)
from ..trackers import tracker_problems
from .strict import ConfigError, Range, apply_overrides, build, config_to_dict, num

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "TeacherConfig", "TeacherPreprocessing", "Stage1Config",
           "Stage2Config", "RungConfig",
           "RunConfig", "BenchConfig", "PlanConfig", "Range", "num", "VARIANT_FIXED", "variant_config"]


BIG = 1e9  # sanity maxima: far beyond any real run, but they keep typos like 1e30 out
EPOCHS = 10_000
BATCH = 2**20


@dataclass
class DataConfig:
    name: Literal["fashion-mnist", "idx", "cifar10", "cifar100", "folder"] = "fashion-mnist"
    root: str | None = None  # folder of the data files; None = the data set's default location
    image_size: int = num(32, 4, 4096)  # folder data sets: images are resized to this square size
    channels: int = num(3, 1, 3)  # folder data sets: 1 = grey, 3 = RGB
    val_size: int = num(5000, 1, BIG)  # training images held out for validation
    classes: list[int] | None = num(None, 0, BIG)  # keep only these labels, renumbered 0..k-1
    train_subset: int | None = num(None, 1, BIG)  # use only the first N training images
    test_subset: int | None = num(None, 1, BIG)  # evaluate on only the first N test images
    crop_pad: int = num(2, 0, 64)  # random-crop padding in pixels; 0 disables
    flip: bool = True  # random horizontal flips
    # The input path: false holds the decoded set on the training device (fastest); true reads training
    # batches from disk with worker processes (data larger than memory); auto streams when the decoded
    # training set would take more than memory_share of the free memory of the training device and host.
    stream: Literal["auto", True, False] = "auto"
    memory_share: float = num(0.5, 0, 1, lo_open=True)
    workers: int | None = num(None, 0, 64)  # decoding processes of the streaming path; null = cores - 1, <= 4

    def _check(self, p: str, err: list[str]) -> None:
        from pathlib import Path

        if self.name != "fashion-mnist" and self.root is None:
            err.append(f"{p}.root is required when {p}.name is {self.name!r}: set it to the data folder")
        if self.channels == 2:
            err.append(f"{p}.channels must be 1 (grey) or 3 (RGB), got 2")
        if self.root is not None and not Path(self.root).expanduser().is_dir():
            err.append(f"{p}.root: folder {self.root!r} does not exist")
        if self.classes is not None:
            if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2 or min(self.classes) < 0:
                err.append(f"{p}.classes must list at least two distinct labels >= 0, got {self.classes}")


@dataclass
class ModelConfig:
    """A network of the ladder: a registered model name plus its keyword arguments."""

    model: str = "resnet20"
    kwargs: dict[str, Any] = field(default_factory=dict)
    # FSP pairs as [first_tap, second_tap]; None = the model's default_fsp_pairs.
    pairs: list[list[str]] | None = None

    def _check(self, p: str, err: list[str]) -> None:
        import difflib

        from ..models import is_model, list_models

        if not is_model(self.model):
            close = difflib.get_close_matches(self.model, list_models(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            err.append(f"{p}.model: unknown model {self.model!r}{hint}; see `fspladder models`")
        if self.pairs is not None:
            for i, pair in enumerate(self.pairs):
                if len(pair) != 2:
                    err.append(f"{p}.pairs[{i}] must be two tap names like [stem, layer1], got {pair}")


@dataclass
class TeacherPreprocessing:
    """How the teacher's own inputs were made, when it was trained outside fspladder: its normalisation
    replaces the data's statistics for the whole run (teacher, students, growth see the same inputs)."""

    mean: list[float] | None = num(None, 0, 1)  # per channel (or one for all), in [0, 1] units; null = the data's
    std: list[float] | None = num(None, 0, 1, lo_open=True)  # as mean; both or neither
    image_size: int | None = num(None, 4, 4096)  # the side it was trained at; must be the data's (checked)
    channels: int | None = num(None, 1, 3)  # 1 grey, 3 RGB; must be the data's (checked)

    def _check(self, p: str, err: list[str]) -> None:
        if (self.mean is None) != (self.std is None):
            err.append(f"{p}.mean and {p}.std go together: give both (the normalisation the teacher was trained "
                       "with, in [0, 1] units) or neither (the data's own statistics)")
        elif self.mean is not None and self.std is not None:
            if len(self.mean) != len(self.std) or not self.mean:
                err.append(f"{p}.mean and {p}.std must list as many values, one per channel (or one for all), got "
                           f"{self.mean} and {self.std}")
            elif self.channels is not None and len(self.mean) not in (1, self.channels):
                err.append(f"{p}.mean and {p}.std have {len(self.mean)} values but {p}.channels is {self.channels}")
        if self.channels == 2:
            err.append(f"{p}.channels must be 1 (grey) or 3 (RGB), got 2")


@dataclass
class TeacherConfig:
    """The trained first network: an fspladder checkpoint (its architecture inside), or weights you trained
    yourself (a state_dict, Lightning-style or .safetensors file) that ``model``/``kwargs`` build."""

    checkpoint: str = "builtin:resnet8_fmnist"  # a path or 'builtin:NAME' (shipped in the package)
    # Required for weights fspladder did not write; for an fspladder checkpoint, if set, it must hold this model.
    model: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)  # the model's arguments (fspladder checkpoint: must match)
    pairs: list[list[str]] | None = None  # FSP pairs; None = the model's default_fsp_pairs
    prefix: str | None = None  # strip this from the file's keys (Lightning: 'model.'); null = found by trying
    preprocessing: TeacherPreprocessing = field(default_factory=TeacherPreprocessing)

    def _check(self, p: str, err: list[str]) -> None:
        if self.model is not None:
            ModelConfig(model=self.model, pairs=self.pairs)._check(p, err)
        if self.prefix == "":
            err.append(f"{p}.prefix is empty: give the prefix to strip (e.g. 'model.') or null to find it")


def _lr_checks(p: str, lr: float | None, min_lr: float, err: list[str]) -> None:
    if lr is not None and min_lr > lr:
        err.append(f"{p}.min_lr must be between 0 and lr ({lr}), got {min_lr}")


@dataclass
class Stage1Config:
    """Stage 1: match the previous network's FSP matrices (patent eq. 3)."""

    epochs: float = num(1.0, 0, EPOCHS)  # passes; fractions allowed; 0 only for recipes without stage 1
    batch_size: int = num(128, 1, BATCH)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = num(1e-3, 0, 10, lo_open=True)  # the paper's 1e-3, cosine-decayed to min_lr (1e-5)
    min_lr: float = num(1e-5, 0, 10)
    momentum: float = num(0.9, 0, 1, hi_open=True)
    weight_decay: float = num(0.0, 0, 1)
    grad_clip: float | None = num(5.0, 0, BIG, lo_open=True)  # max global gradient norm; None disables
    pair_weights: list[float] | None = num(None, 0, BIG)  # lambda_i; None = all 1.0 [patent 0098]
    augment: bool = True
    # Width growth: align mismatched tapped channels with learned 1x1 projections used in
    # stage 1 only (not in the patent; off = FSP shapes must match exactly).
    project_channels: bool = False
    # Cheaper stage 1 (issue 9); the defaults are the patent's plain recipe.
    images: int | None = num(None, 1, BIG)  # train stage 1 on this many training images (a seeded subset)
    cache_teacher: bool = False  # compute the previous network's FSP matrices once (needs augment: false)
    plateau: float | None = num(None, 0, 1, lo_open=True, hi_open=True)  # stop once a window improves < this
    loss_norm: Literal["patent", "element", "pair"] = "patent"  # see losses.fsp_loss

    def _check(self, p: str, err: list[str]) -> None:
        if self.cache_teacher and self.augment:
            err.append(f"{p}.cache_teacher needs fixed inputs: set {p}.augment: false (or cache_teacher: false)")
        _lr_checks(p, self.lr, self.min_lr, err)


@dataclass
class Stage2Config:
    """Stage 2: train the main task with softmax cross-entropy (patent eq. 4) and the recipe's guidance.

    Keys that are null by default take the rung's recipe's value
    (``recipes.schedule_defaults``): the peak learning rate and warm-up
    depend on how the network starts, the soft-target and joint-FSP keys
    apply only to recipes with that guidance.
    """

    # the default run: 8 target epochs end level with the shipped teacher (README, default run)
    epochs: int = num(8, 1, EPOCHS)
    batch_size: int = num(128, 1, BATCH)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float | None = num(None, 0, 10, lo_open=True)  # null: the recipe's peak (recipes.schedule_defaults)
    min_lr: float = num(0.0, 0, 10)
    momentum: float = num(0.9, 0, 1, hi_open=True)
    nesterov: bool = True
    weight_decay: float = num(5e-4, 0, 1)
    warmup_epochs: float | None = num(None, 0, EPOCHS)  # null: the recipe's (0 unless it says otherwise)
    label_smoothing: float = num(0.0, 0, 1, hi_open=True)
    kd_temperature: float | None = num(None, 0, 100, lo_open=True)  # soft targets: T (recipe default 4)
    kd_alpha: float | None = num(None, 0, 1)  # soft targets: weight of the soft term (recipe default 0.9)
    kd_until: float | None = num(None, 0, 1, lo_open=True)  # kd-early: latest switch-off, fraction of the steps
    # guidance joint (not in the patent): + fsp_weight x the FSP loss against the network stage 1 learned
    # from (stage 1's loss_norm and pair_weights). The patent-form loss is ~1e2-1e4 for the built-in
    # ResNets, so useful weights are ~1e-3 (the recipe default).
    fsp_weight: float | None = num(None, 0, BIG, lo_open=True)
    # Warm-start levers (issue 23; measured in docs/results/growth-schedules). null: the recipe's value.
    # schedule: the learning-rate curve after warm-up: cosine to min_lr, or wsd (warm-up, stable at the peak,
    # then a linear decay to min_lr over the last decay_fraction of the steps; Hu et al. 2024, MiniCPM).
    schedule: Literal["cosine", "wsd"] | None = None
    decay_fraction: float | None = num(None, 0, 1, lo_open=True)  # wsd only: share of the steps that decay
    # Per-step decay of an exponential moving average of all weights and BatchNorm statistics (0 = off). When on,
    # the average is what is evaluated every epoch and what the stage ends with (its checkpoint).
    ema: float | None = num(None, 0, 1, hi_open=True)
    # init grow only: spread of the split proportions between channel copies (0 = equal splits, copies stay equal)
    # At most 0.4: a copy's share is 1 + noise * N(0, 1) clamped to +-2 before normalising, so it stays >= 0.2.
    growth_noise: float | None = num(None, 0, 0.4)

    def _check(self, p: str, err: list[str]) -> None:
        _lr_checks(p, self.lr, self.min_lr, err)
        if self.warmup_epochs is not None and self.warmup_epochs > self.epochs:
            err.append(f"{p}.warmup_epochs must be between 0 and epochs ({self.epochs}), got {self.warmup_epochs}")
        if self.decay_fraction is not None and self.schedule is not None and self.schedule != "wsd":
            err.append(f"{p}.decay_fraction is read by schedule wsd only, and the schedule is {self.schedule}; "
                       "remove decay_fraction or set the schedule to wsd")

    def resolved(self, recipe: Recipe) -> "Stage2Config":
        """A copy with the null keys filled from ``recipe`` (see :func:`recipes.schedule_defaults`)."""
        import copy

        out = copy.copy(self)
        for k, v in schedule_defaults(recipe).items():
            if getattr(out, k) is None:
                setattr(out, k, v)
        if out.warmup_epochs > out.epochs:  # a recipe's warm-up never outlasts a short schedule
            out.warmup_epochs = float(out.epochs)
        return out


@dataclass
class RungConfig(ModelConfig):
    """One student of the chain; ``stage1``/``stage2`` override the run-wide settings key by key."""

    name: str = ""
    recipe: Any = None  # None = the run's recipe; a preset name or {init, stage1, guidance}
    stage1: dict[str, Any] = field(default_factory=dict)
    stage2: dict[str, Any] = field(default_factory=dict)

    def _check(self, p: str, err: list[str]) -> None:
        if not self.name:  # a file name too: 'pkg.module:factory' names its rung pkg.module-factory
            self.name = safe_name(self.model)
        super()._check(p, err)
        why = name_problem(self.name, f"{p}.name")  # it becomes rung-K-NAME.pt: no separators, no '..'
        if why:
            err.append(why)
        if self.recipe is not None:
            err += parse_recipe(self.recipe, f"{p}.recipe")[1]


# Keys a bench variant may not change: the data, teacher, models' memory format and logging every arm shares.
VARIANT_FIXED = ("data", "teacher", "bench", "plan", "seed", "device", "channels_last", "track", "progress")


@dataclass
class BenchConfig:
    """``fspladder bench``: arms trained at several stage-2 budgets over several seeds."""

    budgets: list[float] = num([0.25, 0.5, 1.0], 0, 1, lo_open=True)  # fractions of stage2.epochs
    seeds: int = num(3, 1, 1000)
    arms: list[str] = field(default_factory=lambda: list(DEFAULT_ARMS))
    # None = the best full-budget mean final val accuracy of the scratch arm and scratch variants (bench.summary)
    target_accuracy: float | None = num(None, 0, 1, lo_open=True)
    # Named variants of an arm, each with its own recipe and config overrides, run beside the arms:
    # {"ladder-cached": {"arm": "ladder", "set": {"stage1.augment": false, "stage1.cache_teacher": true}},
    #  "grow-ladder": {"arm": "ladder", "recipe": "grow"}}
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Arms or variants that run at only some of the budgets, e.g. {scratch: [1.0]}: scratch's full budget sets the
    # threshold the others are timed to, and its shorter budgets only draw its curve (the growth-schedule bench).
    arm_budgets: dict[str, list[float]] = field(default_factory=dict)
    # The fair baseline (issue 32): a scratch variant is added for every schedule (shape, decay, peak, warm-up,
    # weight average) a transfer arm gets and no scratch arm gets, so "scratch's accuracy" is scratch at its best.
    # false: none is added, and the bench warns that its baseline lacks them.
    fair_baseline: bool = True

    def _check(self, p: str, err: list[str]) -> None:
        for name, bs in self.arm_budgets.items():
            if name not in self.arms and name not in self.variants:
                err.append(f"{p}.arm_budgets.{name}: no arm or variant of this bench is called {name!r}; "
                           f"name one of {', '.join([*self.arms, *self.variants])}")
            elif not isinstance(bs, list) or not bs or any(b not in self.budgets for b in bs):
                err.append(f"{p}.arm_budgets.{name} must list some of bench.budgets {self.budgets}, got {bs!r}")
        for name, v in self.variants.items():
            q = f"{p}.variants.{name}"
            why = name_problem(name, f"{p}.variants name")  # it becomes runs/NAME__seedS__budgetB.json
            if why:
                err.append(why)
                continue
            if name in ARMS:
                err.append(f"{q}: a variant needs its own name, not an arm's ({', '.join(ARMS)})")
            if not isinstance(v, dict) or set(v) - {"arm", "recipe", "set"} or v.get("arm") not in ARMS:
                err.append(f"{q} must be a mapping {{arm: one of {', '.join(ARMS)}, recipe: (optional) a recipe, "
                           "set: {key: value}}")
                continue
            if "recipe" in v:
                err += parse_recipe(v["recipe"], f"{q}.recipe")[1]
            if not isinstance(v.get("set") or {}, dict):
                err.append(f"{q}.set must be a mapping of config keys to values")
                continue
            bad = [k for k in (v.get("set") or {}) if str(k).split(".")[0] in VARIANT_FIXED]
            if bad:
                err.append(f"{q}.set: {bad} would change what every arm shares ({', '.join(VARIANT_FIXED)}); "
                           "run a separate bench for that")
        if not self.budgets:
            err.append(f"{p}.budgets must list at least one fraction in (0, 1]")
        bad = [a for a in self.arms if a not in ARMS]
        if bad or not self.arms:
            err.append(f"{p}.arms: unknown arms {bad}; choose from {', '.join(ARMS)}")


@dataclass
class PlanConfig:
    """Choosing the intermediates and the recipe (patent claims 8, 17): ``fspladder plan`` and
    ``intermediates: auto``."""

    intermediates: Literal["fixed", "auto"] = "fixed"  # auto: plan, then run the chosen chain
    time_budget: float | None = num(None, 0, BIG, lo_open=True)  # seconds for the whole pipeline
    target_accuracy: float | None = num(None, 0, 1, lo_open=True)  # the target's probe validation accuracy
    max_intermediates: int = num(2, 0, 10)
    intermediate_stage2_epochs: int | None = num(2, 1, EPOCHS)  # stage-2 epochs of planned intermediates
    # Recipes the planner compares (each where it applies; growth needs the ResNet family).
    recipes: list[str] = field(default_factory=lambda: ["patent", "grow", "w2s"])
    probe_train_images: int = num(5000, 1, BIG)  # training subset for the probes
    probe_stage1_epochs: float = num(0.5, 0, 1000)
    probe_stage2_epochs: int = num(1, 1, 1000)
    noise_seeds: int = num(2, 1, 10)  # the cheapest candidate is probed with this many seeds to measure noise
    profile_steps: int = num(3, 1, 1000)  # timed steps per network and stage (after two warm-up steps)
    planning_budget: float = num(300.0, 0, BIG, lo_open=True)  # seconds; the planner stays within them

    def _check(self, p: str, err: list[str]) -> None:
        if not self.recipes:
            err.append(f"{p}.recipes must list at least one recipe (e.g. [patent])")
        for i, r in enumerate(self.recipes):
            err += parse_recipe(r, f"{p}.recipes[{i}]")[1]


@dataclass
class RunConfig:
    # Keys of earlier versions: a value gets this message (an old resolved config's null is dropped quietly).
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "tensorboard": "was replaced by `track: [tensorboard]` (event files under OUT/tensorboard/); remove "
                       "`tensorboard:` and write `track: [tensorboard]` (or --set 'track=[tensorboard]') instead"}
    seed: int = num(0, 0, 2**31 - 1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool = True
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: bf16 autocast on CUDA, off on CPU
    # The frozen previous network's forward when it makes training targets (not the patent's concern):
    # auto = amp's mode if on, else bf16 where the device has native bf16, else off. See precision.py.
    teacher_amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    compile: bool = False  # torch.compile the student for stage 2
    # Experiment trackers that also receive the metrics (off by default; `pip install 'fspladder[track]'`):
    # tensorboard (event files under OUT/tensorboard/), mlflow (OUT/mlruns/ unless MLFLOW_TRACKING_URI is set).
    track: list[Literal["tensorboard", "mlflow"]] = field(default_factory=list)
    eval_batch_size: int = num(1000, 1, BATCH)
    progress: bool = True
    # How every rung learns from the network before it, unless the rung names its own: a preset
    # (patent, grow, w2s, grow-w2s, ...) or {init, stage1, guidance}. See recipes.py.
    recipe: Any = "patent"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    rungs: list[RungConfig] = field(
        default_factory=lambda: [RungConfig(model="resnet14", name="student1", stage2={"epochs": 2}),
                                 RungConfig(model="resnet20", name="target")]
    )
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    bench: BenchConfig = field(default_factory=BenchConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)

    def _check(self, p: str, err: list[str]) -> None:
        err += parse_recipe(self.recipe, "recipe")[1]
        if not self.rungs:
            err.append("rungs must list at least one student (the last one is the target)")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            err.append(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        err += tracker_problems(self.track)
        for name, v in self.bench.variants.items():
            if isinstance(v, dict) and isinstance(v.get("set") or {}, dict):
                try:
                    variant_config(self, v.get("set") or {})
                except ConfigError as e:
                    err += [f"bench.variants.{name}.set: {x}" for x in e.problems]
        if self.data.stream is True and (self.stage1.cache_teacher or any(r.stage1.get("cache_teacher")
                                                                          for r in self.rungs)):
            err.append("stage1.cache_teacher needs the in-memory data path, and data.stream is true; set one of them "
                       "false")
        names = [r.name for r in self.rungs]
        if len(set(names)) != len(names):
            err.append(f"rungs: names must be unique, got {names}")
        err += self.stage1_epochs_problems()
        for i, r in enumerate(self.rungs):
            for stage, cls in (("stage1", Stage1Config), ("stage2", Stage2Config)):
                if not getattr(r, stage):
                    continue
                merged = {**config_to_dict(getattr(self, stage)), **getattr(r, stage)}
                sub: list[str] = []
                build(cls, merged, f"rungs[{i}].{stage}", sub)
                # Report only what the rung's overrides caused, not the run-wide problems again.
                err += [e for e in sub if e.replace(f"rungs[{i}].", "", 1) not in err]

    def stage1_epochs_problems(self, planning: bool = False) -> list[str]:
        """A recipe with an FSP stage 1 given ``stage1.epochs: 0`` would train without stage 1 yet be recorded as
        that recipe: refused, for the rungs and for the recipes the planner may choose (``planning``: the command
        plans, ``fspladder plan``; else only where ``plan.intermediates`` is auto)."""
        err = []
        for i, r in enumerate(self.rungs):
            recipe = parse_recipe(r.recipe if r.recipe is not None else self.recipe)[0]
            epochs = r.stage1.get("epochs", self.stage1.epochs)
            if recipe is not None and recipe.has_stage1 and epochs == 0:
                key = f"rungs[{i}].stage1.epochs" if "epochs" in r.stage1 else "stage1.epochs"
                err.append(f"{key} is 0 with recipe {recipe_name(recipe) or recipe} (rung {r.name}), which trains "
                           "an FSP stage 1: use recipe scratch (no stage 1) or set stage1.epochs > 0")
        fsp = [str(x) for x in self.plan.recipes if (parse_recipe(x)[0] or PRESETS["scratch"]).has_stage1]
        if fsp and self.plan.probe_stage1_epochs == 0:
            err.append(f"plan.probe_stage1_epochs is 0, but plan.recipes has {', '.join(fsp)}, which train an FSP "
                       "stage 1: set plan.probe_stage1_epochs > 0 or drop them from plan.recipes")
        if fsp and (planning or self.plan.intermediates == "auto") and self.stage1.epochs == 0:
            err.append(f"stage1.epochs is 0, but the plan may choose {', '.join(fsp)} from plan.recipes, which train "
                       "an FSP stage 1: set stage1.epochs > 0 or drop them from plan.recipes")
        return err

    def recipe_for(self, rung: RungConfig, override: Any = None) -> Recipe:
        """The recipe ``rung`` trains by: ``override`` (a bench arm's), else its own, else the run's."""
        value = override if override is not None else (rung.recipe if rung.recipe is not None else self.recipe)
        recipe, problems = parse_recipe(value)
        if recipe is None:
            raise ConfigError(problems)
        return recipe

    def projects_channels(self, rungs: list[RungConfig] | None = None) -> bool:
        """Whether any of ``rungs`` (default: all) aligns tapped channels with projections in stage 1."""
        return any(self.stage_for(rc, "stage1").project_channels for rc in (self.rungs if rungs is None else rungs))

    def stage_for(self, rung: RungConfig, stage: str, recipe: Any = None) -> Any:
        """The run-wide stage settings with the rung's overrides applied; stage 2's null keys filled from the
        rung's recipe (or ``recipe``, a bench arm's)."""
        cls = Stage1Config if stage == "stage1" else Stage2Config
        merged = {**config_to_dict(getattr(self, stage)), **getattr(rung, stage)}
        err: list[str] = []
        out = build(cls, merged, stage, err)
        if err:
            raise ConfigError(err)
        return out.resolved(self.recipe_for(rung, recipe)) if stage == "stage2" else out

    def recipe_key_problems(self, recipes: list[Recipe] | None = None,
                            nobody: str = "no recipe here uses it", rungs_train: bool = True,
                            first: int = 0) -> list[str]:
        """Stage-2 keys set to a value that no recipe here reads (they would change nothing).

        ``recipes``: every recipe the run or bench trains with (default: the rungs'). A run-wide key must
        be read by one of them; with ``rungs_train`` (a run: every rung trains by its own recipe) a rung's own
        key must be read by that rung's recipe. ``first``: the index, in the user's ``rungs``, of this config's
        first rung, which the lines name (a planned config holds the user's target only).
        """
        used = recipes if recipes is not None else [self.recipe_for(r) for r in self.rungs]
        problems = []

        def reader_of(key: str, rs: list[Recipe]) -> bool:
            return any(schedule_defaults(r)[key] is not None for r in rs)

        run_wide = config_to_dict(self.stage2)
        for i, r in enumerate(self.rungs):  # decay_fraction needs the wsd schedule, the recipe's by default
            merged = {**run_wide, **r.stage2}
            if merged.get("decay_fraction") is not None and merged.get("schedule") is None:
                rs = used if recipes is not None else [self.recipe_for(r)]
                if not any(schedule_defaults(x)["schedule"] == "wsd" for x in rs):
                    where = f"rungs[{first + i}].stage2" if r.stage2.get("decay_fraction") is not None else "stage2"
                    problems.append(f"{where}.decay_fraction is set, but the schedule is cosine (the recipe's); it is "
                                    "read by schedule wsd only: set stage2.schedule: wsd or remove decay_fraction")
                    break
        for key in RECIPE_DEFAULT_KEYS:
            if run_wide[key] is not None and not reader_of(key, used):
                problems.append(f"stage2.{key} is set to {run_wide[key]}, but {nobody} ({_users(key)}); remove it, "
                                "or pick such a recipe")
        for i, r in enumerate(self.rungs):
            for key in RECIPE_DEFAULT_KEYS:
                if r.stage2.get(key) is not None and rungs_train and not reader_of(key, [self.recipe_for(r)]):
                    problems.append(f"rungs[{first + i}].stage2.{key} is set, but rung {r.name}'s recipe "
                                    f"({self.recipe_for(r)}) does not use it ({_users(key)}); remove it")
        return problems

    def planned_key_problems(self, recipes: list[str] | None = None) -> dict[str, list[str]]:
        """``plan.intermediates: auto``: each recipe of ``recipes`` (default ``plan.recipes``, as named there) with
        the stage-2 keys set here that a chain planned with it would not read (:meth:`recipe_key_problems` of the
        config the planner hands the run, ``plan.auto.planned_config``: its rungs by that recipe; ``[]``: it takes
        them all). The planner skips the candidates of a recipe with problems, and ``check`` refuses only when every
        recipe has some, so a planned run never refuses the chain it was handed. Unparsable names are left out
        (refused on their own)."""
        if not self.rungs:
            return {}
        out: dict[str, list[str]] = {}
        for name in self.plan.recipes if recipes is None else recipes:
            if parse_recipe(name)[0] is None:
                continue
            # the planned intermediates' stage 2 sets its epochs only, never a recipe's key: the target stands for all
            planned = copy.copy(self)
            planned.recipe, planned.rungs = name, [copy.copy(self.rungs[-1])]
            planned.rungs[0].recipe = None
            out[name] = planned.recipe_key_problems(nobody=f"recipe {name} does not use it", first=len(self.rungs) - 1)
        return out


def _users(key: str) -> str:
    return {"kd_temperature": "only soft-target recipes do: guidance kd or kd-early",
            "kd_alpha": "only soft-target recipes do: guidance kd or kd-early",
            "kd_until": "only guidance kd-early does",
            "fsp_weight": "only guidance joint does",
            "growth_noise": "only recipes with init grow do"}.get(key, "every recipe does")


def variant_config(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """``cfg`` with ``{dotted.key: value}`` overrides applied (as ``--set`` would), parsed strictly."""
    items = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]  # JSON is valid YAML
    data = config_to_dict(cfg)
    data["bench"] = {**data["bench"], "variants": {}, "arm_budgets": {}}  # a variant's own config holds no variants
    err: list[str] = []
    out = build(RunConfig, apply_overrides(data, items), "", err)  # as parse_config builds (data has its rungs)
    if err:
        raise ConfigError(err)
    return out
