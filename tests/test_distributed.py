"""Two processes under torchrun with gloo on the CPU match one process with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from fspladder import save_checkpoint

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available here")
TESTS = Path(__file__).resolve().parent
PAIRS = "[[stem, stage1], [down:input, stage2]]"


def _run(cmd, tmp):
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "FSPLADDER_FAULT": ""}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp)
    assert r.returncode == 0, r.stderr[:3000] + "\n...\n" + r.stderr[-3000:]
    return r


def _args(idx, teacher, out, model_kwargs):
    rungs = (f"[{{name: mid, model: 'custom_models:plain_cnn', kwargs: {{blocks: 2, {model_kwargs}}}, pairs: {PAIRS}}},"
             f" {{name: big, model: 'custom_models:plain_cnn', kwargs: {{blocks: 3, {model_kwargs}}}, "
             f"pairs: {PAIRS}}}]")
    return ["run", "--out", str(out), "--no-progress", "--no-report", "--set", "data.name=idx",
            "--set", f"data.root={idx}", "--set", "data.val_size=100", "--set", "stage1.batch_size=50",
            "--set", "stage2.batch_size=50", "--set", "stage1.epochs=2", "--set", "stage2.epochs=2",
            "--set", f"teacher.checkpoint={teacher}", "--set", f"teacher.pairs={PAIRS}", "--set", f"rungs={rungs}",
            "--set", "device=cpu"]


@pytest.mark.parametrize("norm", [False, True], ids=["no-batchnorm", "batchnorm"])
def test_two_gloo_processes_match_one_process(tmp_path, idx_folder, norm):
    sys.path.insert(0, str(TESTS))
    from custom_models import plain_cnn

    teacher = tmp_path / "t.pt"
    torch.manual_seed(0)
    save_checkpoint(teacher, plain_cnn(1, in_chans=1, num_classes=4, norm=norm),
                    {"name": "custom_models:plain_cnn", "kwargs": {"blocks": 1, "in_chans": 1, "num_classes": 4,
                                                                   "norm": norm}})
    kw = f"norm: {str(norm).lower()}"
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "fspladder", *_args(idx_folder, teacher, one, kw)], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          "-m", "fspladder", *_args(idx_folder, teacher, two, kw)], tmp_path)
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert s2["world_size"] == 2 and "world_size" not in s1
    a = torch.load(one / "rung-2-big.pt", weights_only=True)["state_dict"]
    b = torch.load(two / "rung-2-big.pt", weights_only=True)["state_dict"]
    diffs = [float((a[k].float() - b[k].float()).abs().max() / (a[k].float().abs().max() + 1e-12)) for k in a]
    if not norm:
        # Same images, same augmentation, gradients averaged over two halves of each batch: equal up to
        # float32 summation order, compounded over 40 optimiser steps.
        assert max(diffs) < 1e-3, max(diffs)
        assert s1["target"]["test_acc"] == pytest.approx(s2["target"]["test_acc"], abs=0.02)
    else:
        # BatchNorm normalises each rank's half batch with its own statistics (no SyncBatchNorm on CPU),
        # so the runs differ by more than rounding; they must still train to comparable accuracy.
        assert all(torch.isfinite(b[k].float()).all() for k in b)
        assert abs(s1["target"]["test_acc"] - s2["target"]["test_acc"]) < 0.25
    # Only rank 0 wrote: one metrics line per epoch, as in the single-process run.
    def epochs(d):
        return [x for x in (d / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x]
    assert len(epochs(one)) == len(epochs(two))
