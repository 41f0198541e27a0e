"""The parity case of issue 35: a tiny run and a tiny bench whose outputs (weights, accuracies, losses, the
metrics log apart from timings) must stay the same across refactors of how the chain is built and run.

``record(folder)`` runs them through the CLI in a subprocess with one thread (so the values do not depend on
the test runner's thread setting) and returns what they produced, timings stripped. It uses only the CLI and
the files a run writes, so the same function recorded the fixture from the code before the change
(``PYTHONPATH=<old checkout>/src python tests/parity_case.py tests/fixtures/parity.json``) and checks the code
after it (tests/test_parity.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_idx_folder  # noqa: E402

# A key is timing when it names seconds, a time or a rate: those differ between any two runs.
_TIMING = re.compile(r"seconds|time|_s$|^t$|per_s|throughput|elapsed|wall|timestamp|remaining|^when$")


def _scrub(obj: Any) -> Any:
    """``obj`` without timing keys, machine records or paths of the temporary folder."""
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items()
                if not _TIMING.search(str(k)) and k not in ("machine", "estimate", "command", "file", "root",
                                                             "sha256", "checkpoint_path", "out")}
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    if isinstance(obj, str) and "/" in obj:  # a path under the temporary folder: only its last part is stable
        return obj.rsplit("/", 1)[-1]
    return obj


def _weights_digest(path: Path) -> dict[str, Any]:
    import torch

    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    h = hashlib.sha256()
    total = 0.0
    for k in sorted(sd):
        t = sd[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(t.numpy().tobytes())
        if t.is_floating_point():
            total += float(t.double().abs().sum())
    return {"sha256": h.hexdigest(), "abs_sum": total}


def machine_key() -> str:
    """What decides whether two recordings can be equal bit for bit: the CPU's instruction set as torch uses it,
    torch's version and the platform."""
    import torch

    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()} torch {torch.__version__}"


def _cli(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "FSPLADDER_ESTIMATE": "off"}
    code = ("import sys, torch; torch.set_num_threads(1); from fspladder.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"fspladder {' '.join(args)} exited {r.returncode}:\n{r.stderr[-3000:]}")


def _data_args(idx: Path) -> list[str]:
    return ["--set", "data.name=idx", "--set", f"data.root={idx}", "--set", "data.val_size=100",
            "--set", "eval_batch_size=200", "--set", "stage1.batch_size=50", "--set", "stage2.batch_size=50",
            "--set", "amp='off'", "--set", "teacher_amp='off'", "--no-progress"]  # no machine-dependent precision


def _metrics(path: Path) -> list[Any]:
    return [_scrub(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def record(folder: Path) -> dict[str, Any]:
    """Train the tiny teacher, two runs (patent ladder; grow then soft) and a tiny bench in ``folder``."""
    folder = Path(folder)
    idx = make_idx_folder(folder)
    data = _data_args(idx)
    teacher = folder / "teacher.pt"
    _cli(["train", "--model", "resnet8", "--save", str(teacher), "--set", "stage2.epochs=1", *data], folder)
    out: dict[str, Any] = {"machine": machine_key(), "teacher": _weights_digest(teacher)}
    rungs = ("rungs=[{name: mid, model: resnet14, stage2: {epochs: 1}}, "
             "{name: target, model: resnet20}]")
    runs = {
        "patent": ["--set", "recipe=patent"],
        "grow-soft": ["--set", "rungs=[{name: mid, model: resnet14, recipe: grow, stage2: {epochs: 1}}, "
                               "{name: target, model: resnet20, recipe: soft}]"],
    }
    for name, extra in runs.items():
        run_dir = folder / f"run-{name}"
        _cli(["run", "--out", str(run_dir), "--set", f"teacher.checkpoint={teacher}", "--set", rungs,
              "--set", "stage1.epochs=1", "--set", "stage2.epochs=2", "--set", "plan.intermediates=fixed",
              *extra, *data], folder)
        summary = json.loads((run_dir / "summary.json").read_text())
        out[f"run/{name}"] = {
            "summary": _scrub({k: v for k, v in summary.items() if k not in ("config",)}),
            "metrics": _metrics(run_dir / "metrics.jsonl"),
            "weights": {p.name: _weights_digest(p) for p in sorted(run_dir.glob("rung-*.pt"))},
        }
    bench_dir = folder / "bench"
    variants = ("bench.variants={scratch-wsd: {arm: scratch, set: {stage2.schedule: wsd, stage2.decay_fraction: "
                "0.5}}}")
    _cli(["bench", "--out", str(bench_dir), "--set", f"teacher.checkpoint={teacher}", "--set", rungs,
          "--arms", "scratch,direct,ladder,soft,grow,grow-fsp", "--budgets", "0.5,1", "--seeds", "2",
          "--set", "stage1.epochs=1", "--set", "stage2.epochs=2", "--set", variants,
          # the recording's arms: the scratch-cosine the fair baseline would add is tested in test_baseline.py
          "--set", "bench.fair_baseline=false", "--no-report", *data], folder)
    out["bench/runs"] = {p.name: _scrub(json.loads(p.read_text())) for p in sorted((bench_dir / "runs").glob("*.json"))}
    out["bench/metrics"] = _metrics(bench_dir / "metrics.jsonl")
    return out


def _close(a: Any, b: Any, where: str, problems: list[str]) -> None:
    """Loose comparison for another machine: same structure, numbers within a tolerance scaled to their size
    (accuracies on 100-200 images within 0.05, other floats within 5 % of their magnitude)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            problems.append(f"{where}: keys {sorted(set(a) ^ set(b))} differ")
        for k in set(a) & set(b):
            if k != "sha256":
                _close(a[k], b[k], f"{where}.{k}", problems)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            problems.append(f"{where}: {len(a)} items vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]", problems)
    elif isinstance(a, float) and isinstance(b, (int, float)):
        tol = 0.05 if "acc" in where else 0.05 * max(1.0, abs(a), abs(b))
        if not np.isfinite(a) or abs(a - b) > tol:
            problems.append(f"{where}: {a} vs {b}")
    elif a != b:
        problems.append(f"{where}: {a!r} vs {b!r}")


def compare(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Differences between two recordings: exact on the machine that recorded (same instruction set and torch),
    within tolerances elsewhere."""
    problems: list[str] = []
    if recorded["machine"] == now["machine"]:
        for key in recorded:
            if key != "machine" and recorded[key] != now.get(key):
                before = len(problems)
                _close(recorded[key], now.get(key), key, problems)  # name where they differ
                if len(problems) == before:
                    problems.append(f"{key}: differs bitwise (weights or exact values) though within tolerance")
        return problems
    _close({k: v for k, v in recorded.items() if k != "machine"}, {k: v for k, v in now.items() if k != "machine"},
           "", problems)
    return problems


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        result = record(Path(d))
    Path(sys.argv[1]).parent.mkdir(parents=True, exist_ok=True)
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"recorded {sys.argv[1]} on {result['machine']}")
