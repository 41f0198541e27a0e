"""The prepared benchmark scripts run (dry run: a few steps on the CPU) and write what they promise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_dry_run_writes_throughput_numbers(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "RESULTS": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "throughput-cpu-dry.json").read_text())
    ips = res["images_per_second"]
    for k in ("hand_loop", "stage2", "stage1", "stage1_cached", "teacher_cache_pass", "teacher_share_of_stage1"):
        assert ips[k] > 0, k
    assert res["stage1_step_cost_in_ce_steps"] == ips["stage2"] / ips["stage1"]
    assert res["cache_bytes_per_image"] == 4 * (16 * 16 + 16 * 32 + 32 * 64)
    assert "one stage-1 step costs" in proc.stdout


def test_stream_benchmark_dry_run_writes_both_paths(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "stream.py"
    r = subprocess.run([sys.executable, str(script), "--dry-run", "--workers", "0,1", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "stream-cpu-dry.json").read_text())
    assert set(res["paths"]) == {"in memory", "streamed, 0 worker(s)", "streamed, 1 worker(s)"}
    assert all(p["pipeline_images_per_second"] > 0 for p in res["paths"].values())
