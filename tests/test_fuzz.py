"""Issue 25: no traceback from any input. Hypothesis draws whole commands, not a list of cases.

Every command (``run``, ``check``, ``bench``, ``plan``, ``train``, ``predict``, ``report``, ``layers``, ``models``)
with drawn arguments; every config key, derived from the dataclasses of ``fspladder.config.schema`` (nothing hand-
listed), set to a valid, wrong-typed, out-of-range, empty or oversized value, lists one item too short or too long,
malformed recipes, and paths that exist as files or folders, do not exist, or cannot be written. Issue 34 added:
rung and bench variant names that would be paths (separators, ``..``), models whose forward returns the wrong shape
or type (``custom_models.BAD_OUTPUT_MODELS``), size keys and batch sizes drawn around the data's real size, and
``check`` on the default Fashion-MNIST data. The rule asserted for each: no ``Traceback`` and no "internal error" in
the output; exit 0 or 2; a refusal (exit 2) writes nothing; the user's files stay as they were; and whatever
``check`` accepts, ``run`` does not refuse later (and what it refuses, ``run`` refuses too); nothing is written
outside the sandbox; a path-like name is refused with one line per problem; a batch that leaves an epoch fewer than
10 steps is warned about.

Commands run in-process (``fspladder.cli.main`` with argv, output captured) on tiny IDX data (64 training
images, 12x12): a drawn config that would train for long (many epochs or images, big models, torch.compile,
planning) runs ``check`` instead. The pinned profile (conftest.py) draws ``FUZZ_EXAMPLES`` commands;
``HYPOTHESIS_PROFILE=deep`` draws more, with fresh randomness (``--hypothesis-seed=N`` to pick one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import typing
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from conftest import make_idx_folder, train_tiny_teacher
from custom_models import BAD_OUTPUT_MODELS
from hypothesis import given, settings
from hypothesis import strategies as st

from fspladder.cli import main
from fspladder.config import RunConfig, RungConfig, Stage1Config, Stage2Config, parse_config_lenient, read_config_data
from fspladder.config.schema import Range
from fspladder.recipes import ARMS, PRESETS

# Whole commands take ~1 s each: fewer examples than conftest's profiles give the other properties (same profile
# otherwise: pinned and derandomised by default, fresh randomness under HYPOTHESIS_PROFILE=deep).
FUZZ_EXAMPLES = 150 if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else 30


# ---------------------------------------------------------------- the config keys, from the schema
@dataclasses.dataclass(frozen=True)
class Key:
    path: str  # dotted, as --set takes it
    tp: Any  # the annotation
    default: Any
    rng: Range | None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _walk(cls: type, prefix: str, out: list[Key]) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, path = hints[f.name], prefix + f.name
        if dataclasses.is_dataclass(tp):
            _walk(tp, path + ".", out)
            continue
        out.append(Key(path, tp, _default(f), f.metadata.get("range")))
        if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            _walk(typing.get_args(tp)[0], path + ".1.", out)  # the target rung (rungs.1.model, ...)
        if cls is RungConfig and f.name in ("stage1", "stage2"):  # a rung's own stage settings, key by key
            _walk(Stage1Config if f.name == "stage1" else Stage2Config, path + ".", out)


def config_keys() -> list[Key]:
    out: list[Key] = []
    _walk(RunConfig, "", out)
    return out


KEYS = config_keys()


def test_the_fuzzer_draws_every_config_key():
    paths = {k.path for k in KEYS}
    for name in ("seed", "data.train_subset", "stage1.pair_weights", "rungs.1.recipe", "rungs.1.stage2.epochs",
                 "bench.variants", "plan.recipes", "teacher.checkpoint"):
        assert name in paths
    assert len(paths) == len(KEYS) > 80


# ---------------------------------------------------------------- values
PATH_KINDS = ["file", "folder", "missing", "below-file", "unwritable", "empty", "yaml", "bad-yaml", "ckpt", "run",
              "img", "imgs"]
RECIPES_BAD = ["patentt", "", {"init": "grow"}, {"init": "fresh", "stage1": "fsp", "guidance": "ce"},
               {"init": "grow", "stage1": "none", "guidance": "ce", "extra": 1}, ["patent"], 3, None,
               {"init": "random", "stage1": "fsp", "guidance": "kd-late"}]
RECIPES_OK = list(PRESETS) + [{"init": "grow", "stage1": "none", "guidance": "kd"}]
OVERSIZED = [10**30, 1e308, -(10**30), "x" * 3000, [1.0] * 500, {"a": {"b": {"c": [1, [2, [3]]]}}}]
WRONG_TYPED = ["abc", [1], {"a": 1}, True, 1.5, "1e-3x"]
# Names that would become paths (issue 34): separators, `..`, absolute paths. Each must be refused in one line.
UNSAFE_NAMES = ["a/b", "../up", "x/../../../../escaped", "..", ".", "/abs", "a\\b", "a/", "-lead", "sp ace", "",
                "n" * 300]
# A rung's name set empty is documented to mean the model's name (config/parse.py), so it runs: not drawn for rungs.
UNSAFE_RUNG_NAMES = [n for n in UNSAFE_NAMES if n != ""]
# The tiny data's real sizes (make_idx_folder: 600 training images, 200 test, 4 classes; BASE holds out 100 and
# trains on the first 64) and the default data's (Fashion-MNIST: 60,000 and 10,000, 10 classes).
TINY = {"train": 600, "test": 200, "subset": 64}
FMNIST = {"train": 60_000, "test": 10_000}


def _around(n: int) -> list[int]:
    """Sizes around ``n``: the edges, a tenth (the batch that leaves an epoch ten steps), half, double."""
    return sorted({v for v in (1, 2, n // 10, n // 10 + 1, n // 2, n - 1, n, n + 1, 2 * n) if v >= 0})


# Size keys relative to a data set's real size (`data.val_size` is out of the training images, the subsets and
# batch sizes out of what is left).
def size_values(sizes: dict[str, int]) -> dict[str, list[int]]:
    left = sizes["train"] - 100
    return {"data.val_size": [0] + _around(sizes["train"]), "data.train_subset": _around(left),
            "data.test_subset": _around(sizes["test"]),
            "stage2.batch_size": _around(sizes.get("subset", left)) + _around(left)[-3:],
            "stage1.batch_size": _around(sizes.get("subset", left)), "stage1.images": _around(left)[:4],
            "rungs.1.stage2.batch_size": _around(sizes.get("subset", left))}


class P(str):
    """A path placeholder, made real inside each example's sandbox."""


def _numbers(key: Key, is_int: bool) -> tuple[list[Any], list[Any]]:
    """(in range, out of range or not finite) numbers for a numeric key."""
    r = key.rng
    cands: list[Any] = [float("nan"), float("inf"), float("-inf"), 0, 1, 2, 0.5, 0.01, -1]
    if r is not None:
        lo = r.lo if math.isfinite(r.lo) else -1e9
        hi = r.hi if math.isfinite(r.hi) else 1e9
        cands += [lo, hi, lo - 1, hi * 10 + 10, (lo + hi) / 2, min(hi, lo + 1)]
    cands = [int(v) if is_int and isinstance(v, float) and math.isfinite(v) and abs(v) < 1e18 else v for v in cands]
    if is_int:
        cands = [v for v in cands if not isinstance(v, float) or not math.isfinite(v)] + [0.5]
    ok = [v for v in cands if isinstance(v, (int, float)) and (r is None or r.holds(v)) and
          not (is_int and isinstance(v, float))]
    return ok, [v for v in cands if v not in ok]


def values_for(key: Key) -> tuple[list[Any], list[Any]]:
    """(valid, invalid) candidate values of one key: valid ones, and wrong-typed, out-of-range, empty, oversized
    and off-by-one ones (some "invalid" ones are valid for some keys: the property holds either way)."""
    tp, default = key.tp, key.default
    text = str(tp)
    good: list[Any] = [default]
    bad: list[Any] = [None, "", [], {}] + WRONG_TYPED + OVERSIZED
    args = typing.get_args(tp)
    lits = [tp] if typing.get_origin(tp) is Literal else [a for a in args if typing.get_origin(a) is Literal]
    for lit in lits:
        good += list(typing.get_args(lit))
        bad.append("nope")
    if tp is bool:
        good += [True, False]
    if "int" in text or "float" in text:
        ok, out = _numbers(key, "float" not in text)
        if "list" in text:
            n = len(default) if isinstance(default, list) else 3  # pair_weights: the three FSP pairs of a ResNet
            one = ok[0] if ok else 1
            good += [[one] * n] if n else []
            bad += [[one] * m for m in (n - 1, n + 1) if m >= 0] + [[x] * max(n, 1) for x in out[:4]]
        else:
            good += ok
            bad += out
    if key.path.endswith(("checkpoint", "root", "tensorboard")):
        good += [P("ckpt") if key.path.endswith("checkpoint") else P("idx")]
        bad += [P(k) for k in PATH_KINDS] + ["builtin:nope"]
        good += ["builtin:resnet8_fmnist"] if key.path.endswith("checkpoint") else []
    if key.path == "device":
        good += ["cpu", "auto"]
        bad += ["cuda:7", "mps", "tpu"]
    if key.path.endswith("recipe") or key.path == "plan.recipes":
        good += [[r] for r in RECIPES_OK] if key.path == "plan.recipes" else RECIPES_OK
        bad += RECIPES_BAD + [[r] for r in RECIPES_BAD[:3]]
    if key.path.endswith("model"):
        good += ["resnet8", "resnet14", "resnet20", "custom_models:plain_cnn"]
        bad += ["resnet32", "resnet9", "custom_models:not_a_model", "no.such:thing", *BAD_OUTPUT_MODELS]
    if key.path.endswith("kwargs"):
        good += [{"depth": 14}, {"width": 2}]
        bad += [{"depth": 10}, {"width": 0}, {"bogus": 1}]
    if key.path.endswith("pairs"):
        good += [[["stem", "layer1"], ["layer1", "layer2"], ["layer2", "layer3"]], [["stem", "layer1"]]]
        bad += [[["stem", "nowhere"]], [["stem"]], [["stem", "layer1", "layer2"]]]
    if key.path == "rungs":
        one = {"name": "target", "model": "resnet14"}
        good += [[one], [{"name": "s", "model": "resnet14"}, {"name": "t", "model": "resnet20"}]]
        bad += [[{"name": "s", "model": "resnet14"}, {"name": "t", "model": "resnet20"},
                 {"name": "u", "model": "resnet32"}],
                [one, one], [{"model": "resnet8"}], ["resnet14"]]
    if key.path == "bench.arms":
        good += [[a] for a in ARMS]
        bad += [["scratch", "nope"], list(ARMS)]
    if key.path == "bench.variants":
        good += [{"v": {"arm": "scratch", "set": {"stage2.lr": 0.1}}}]
        bad += [{"scratch": {"arm": "scratch"}}, {"v": {"arm": "nope"}}, {"v": {"arm": "ladder", "set": {"seed": 3}}},
                {"v": 3}] + [{n: {"arm": "scratch"}} for n in UNSAFE_NAMES]
    if key.path == "data.classes":
        good += [[0, 1], [0, 1, 2], [1, 0, 3]]
        bad += [[0, 9], [0, 0], [2]]
    if key.path.endswith("name") and key.path.startswith("rungs"):
        good += ["student1", "big", "v1.2_b-3"]
        bad += UNSAFE_RUNG_NAMES
    return good, bad


def _yaml(v: Any) -> str:
    if isinstance(v, P):
        return str(v)
    if isinstance(v, float) and math.isnan(v):
        return ".nan"
    if isinstance(v, float) and math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    return json.dumps(v, default=dataclasses.asdict)  # a default that is a dataclass (the rungs) as its keys


RAW_SETS = ["stage2.epochs", "=3", "stage2..epochs=1", "rungs.9.model=resnet8", "rungs.x.model=resnet8",
            "stage2.epochs=[1,", "data={a", "seed=: :", "stage2.epochs.x=1", "nope=1"]


@st.composite
def config_sets(draw, sizes: dict[str, int] = TINY) -> list[str]:
    """One to three ``--set KEY=VALUE`` items, mostly from the schema, sometimes malformed, sometimes a size key
    drawn around the data's real size (``sizes``), sometimes a name that would be a path."""
    out = []
    for _ in range(draw(st.integers(0, 2))):
        what = draw(st.integers(0, 9))
        if what == 0:
            out.append(draw(st.sampled_from(RAW_SETS)))
            continue
        if what in (1, 2):
            key, vals = draw(st.sampled_from(sorted(size_values(sizes).items())))
            out.append(f"{key}={draw(st.sampled_from(vals))}")
            continue
        if what == 4:  # a model whose forward returns the wrong shape or type
            out.append(f"rungs.{draw(st.integers(0, 1))}.model={draw(st.sampled_from(BAD_OUTPUT_MODELS))}")
            continue
        if what == 3:
            key = draw(st.sampled_from(["rungs.0.name", "rungs.1.name", "bench.variants"]))
            name = draw(st.sampled_from(UNSAFE_NAMES if key == "bench.variants" else UNSAFE_RUNG_NAMES))
            out.append(f"{key}={_yaml({name: {'arm': 'scratch'}} if key == 'bench.variants' else name)}")
            continue
        key = draw(st.sampled_from(KEYS))
        good, bad = values_for(key)
        out.append(f"{key.path}={_yaml(draw(st.sampled_from(good if draw(st.integers(0, 9)) < 6 else bad)))}")
    return out


def path_arg(kind: str) -> P:
    return P(kind)


paths = st.sampled_from(PATH_KINDS).map(path_arg)
numbers = st.sampled_from(["1", "0", "-1", "2", "0.5", "nan", "inf", "1e9", "abc", ""])


# ---------------------------------------------------------------- commands
BASE = ["stage1.batch_size=32", "stage2.batch_size=32", "eval_batch_size=200", "data.train_subset=64",
        "data.test_subset=50", "stage1.epochs=0.25", "stage2.epochs=1", "rungs.0.stage2.epochs=1",
        "bench.seeds=1", "bench.budgets=[1]", "bench.arms=[scratch]", "plan.planning_budget=5",
        "plan.probe_train_images=64"]


def _sets(items: list[str]) -> list[str]:
    return [a for s in items for a in ("--set", s)]


@st.composite
def commands(draw) -> list[str]:
    cmd = draw(st.sampled_from(["run", "run", "run", "check", "check", "bench", "plan", "train", "predict",
                                "predict", "report", "layers", "models", "check-default"]))
    if cmd == "check-default":  # the default data (Fashion-MNIST), where `check` alone is cheap: sizes around its own
        return ["check-default", *_sets(draw(config_sets(FMNIST))), "--no-progress"]
    argv: list[str] = [cmd]
    if cmd in ("run", "check", "bench", "plan", "train"):
        if draw(st.integers(0, 4)) == 0:
            argv.append(draw(paths))
        argv += _sets(BASE) + _sets(draw(config_sets())) + ["--no-progress"]
    if cmd == "check" and draw(st.booleans()):
        argv.append("--bench")  # also every bench arm and variant
    if cmd in ("run", "bench", "plan") and draw(st.booleans()):
        argv += ["--out", draw(paths)]
    if cmd in ("run", "bench") and draw(st.integers(0, 5)) == 0:
        argv += ["--resume", draw(paths)]
    if cmd == "bench" and draw(st.integers(0, 5)) == 0:
        argv += ["--extend", draw(paths)]  # no drawn path holds a bench: refused before any training
    if cmd in ("run", "bench"):
        argv += ["--no-report"] if draw(st.integers(0, 5)) else []
    if cmd == "bench":
        for flag, vals in (("--seeds", numbers), ("--budgets", st.sampled_from(["1", "0.5,1", "0", "2", "a", ""])),
                           ("--arms", st.sampled_from(["scratch", "grow", "scratch,nope", "", "ladder"])),
                           ("--target-accuracy", numbers), ("--preset", st.sampled_from(["quick", "huge"]))):
            if draw(st.integers(0, 3)) == 0:
                argv += [flag, draw(vals)]
        if draw(st.integers(0, 6)) == 0:
            argv.append("--micro")
    if cmd == "plan":
        for flag in ("--time-budget", "--target-accuracy", "--planning-budget"):
            if draw(st.integers(0, 3)) == 0:
                argv += [flag, draw(numbers)]
    if cmd == "train":
        argv += ["--model", draw(st.sampled_from(["resnet8", "resnet14", "resnet", "resnet9", "",
                                                  "custom_models:plain_cnn", "custom_models:not_a_model",
                                                  "no.such:thing", *BAD_OUTPUT_MODELS]))]
        if draw(st.booleans()):
            argv += ["--kwargs", draw(st.sampled_from(["{depth: 14}", "{depth: 10}", "[1, 2]", "{a", "{}", "3",
                                                       "{width: 0}"]))]
        argv += ["--save", draw(st.sampled_from([P("new-ckpt")] + [P(k) for k in PATH_KINDS]))]
    if cmd == "predict":  # mostly a real checkpoint and images, so that the other arguments get exercised
        good = draw(st.integers(0, 3)) > 0
        argv.append(draw(st.sampled_from([P("ckpt"), P("rung")]) if good else paths))
        argv += draw(st.lists(st.sampled_from([P("img"), P("imgs")]) if good else paths, max_size=2))
        if draw(st.integers(0, 3)) == 0:
            argv += ["--data", draw(paths)]
        if draw(st.integers(0, 3)) == 0:
            argv += _sets(draw(config_sets()))
        if draw(st.integers(0, 3)) == 0:
            argv += ["--split", draw(st.sampled_from(["test", "val", "train", "dev"]))]
        if draw(st.booleans()):
            argv += ["--top", draw(numbers)]
        if draw(st.booleans()):
            argv += ["--out", draw(st.sampled_from([P("new-csv")] + [P(k) for k in PATH_KINDS]))]
    if cmd == "report":
        argv.append(draw(paths))
    if cmd == "layers":
        argv.append(draw(st.sampled_from(["resnet8", "resnet20", "resnet", "resnet9", "", "custom_models:plain_cnn",
                                          "custom_models:fixed_cnn", "custom_models:not_a_model", "vit_tiny"])))
        if draw(st.booleans()):
            argv += ["--input-shape", draw(st.sampled_from(["1,28,28", "3,32,32", "1,1,1", "0,1,1", "a,b,c",
                                                            "1,28", "3,8,8,8", "-1,4,4", "5,12,12", "1,4096,2"]))]
        if draw(st.booleans()):
            argv += ["--num-classes", draw(st.one_of(numbers, st.sampled_from(["100000000", "3"])))]
    return argv


# ---------------------------------------------------------------- the sandbox
@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    """Files every example may name: tiny IDX data, a teacher, a finished run, images."""
    from PIL import Image

    root = tmp_path_factory.mktemp("fuzz")
    idx = make_idx_folder(root)
    teacher = train_tiny_teacher(root / "teacher.pt", idx)
    run = root / "finished-run"
    base = ["--set", "data.name=idx", "--set", f"data.root={idx}", "--set", "data.val_size=100",
            "--set", f"teacher.checkpoint={teacher}", *_sets(BASE), "--no-progress"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", "--out", str(run), "--no-report", *base]) == 0
    imgs = root / "imgs"
    imgs.mkdir()
    for i in range(3):
        Image.fromarray(np.full((12, 12), 40 * i, np.uint8)).save(imgs / f"{i}.png")
    return {"root": root, "idx": idx, "teacher": teacher, "run": run, "imgs": imgs, "base": base}


def _sandbox(fixed: dict[str, Path]) -> Path:
    box = Path(tempfile.mkdtemp(dir=fixed["root"], prefix="box-"))
    (box / "afile").write_text("the user's own notes\n")
    (box / "afolder").mkdir()
    (box / "afolder" / "keep.txt").write_text("keep me\n")
    (box / "mine.yaml").write_text("# my config\nstage2: {epochs: 1}\nrungs: [{name: target, model: resnet14}]\n")
    (box / "bad.yaml").write_bytes(b"\xff\xfe: [unclosed\n")
    shutil.copytree(fixed["run"], box / "run")
    shutil.copy(fixed["imgs"] / "0.png", box / "img.png")
    return box


def _real(kind: str, box: Path, fixed: dict[str, Path]) -> str:
    return {"file": box / "afile", "folder": box / "afolder", "missing": box / "missing" / "x",
            "below-file": box / "afile" / "sub", "unwritable": Path("/proc/fspladder-fuzz"), "empty": "",
            "yaml": box / "mine.yaml", "bad-yaml": box / "bad.yaml", "ckpt": fixed["teacher"], "run": box / "run",
            "img": box / "img.png", "idx": fixed["idx"], "rung": box / "run" / "rung-2-target.pt",
            "imgs": fixed["imgs"], "new-ckpt": box / "new" / "t.pt",
            "new-csv": box / "pred.csv"}[kind].__str__()


def _snapshot(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _names(root: Path, skip: Path) -> set[str]:
    """Every path under ``root`` but those under ``skip`` (the sandbox, where commands may write)."""
    return {str(p) for p in root.rglob("*") if skip not in p.parents and p != skip}


def _unsafe_name(item: str) -> bool:
    """Whether a ``--set`` item names a rung or a bench variant with one of the path-like names."""
    key, _, value = item.partition("=")
    if key in ("rungs.0.name", "rungs.1.name"):
        return value in {json.dumps(n) for n in UNSAFE_RUNG_NAMES}
    return key == "bench.variants" and any(value == json.dumps({n: {"arm": "scratch"}}) for n in UNSAFE_NAMES)


def _one_message(out: str) -> bool:
    """Whether a refusal printed one line per problem: one line, or a heading and its problems one a line (what
    ``check`` prints before them, the data path and notes, and the announcement of the output folder left out)."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if " error: " in ln or " problem(s) in " in ln), None)
    if start is None:
        return False
    lines = lines[start:]  # what came before is not the refusal: check's notes, run's output folder
    return len(lines) == 1 or (len(lines) > 1 and lines[0].endswith(":") and
                               all(ln.startswith("  - ") for ln in lines[1:]))


def _few_steps(sets: list[str]) -> str | None:
    """The batch-size key whose warning (run) or note (check) must appear: an epoch of fewer than 10 steps on the
    tiny data's training images. None where the sizes are not simple to know (other data, classes, rungs' own)."""
    try:
        cfg, problems = parse_config_lenient(read_config_data(None, sets))
    except Exception:  # noqa: BLE001 - a malformed --set: refused at once
        return None
    d = cfg.data
    if problems or d.name != "idx" or d.classes is not None or d.val_size >= TINY["train"] or \
            any("batch_size" in rc.stage2 for rc in cfg.rungs):
        return None
    n = min(d.train_subset or 10**9, TINY["train"] - d.val_size)
    return "stage2.batch_size=" if n // cfg.stage2.batch_size < 10 else None


def _call(argv: list[str], cwd: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:  # argparse's usage errors
                rc = e.code if isinstance(e.code, int) else 2
    finally:
        os.chdir(old)
    return rc, out.getvalue() + err.getvalue()


# ---------------------------------------------------------------- how long a drawn config would train
CHEAP_MODELS = {"resnet8", "resnet14", "resnet20", "custom_models:plain_cnn", "custom_models:not_a_model",
                *BAD_OUTPUT_MODELS}


def _long(argv: list[str], fixed) -> bool:
    """Whether the command would train for more than a few seconds (then ``check`` runs instead)."""
    cmd = argv[0]
    if cmd not in ("run", "bench", "plan", "train"):
        return False
    if "--micro" in argv or "--preset" in argv or "--resume" in argv:
        return True
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    try:
        cfg, problems = parse_config_lenient(read_config_data(None, sets))
    except Exception:  # noqa: BLE001 - a malformed --set: refused at once
        return False
    if problems:
        return False
    d = cfg.data
    if cfg.compile or cfg.plan.intermediates == "auto" or len(cfg.rungs) > 3 or cfg.bench.variants:
        return True
    if (d.train_subset or 10**9) > 128 or (d.test_subset or 10**9) > 200 or d.val_size > 200:
        return True
    if d.stream is not False and (d.workers is None or d.workers > 0) and (d.stream is True or d.memory_share < 1e-3):
        return True
    if cfg.eval_batch_size < 16 or cfg.bench.seeds > 1 or len(cfg.bench.arms) * len(cfg.bench.budgets) > 2:
        return True
    if cmd == "plan" and (cfg.plan.planning_budget > 10 or cfg.plan.probe_train_images > 128):
        return True
    for rc in cfg.rungs:
        if rc.model not in CHEAP_MODELS or any(isinstance(v, int) and v > 20 for v in rc.kwargs.values()):
            return True
        try:
            s1, s2 = cfg.stage_for(rc, "stage1"), cfg.stage_for(rc, "stage2")
        except Exception:  # noqa: BLE001 - refused by check and run alike
            return False
        if s1.epochs > 1 or s2.epochs > 2 or s1.batch_size < 8 or s2.batch_size < 8:
            return True
    return False


# ---------------------------------------------------------------- the property
@settings(max_examples=FUZZ_EXAMPLES)
@given(commands())
def test_any_command_ends_in_exit_0_or_one_message_and_writes_nothing_when_refused(fixed, argv):
    box = _sandbox(fixed)
    try:
        args = [_real(a, box, fixed) if isinstance(a, P) else a for a in argv]
        config: list[str] = []
        if args[0] == "check-default":  # the default data and teacher, as they are
            args[0] = "check"
        elif args[0] in ("run", "check", "bench", "plan", "train"):  # the tiny data and teacher come first
            config = args[1:2] if len(argv) > 1 and isinstance(argv[1], P) else []
            args = [args[0], *config, *fixed["base"], *args[1 + len(config):]]
        check_args = ["check", *config, *(["--bench"] if args[0] == "bench" else []),
                      *[a for i, a in enumerate(args[1:], 1)
                        if a in ("--set", "--no-progress") or args[i - 1] == "--set"]]
        if _long(args, fixed):
            args = check_args
        before = _snapshot(box, fixed["idx"], fixed["imgs"], fixed["run"])
        outside = _names(fixed["root"].parent, box)  # everything beside the sandbox: nothing may appear there
        ck = fixed["teacher"].read_bytes()
        rc, out = _call(args, box)
        after = _snapshot(box, fixed["idx"], fixed["imgs"], fixed["run"])
        assert "Traceback" not in out and "internal error" not in out, (args, out)
        assert rc in (0, 2), (args, rc, out)
        assert _names(fixed["root"].parent, box) == outside, ("written outside the sandbox", args, out)
        sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
        if any(_unsafe_name(s) for s in sets):  # a name that would be a path: refused, in one line
            assert rc == 2 and _one_message(out), ("a path-like name was not refused in one line", args, out)
        if rc == 0 and args[0] in ("run", "check") and (few := _few_steps(sets)):
            assert few in out, ("no warning for a batch that leaves an epoch few steps", args, out)
        assert fixed["teacher"].read_bytes() == ck
        if rc == 2:
            assert after == before, (args, out, set(after) ^ set(before))
        else:  # the user's files are unchanged; new files only where the command writes
            changed = [p for p, h in before.items() if after.get(p) != h and not p.endswith("report.html")]
            assert not changed, (args, changed)
        if args[0] == "run" and "--resume" not in args:  # check and run agree
            rc_check, why = _call(check_args, box)
            if rc_check == 0 and "--out" not in args:
                assert rc == 0, ("check accepted what run refused", args, out)
            if rc_check == 2 and rc == 0:
                pytest.fail(f"run accepted what check refused: {args}\n{why}")
    finally:
        shutil.rmtree(box, ignore_errors=True)
