"""Run configuration: dataclasses parsed strictly from YAML (unknown keys are errors).

Every problem in a config is collected and reported at once, each naming its
key path (``stage1.lr``) and what would fix it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "ConfigError", "DataConfig", "ModelConfig", "TeacherConfig", "Stage1Config", "Stage2Config", "RungConfig",
    "RunConfig", "BenchConfig", "PlanConfig", "load_config", "parse_config", "parse_config_lenient", "read_config_data", "apply_overrides", "config_to_dict",
]


class ConfigError(ValueError):
    """One or more problems in a configuration; ``problems`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class DataConfig:
    name: Literal["fashion-mnist", "idx", "cifar10", "cifar100", "folder"] = "fashion-mnist"
    root: str | None = None  # folder of the data files; None = the data set's default location
    image_size: int = 32  # folder data sets: images are resized to this square size
    channels: int = 3  # folder data sets: 1 = grey, 3 = RGB
    val_size: int = 5000  # training images held out for validation
    classes: list[int] | None = None  # keep only these labels, renumbered 0..k-1
    train_subset: int | None = None  # use only the first N training images (smoke tests)
    test_subset: int | None = None  # evaluate on only the first N test images (smoke tests)
    crop_pad: int = 2  # random-crop padding in pixels; 0 disables
    flip: bool = True  # random horizontal flips

    def _check(self, p: str, err: list[str]) -> None:
        if self.val_size < 1:
            err.append(f"{p}.val_size must be >= 1, got {self.val_size}")
        for k in ("train_subset", "test_subset"):
            v = getattr(self, k)
            if v is not None and v < 1:
                err.append(f"{p}.{k} must be >= 1 or null, got {v}")
        if self.crop_pad < 0:
            err.append(f"{p}.crop_pad must be >= 0, got {self.crop_pad}")
        if self.name != "fashion-mnist" and self.root is None:
            err.append(f"{p}.root is required when {p}.name is {self.name!r}: set it to the data folder")
        if self.channels not in (1, 3) or self.image_size < 4:
            err.append(f"{p}: channels must be 1 or 3 and image_size >= 4, got {self.channels}, {self.image_size}")
        if self.root is not None and not Path(self.root).is_dir():
            err.append(f"{p}.root: folder {self.root!r} does not exist")
        if self.classes is not None and (len(set(self.classes)) != len(self.classes) or len(self.classes) < 2):
            err.append(f"{p}.classes must list at least two distinct labels, got {self.classes}")


@dataclass
class ModelConfig:
    """A network of the ladder: a registered model name plus its keyword arguments."""

    model: str = "resnet20"
    kwargs: dict[str, Any] = field(default_factory=dict)
    # FSP pairs as [first_tap, second_tap]; None = the model's default_fsp_pairs.
    pairs: list[list[str]] | None = None

    def _check(self, p: str, err: list[str]) -> None:
        from .models import is_model, list_models

        if not is_model(self.model):
            close = difflib.get_close_matches(self.model, list_models(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            err.append(f"{p}.model: unknown model {self.model!r}{hint}; see `fspladder models`")
        if self.pairs is not None:
            for i, pair in enumerate(self.pairs):
                if len(pair) != 2:
                    err.append(f"{p}.pairs[{i}] must be two tap names like [stem, layer1], got {pair}")


@dataclass
class TeacherConfig:
    """The trained first network. Its architecture comes from its checkpoint."""

    checkpoint: str = "builtin:resnet8_fmnist"  # a path or 'builtin:NAME' (shipped in the package)
    model: str | None = None  # if set, the checkpoint must hold this model
    kwargs: dict[str, Any] = field(default_factory=dict)  # if set, must match the checkpoint's
    pairs: list[list[str]] | None = None  # FSP pairs; None = the model's default_fsp_pairs

    def _check(self, p: str, err: list[str]) -> None:
        if self.model is not None:
            ModelConfig(model=self.model, pairs=self.pairs)._check(p, err)


@dataclass
class Stage1Config:
    """Stage 1: match the previous network's FSP matrices (patent eq. 3)."""

    epochs: float = 1.0  # passes over the training set; fractions allowed
    batch_size: int = 128
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3  # the paper's 1e-3, cosine-decayed to min_lr (1e-5)
    min_lr: float = 1e-5
    momentum: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float | None = 5.0  # max global gradient norm; None disables
    pair_weights: list[float] | None = None  # lambda_i; None = all 1.0 [patent 0098]
    augment: bool = True
    # Width growth: align mismatched tapped channels with learned 1x1 projections used in
    # stage 1 only (not in the patent; off = FSP shapes must match exactly).
    project_channels: bool = False
    # Cheaper stage 1 (issue 9); the defaults are the patent's plain recipe.
    images: int | None = None  # train stage 1 on this many training images (a seeded subset); None = all
    cache_teacher: bool = False  # compute the previous network's FSP matrices once (needs augment: false)
    plateau: float | None = None  # stop once a window of steps lowers the mean loss by less than this fraction
    loss_norm: Literal["patent", "element", "pair"] = "patent"  # see losses.fsp_loss

    def _check(self, p: str, err: list[str]) -> None:
        if self.cache_teacher and self.augment:
            err.append(f"{p}.cache_teacher needs fixed inputs: set {p}.augment: false (or cache_teacher: false)")
        if self.images is not None and self.images < 1:
            err.append(f"{p}.images must be >= 1 or null (all training images), got {self.images}")
        if self.plateau is not None and not 0 < self.plateau < 1:
            err.append(f"{p}.plateau must be a fraction in (0, 1) or null (no early stop), got {self.plateau}")
        if self.epochs < 0:
            err.append(f"{p}.epochs must be >= 0 (0 skips stage 1), got {self.epochs}")
        _positive(p, self, ("batch_size", "lr"), err)
        if self.lr > 0 and (self.min_lr < 0 or self.min_lr > self.lr):
            err.append(f"{p}.min_lr must be between 0 and lr ({self.lr}), got {self.min_lr}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            err.append(f"{p}.grad_clip must be > 0 or null, got {self.grad_clip}")


@dataclass
class Stage2Config:
    """Stage 2: train the main task with softmax cross-entropy (patent eq. 4)."""

    epochs: int = 3
    batch_size: int = 128
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.05
    min_lr: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    # Not in the patent: add fsp_weight x the FSP loss against the network stage 1 learned from
    # (stage 1's loss_norm and pair_weights) to the cross-entropy. 0 = the patent's pure CE.
    # The patent-form loss is ~1e2-1e4 for the built-in ResNets, so useful weights are ~1e-3.
    fsp_weight: float = 0.0

    def _check(self, p: str, err: list[str]) -> None:
        if self.epochs < 1:
            err.append(f"{p}.epochs must be >= 1, got {self.epochs}")
        _positive(p, self, ("batch_size", "lr"), err)
        if self.lr > 0 and (self.min_lr < 0 or self.min_lr > self.lr):
            err.append(f"{p}.min_lr must be between 0 and lr ({self.lr}), got {self.min_lr}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            err.append(f"{p}.warmup_epochs must be between 0 and epochs ({self.epochs}), got {self.warmup_epochs}")
        if not 0 <= self.label_smoothing < 1:
            err.append(f"{p}.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not (self.fsp_weight >= 0 and math.isfinite(self.fsp_weight)):
            err.append(f"{p}.fsp_weight must be a finite number >= 0 (0 = cross-entropy only), got {self.fsp_weight}")


@dataclass
class RungConfig(ModelConfig):
    """One student of the chain; ``stage1``/``stage2`` override the run-wide settings key by key."""

    name: str = ""
    stage1: dict[str, Any] = field(default_factory=dict)
    stage2: dict[str, Any] = field(default_factory=dict)


ARMS = ("scratch", "direct", "ladder", "soft", "grow", "grow-fsp")
DEFAULT_ARMS = ARMS[:5]  # grow-fsp, a non-patent combination, runs only when asked for
# Keys a bench variant may not change: the data, teacher, models' memory format and logging every arm shares.
VARIANT_FIXED = ("data", "teacher", "bench", "plan", "seed", "device", "channels_last", "tensorboard", "progress")


@dataclass
class BenchConfig:
    """``fspladder bench``: arms trained at several stage-2 budgets over several seeds."""

    budgets: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])  # fractions of stage2.epochs
    seeds: int = 3
    arms: list[str] = field(default_factory=lambda: list(DEFAULT_ARMS))
    target_accuracy: float | None = None  # None = scratch's mean final val accuracy at the full budget
    kd_temperature: float = 4.0  # soft-target arm (Hinton et al. 2015)
    kd_alpha: float = 0.9
    # Named variants of an arm, each with its own config overrides, run beside the arms:
    # {"ladder-cached": {"arm": "ladder", "set": {"stage1.augment": false, "stage1.cache_teacher": true}}}
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _check(self, p: str, err: list[str]) -> None:
        for name, v in self.variants.items():
            q = f"{p}.variants.{name}"
            if name in ARMS:
                err.append(f"{q}: a variant needs its own name, not an arm's ({', '.join(ARMS)})")
            if not isinstance(v, dict) or set(v) - {"arm", "set"} or v.get("arm") not in ARMS:
                err.append(f"{q} must be a mapping {{arm: one of {', '.join(ARMS)}, set: {{key: value}}}}")
                continue
            bad = [k for k in (v.get("set") or {}) if str(k).split(".")[0] in VARIANT_FIXED]
            if bad:
                err.append(f"{q}.set: {bad} would change what every arm shares ({', '.join(VARIANT_FIXED)}); "
                           "run a separate bench for that")
        if not self.budgets or any(not 0 < b <= 1 for b in self.budgets):
            err.append(f"{p}.budgets must be fractions in (0, 1], got {self.budgets}")
        if self.seeds < 1:
            err.append(f"{p}.seeds must be >= 1, got {self.seeds}")
        bad = [a for a in self.arms if a not in ARMS]
        if bad or not self.arms:
            err.append(f"{p}.arms: unknown arms {bad}; choose from {', '.join(ARMS)}")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            err.append(f"{p}.target_accuracy must be in (0, 1], got {self.target_accuracy}")
        if self.kd_temperature <= 0 or not 0 <= self.kd_alpha <= 1:
            err.append(f"{p}: kd_temperature must be > 0 and kd_alpha in [0, 1]")


@dataclass
class PlanConfig:
    """Choosing the intermediates (patent claims 8, 17): ``fspladder plan`` and ``intermediates: auto``."""

    intermediates: Literal["fixed", "auto"] = "fixed"  # auto: plan, then run the chosen chain
    time_budget: float | None = None  # seconds for the whole pipeline (all rungs, both stages)
    target_accuracy: float | None = None  # the target's probe validation accuracy to reach
    max_intermediates: int = 2
    intermediate_stage2_epochs: int | None = 2  # stage-2 epochs of planned intermediates; None = stage2.epochs
    probe_train_images: int = 5000  # training subset for the probes
    probe_stage1_epochs: float = 0.5
    probe_stage2_epochs: int = 1
    noise_seeds: int = 2  # the cheapest chain is probed with this many seeds to measure probe noise
    profile_steps: int = 3  # timed steps per network and stage (after one warm-up step)
    planning_budget: float = 300.0  # seconds; chains whose probe would overrun it are not probed

    def _check(self, p: str, err: list[str]) -> None:
        if self.time_budget is not None and self.time_budget <= 0:
            err.append(f"{p}.time_budget must be > 0 seconds or null, got {self.time_budget}")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            err.append(f"{p}.target_accuracy must be in (0, 1] or null, got {self.target_accuracy}")
        for k in ("max_intermediates",):
            if getattr(self, k) < 0:
                err.append(f"{p}.{k} must be >= 0, got {getattr(self, k)}")
        for k in ("probe_train_images", "probe_stage2_epochs", "noise_seeds", "profile_steps"):
            if getattr(self, k) < 1:
                err.append(f"{p}.{k} must be >= 1, got {getattr(self, k)}")
        if self.probe_stage1_epochs < 0 or self.planning_budget <= 0:
            err.append(f"{p}: probe_stage1_epochs must be >= 0 and planning_budget > 0")
        if self.intermediate_stage2_epochs is not None and self.intermediate_stage2_epochs < 1:
            err.append(f"{p}.intermediate_stage2_epochs must be >= 1 or null")


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool = True
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: bf16 autocast on CUDA, off on CPU
    # The frozen previous network's forward when it makes training targets (not the patent's concern):
    # auto = amp's mode if on, else bf16 where the device has native bf16, else off. See precision.py.
    teacher_amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    compile: bool = False  # torch.compile the student for stage 2
    tensorboard: str | None = None  # also write scalars to this TensorBoard log dir (needs `pip install tensorboard`)
    eval_batch_size: int = 1000
    progress: bool = True
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
        if not self.rungs:
            err.append("rungs must list at least one student (the last one is the target)")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            err.append(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.tensorboard is not None and importlib.util.find_spec("tensorboard") is None:
            err.append("tensorboard: the tensorboard package is not installed; `pip install tensorboard`, "
                       "or remove the key (metrics.jsonl and report.html need neither)")
        if self.eval_batch_size < 1:
            err.append(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        for name, v in self.bench.variants.items():
            if isinstance(v, dict) and isinstance(v.get("set") or {}, dict):
                try:
                    variant_config(self, v.get("set") or {})
                except ConfigError as e:
                    err += [f"bench.variants.{name}.set: {x}" for x in e.problems]
        names = [r.name for r in self.rungs]
        if len(set(names)) != len(names):
            err.append(f"rungs: names must be unique, got {names}")
        for i, r in enumerate(self.rungs):
            for stage, cls in (("stage1", Stage1Config), ("stage2", Stage2Config)):
                if not getattr(r, stage):
                    continue
                merged = {**config_to_dict(getattr(self, stage)), **getattr(r, stage)}
                sub: list[str] = []
                _build(cls, merged, f"rungs[{i}].{stage}", sub)
                # Report only what the rung's overrides caused, not the run-wide problems again.
                err += [e for e in sub if e.replace(f"rungs[{i}].", "", 1) not in err]
        for i, r in enumerate(self.rungs):
            try:
                joint = self.stage_for(r, "stage2").fsp_weight > 0 and self.stage_for(r, "stage1").project_channels
            except ConfigError:
                continue  # already reported above
            if joint:
                err.append(f"rungs[{i}] ({r.name or r.model}): stage2.fsp_weight > 0 with stage1.project_channels "
                           "is not supported (the projections serve stage 1 only); set stage2.fsp_weight: 0 "
                           "or use a rung whose tapped channels match the previous network's")

    def projects_channels(self, rungs: list[RungConfig] | None = None) -> bool:
        """Whether any of ``rungs`` (default: all) aligns tapped channels with projections in stage 1."""
        return any(self.stage_for(rc, "stage1").project_channels for rc in (self.rungs if rungs is None else rungs))

    def stage_for(self, rung: RungConfig, stage: str) -> Any:
        """The run-wide stage settings with the rung's overrides applied."""
        cls = Stage1Config if stage == "stage1" else Stage2Config
        merged = {**config_to_dict(getattr(self, stage)), **getattr(rung, stage)}
        err: list[str] = []
        out = _build(cls, merged, stage, err)
        if err:
            raise ConfigError(err)
        return out


def _positive(p: str, obj: Any, keys: tuple[str, ...], err: list[str]) -> None:
    for k in keys:
        if getattr(obj, k) <= 0:
            err.append(f"{p}.{k} must be > 0, got {getattr(obj, k)}")


# ---------------------------------------------------------------- strict parsing


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check ``value`` against annotation ``tp``; returns (ok, converted value)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _type_ok(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin is list:
        if not isinstance(value, list):
            return False, value
        (arg,) = typing.get_args(tp)
        out = []
        for v in value:
            ok, c = _type_ok(v, arg)
            if not ok:
                return False, value
            out.append(c)
        return True, out
    if origin is dict:
        return isinstance(value, dict), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-3 without a dot as a string
            try:
                return True, float(value)
            except ValueError:
                pass
        return False, value
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp), value


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp)).replace("list", "a list")


def _build(cls: type, data: Any, path: str, err: list[str]) -> Any:
    """Build dataclass ``cls`` from ``data``, appending every problem to ``err``."""
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        err.append(f"{where} must be a mapping of keys to values, got {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
            err.append(f"{key_path}: unknown key{hint}")
            continue
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, key_path, err)
        elif typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            if not isinstance(value, list):
                err.append(f"{key_path} must be a list, got {type(value).__name__}")
                continue
            item = typing.get_args(tp)[0]
            kwargs[key] = [_build(item, v, f"{key_path}[{i}]", err) for i, v in enumerate(value)]
        else:
            ok, conv = _type_ok(value, tp)
            if not ok:
                err.append(f"{key_path} must be {_describe(tp)}, got {value!r}")
                continue
            kwargs[key] = conv
    obj = cls(**kwargs)
    if isinstance(obj, RungConfig) and not obj.name:
        obj.name = obj.model
    # Fields with a type error kept their defaults, so range checks stay meaningful.
    check = getattr(obj, "_check", None)
    if check is not None:
        check(path, err)
    return obj


def parse_config(data: dict[str, Any] | None) -> RunConfig:
    """Build a :class:`RunConfig` from a plain mapping; raises :class:`ConfigError` listing all problems."""
    cfg, err = parse_config_lenient(data)
    if err:
        raise ConfigError(err)
    return cfg


def parse_config_lenient(data: dict[str, Any] | None) -> tuple[RunConfig, list[str]]:
    """Like :func:`parse_config` but returns the problems; fields with problems keep their defaults."""
    err: list[str] = []
    return _build(RunConfig, data or {}, "", err), err


def read_config_data(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The raw mapping of a YAML config file (empty for None) with ``--set`` overrides applied."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError([f"config file {path} does not exist"])
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError([f"{path} is not valid YAML: {e}"]) from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError([f"{path} must hold a mapping at top level, got {type(loaded).__name__}"])
        data = loaded or {}
    return apply_overrides(data, overrides or [])


def config_to_dict(cfg: Any) -> Any:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (value parsed as YAML) to a raw config mapping.

    List items are addressed by index: ``rungs.1.model=resnet32``.
    """
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError([f"--set {item!r}: expected key=value, e.g. --set stage2.epochs=5"])
        value = yaml.safe_load(raw) if raw else None
        parts = key.split(".")
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, parts[: i + 1], data)
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, key)] = value
        else:
            node[last] = value
    return data


def _child(node: Any, part: str, walked: list[str], root: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, ".".join(walked))]
    nxt = node.get(part)
    if nxt is None:
        if part in ("rungs",) and node is root:
            nxt = [config_to_dict(r) for r in RunConfig().rungs]
        else:
            nxt = {}
        node[part] = nxt
    elif isinstance(nxt, dict):
        nxt = dict(nxt)
        node[part] = nxt
    elif isinstance(nxt, list):
        nxt = [dict(x) if isinstance(x, dict) else x for x in nxt]
        node[part] = nxt
    return nxt


def _index(node: list[Any], part: str, key: str) -> int:
    try:
        i = int(part)
    except ValueError:
        raise ConfigError([f"--set {key}: {part!r} must be a list index (0..{len(node) - 1})"]) from None
    if not 0 <= i < len(node):
        raise ConfigError([f"--set {key}: index {i} is out of range (the list has {len(node)} items)"])
    return i


def variant_config(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """``cfg`` with ``{dotted.key: value}`` overrides applied (as ``--set`` would), parsed strictly."""
    items = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]  # JSON is valid YAML
    data = config_to_dict(cfg)
    data["bench"] = {**data["bench"], "variants": {}}  # a variant's own config holds no variants
    return parse_config(apply_overrides(data, items))


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the built-in default when ``path`` is None) and apply overrides."""
    return parse_config(read_config_data(path, overrides))
