from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

# The whole-run estimate profiles every stage for a few seconds; the tiny runs of the suite skip it (tests/
# test_estimate.py turns it on).
os.environ.setdefault("FSPLADDER_ESTIMATE", "off")
if "OMP_NUM_THREADS" not in os.environ:  # a thread setting the user made is kept (tests pass on any)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

# One Hypothesis profile for every run, local or CI (Hypothesis would otherwise switch to its own
# `ci` profile when CI=true is set, and replay examples stored in .hypothesis/ on one machine only):
# derandomised, so `make test` draws the same examples everywhere, with no example database.
# HYPOTHESIS_PROFILE=deep explores: 400 fresh random examples per property; a failure prints the
# seed and an @reproduce_failure blob (docs/reliability.md, "Tests").
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None, print_blob=True)
settings.register_profile("fspladder", max_examples=40, derandomize=True, **_COMMON)
settings.register_profile("deep", max_examples=400, derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fspladder"))


def write_idx(path: Path, arr: np.ndarray, compress: bool = True) -> Path:
    """Write ``arr`` (uint8) as an IDX file, gzip-compressed when ``compress``."""
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw = header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    """A tiny learnable MNIST-format data set: class k is a bright bar at row band k."""
    return make_idx_folder(tmp_path)


def write_cifar10(root: Path, labels=None, n: int = 40) -> Path:
    """A CIFAR-10 python-version archive folder with ``n`` random images per batch file (labels cycle 0..9)."""
    import pickle

    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(d / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": list(labels if labels is not None else [i % 10 for i in range(n)])}, f)
    return d


def make_idx_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 4, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 12, 12)).astype(np.uint8)
        for i, k in enumerate(y):
            x[i, 3 * k : 3 * k + 3, :] = 220
        return x, y

    folder = tmp_path / "idx"
    folder.mkdir()
    xtr, ytr = make(600)
    xte, yte = make(200)
    write_idx(folder / "train-images-idx3-ubyte", xtr)
    write_idx(folder / "train-labels-idx1-ubyte", ytr)
    write_idx(folder / "t10k-images-idx3-ubyte", xte, compress=False)
    write_idx(folder / "t10k-labels-idx1-ubyte", yte, compress=False)
    return folder


@pytest.fixture
def tiny_pair(idx_folder: Path):
    """``(ctx, prev, student)`` on the tiny IDX data (CPU): a random ResNet-8 as the frozen previous
    network and a ResNet-14 student, for stage-level tests."""
    from fspladder import create_model, load_config
    from fspladder.session import context_for, load_data

    cfg = load_config(None, ["data.name=idx", f"data.root={idx_folder}", "data.val_size=100", "progress=false",
                             "eval_batch_size=64"])
    data = load_data(cfg)
    ctx = context_for(cfg, torch.device("cpu"), data)
    torch.manual_seed(0)
    prev = create_model("resnet8", in_chans=1, num_classes=4).eval()
    student = create_model("resnet14", in_chans=1, num_classes=4)
    return ctx, prev, student


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory) -> tuple[Path, Path, Path]:
    """``(root, idx, teacher)``: a folder of its own, the tiny IDX data in it and a ResNet-8 trained one epoch on
    it, once per test module (modules that run whole commands on the tiny data share this set-up)."""
    root = tmp_path_factory.mktemp("tiny")
    idx = make_idx_folder(root)
    return root, idx, train_tiny_teacher(root / "teacher.pt", idx)


def bench_args(idx_folder: Path) -> list[str]:
    """CLI arguments that make `fspladder train`/`bench` run on the tiny IDX data in seconds."""
    return ["--set", "data.name=idx", "--set", f"data.root={idx_folder}", "--set", "data.val_size=100",
            "--set", "eval_batch_size=200", "--set", "stage1.batch_size=50", "--set", "stage2.batch_size=50",
            "--no-progress"]


def train_tiny_teacher(path: Path, idx_folder: Path) -> Path:
    """A ResNet-8 teacher trained one epoch on the tiny IDX data, saved at ``path``."""
    from fspladder.cli import main

    assert main(["train", "--model", "resnet8", "--save", str(path), "--set", "stage2.epochs=1",
                 *bench_args(idx_folder)]) == 0
    return path
