"""Experiment tracking (off by default): the metrics of a run or bench, live in TensorBoard and/or MLflow.

``track: [tensorboard]``, ``track: [mlflow]`` or both. Every record that goes
to ``metrics.jsonl`` also goes to each tracker (on rank 0 only: the other
ranks log nothing), mapped as follows:

* a stage's epoch record (``rung``, ``stage``, ``epoch``) -> ``stage{S}/{key}``
  at step = the epoch: ``fsp_loss_train``, ``lr``, ``seconds`` (stage 1);
  ``train_loss``, ``val_acc``, ``test_acc``, ``lr``, ``seconds`` (stage 2);
* ``stage1_step`` (every ``max(1, steps // 25)`` stage-1 steps) ->
  ``stage1/fsp_loss_step`` and ``stage1/fsp_loss_pair{i}_step`` (the FSP loss of
  each pair, as eq. 2 weights it) at step = the optimiser step;
* ``stage2_step`` (every 50 stage-2 steps and the last) -> ``stage2/loss_step``.

One tracked run per rung (``fspladder run``) or per bench rung, arm, seed and
budget (``fspladder bench``: ``ladder/student1 seed 0``, ``ladder/target seed 0``
for the target's stage 1, ``ladder/0.5 seed 0`` for its stage 2 at budget 0.5).
TensorBoard writes one folder per such run under ``OUT/tensorboard/``. MLflow
makes them child runs (tag ``mlflow.parentRunId``) of one parent run per
command, every run with the resolved config as parameters, in experiment
``fspladder`` (or ``MLFLOW_EXPERIMENT_NAME``) of the store
``MLFLOW_TRACKING_URI`` names, else the file store ``OUT/mlruns/``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .names import inside, safe_name
from .trackers import INSTALL, TRACKERS, tracker_problems

__all__ = ["TRACKERS", "INSTALL", "tracker_problems", "open_trackers", "epoch_scalars", "flatten_params"]

_SKIP = ("epoch", "stage", "step", "steps", "index", "time")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def epoch_scalars(rec: dict[str, Any]) -> tuple[int, dict[str, float]] | None:
    """``(step, {tag: value})`` of a record the trackers chart, or None for one they do not."""
    event = rec.get("event")
    if event is None and "rung" in rec and "stage" in rec and "epoch" in rec:
        stage = rec["stage"]
        return int(rec["epoch"]), {f"stage{stage}/{k}": float(v) for k, v in rec.items()
                                   if k not in _SKIP and _number(v)}
    if event == "stage1_step":
        vals = {"stage1/fsp_loss_step": rec.get("fsp_loss")}
        vals.update({f"stage1/fsp_loss_pair{i}_step": v for i, v in enumerate(rec.get("fsp_loss_pairs") or [])})
        return int(rec["step"]), {k: float(v) for k, v in vals.items() if _number(v)}
    if event == "stage2_step":
        return int(rec["step"]), {"stage2/loss_step": float(rec["loss"])} if _number(rec.get("loss")) else {}
    return None


def flatten_params(cfg: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as ``{dotted.key: text}`` (lists of mappings by index; values cut to 500 characters,
    MLflow's oldest limit)."""
    out: dict[str, str] = {}
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            out.update(flatten_params(v, f"{prefix}{k}."))
    elif isinstance(cfg, list) and cfg and all(isinstance(v, dict) for v in cfg):
        for i, v in enumerate(cfg):
            out.update(flatten_params(v, f"{prefix}{i}."))
    elif prefix:
        text = cfg if isinstance(cfg, str) else json.dumps(cfg, default=str)
        out[prefix[:-1]] = text[:500]
    return out


class _Runs:
    """Which tracked run a record belongs to: its rung, and under a bench the seed of the arm in progress."""

    def __init__(self, bench: bool) -> None:
        self.bench, self.seed = bench, None

    def key(self, rec: dict[str, Any]) -> str | None:
        if rec.get("event") == "arm_start":
            self.seed = rec.get("seed")
        if "rung" not in rec:
            return None
        name = str(rec["rung"])
        return f"{name} seed {self.seed}" if self.bench and self.seed is not None else name


class _TensorBoard:
    """Event files under ``OUT/tensorboard/<run>/`` through ``torch.utils.tensorboard``."""

    def __init__(self, out: Path, bench: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.root, self.runs, self.writers, self._writer = out / "tensorboard", _Runs(bench), {}, SummaryWriter

    def __call__(self, rec: dict[str, Any]) -> None:
        key = self.runs.key(rec)
        got = epoch_scalars(rec) if key is not None else None
        if not got or not got[1]:
            return
        if key not in self.writers:
            parts = [safe_name(part) for part in key.replace(" seed ", "/seed").split("/")]  # never '..' nor '/'
            self.writers[key] = self._writer(str(inside(self.root, *parts)))
        w = self.writers[key]
        step, vals = got
        for tag, v in vals.items():
            w.add_scalar(tag, v, step)
        if rec.get("event") is None:
            w.flush()  # an epoch is worth seeing now; step records ride along

    def close(self, failed: bool = False) -> None:
        for w in self.writers.values():
            w.close()


@contextlib.contextmanager
def _file_store_allowed(uri: str) -> Iterator[None]:
    """MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE is true; allow it for the duration of a call
    when the store is a local folder (ours, or one the user named), never beyond."""
    if not uri.startswith("file:") or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


class _Mlflow:
    """A parent run per command and a child run per rung (bench: per rung, arm, seed and budget)."""

    def __init__(self, out: Path, config: dict[str, Any], command: str, bench: bool) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or (out / "mlruns").resolve().as_uri()
        self.runs, self.children, self.current = _Runs(bench), {}, None
        self.params = flatten_params(config)
        with _file_store_allowed(self.uri):
            self.client = MlflowClient(tracking_uri=self.uri)
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "fspladder")
            exp = self.client.get_experiment_by_name(name)
            self.experiment = exp.experiment_id if exp is not None else self.client.create_experiment(name)
            self.parent = self.client.create_run(self.experiment, run_name=f"{command} {out.name}",
                                                 tags={"fspladder.command": command, "fspladder.out": str(out)})
            self._params(self.parent.info.run_id, {})

    def _params(self, run_id: str, extra: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in {**self.params, **extra}.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(run_id, params=items[i : i + 100])

    def _child(self, key: str, rec: dict[str, Any]) -> str:
        if key not in self.children:
            if self.current is not None:  # work is sequential: the previous rung's run is finished
                self.client.set_terminated(self.children[self.current], "FINISHED")
            tags = {"mlflow.parentRunId": self.parent.info.run_id, "fspladder.rung": str(rec["rung"])}
            if self.runs.seed is not None:
                tags["fspladder.seed"] = str(self.runs.seed)
            run = self.client.create_run(self.experiment, run_name=key, tags=tags)
            self.children[key] = run.info.run_id
            self._params(run.info.run_id, {})
        self.current = key
        return self.children[key]

    def __call__(self, rec: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param

        key = self.runs.key(rec)
        if key is None:
            return
        with _file_store_allowed(self.uri):
            if rec.get("event") == "rung_start":  # the rung's own facts, beside the config
                run_id = self._child(key, rec)
                facts = {"rung.index": rec.get("index"), "rung.params": rec.get("params")}
                facts.update({f"rung.recipe.{k}": v for k, v in (rec.get("recipe") or {}).items()})
                self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in facts.items() if v is not None])
                return
            got = epoch_scalars(rec)
            if not got or not got[1]:
                return
            run_id = self._child(key, rec)
            now = int(time.time() * 1000)
            step, vals = got
            self.client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in vals.items()])

    def close(self, failed: bool = False) -> None:
        status = "FAILED" if failed else "FINISHED"
        with _file_store_allowed(self.uri):
            for key, run_id in self.children.items():
                if key == self.current:  # the others were terminated FINISHED as they ended
                    self.client.set_terminated(run_id, status)
            self.client.set_terminated(self.parent.info.run_id, status)


def open_trackers(track: list[str], out: Path, config: dict[str, Any], command: str = "run",
                  bench: bool = False) -> list[Any]:
    """The trackers ``track`` names, started for the run directory ``out`` (``config``: the resolved config).

    Each is called with every metrics record and closed with ``close(failed)``."""
    made: list[Any] = []
    try:
        for name in track:
            if name == "tensorboard":
                made.append(_TensorBoard(out, bench))
            elif name == "mlflow":
                made.append(_Mlflow(out, config, command, bench))
    except Exception as e:
        for t in made:  # the ones already started are closed, not left running
            t.close(True)
        from .outputs import OutputError

        raise OutputError(f"could not start the {name} tracker: {e}; check its settings (e.g. MLFLOW_TRACKING_URI) "
                          "or remove it from track") from e
    if made:
        where = [str(out / "tensorboard") if n == "tensorboard" else
                 f"MLflow {made[i].uri}" for i, n in enumerate(track)]
        print(f"tracking: {', '.join(where)}", file=sys.stderr)
    return made
