"""A run directory's files: the metrics log, the resumable state, the saved FSP matrices.

Layout (``fspladder run --out DIR``)::

    resolved-config.yaml  the config that ran (every default filled in, a planned chain spelled out)
    metrics.jsonl         one JSON line per epoch per stage per rung, plus events (strict JSON: no NaN)
    rung-K-NAME.pt        checkpoint of each finished rung (self-describing: preprocessing, classes, input)
    flow-K-NAME.npz       mean FSP matrices of the previous network and the student before/after stage 1
    state.pt              the unfinished stage's last completed epoch (model, optimiser, scheduler, RNG)
    summary.json          teacher and rungs: sizes, recipes, stage-1 and stage-2 records; totals
    report.html           figures and tables (``fspladder report DIR`` rewrites it)
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import atomic_write_bytes, creatable, json_safe
from .errors import FspladderError
from .names import check_name, inside, safe_name

__all__ = ["MetricsLog", "NoLog", "ResumeError", "OutputError", "check_out_dir", "out_folder", "save_state",
           "load_state", "save_flows", "prior_seconds", "check_name", "safe_name", "inside", "SESSION_SECONDS",
           "json_safe", "STATE_FILE", "CONFIG_FILE", "LEGACY_CONFIG_FILE", "PYTHON_DATA",
           "PYTHON_TEACHER"]

STATE_FILE = "state.pt"
CONFIG_FILE = "resolved-config.yaml"  # never config.yaml: that name may be the user's own file in the same folder
LEGACY_CONFIG_FILE = "config.yaml"  # what runs before this version wrote
PYTHON_DATA = "from_python"  # CONFIG_FILE's data key of a run on splits passed to run_ladder(data=...)
SESSION_SECONDS = "session_seconds"  # run_start's key: what the session spent before its log opened
PYTHON_TEACHER = "from_python"  # CONFIG_FILE's teacher key of a run on a network passed to run_ladder(teacher=...)


class ResumeError(FspladderError, ValueError):
    """A run directory cannot be resumed."""


class OutputError(FspladderError, ValueError):
    """An output folder that cannot be used (a file of that name, a place that cannot be written)."""


def out_folder(out: str | Path, flag: str = "--out") -> Path:
    """``out`` as a folder path; an empty one is refused (``Path('')`` would quietly mean the current folder)."""
    if not str(out).strip():
        raise OutputError(f"{flag} is empty: give the folder to write into (e.g. runs/mine)")
    return Path(out)


def check_out_dir(out: str | Path, flag: str = "--out") -> None:
    """Refuse, before any work, an output folder that is an existing file or cannot be created and written.

    Nothing is written (see :func:`fspladder.checkpoint.creatable`)."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{flag} {out} is a file, not a folder; give {flag} a folder (new, or one of yours to "
                          f"write into), e.g. {out}.d")
    why = creatable(out)
    if why:
        raise OutputError(f"{flag} {out}: {why}; choose a folder you can write to")


class NoLog:
    """The metrics sink of ranks other than 0, and of work that records nothing."""

    def __call__(self, rec: dict[str, Any]) -> None:
        pass

    def close(self, failed: bool | None = None) -> None:
        pass


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` and flushes each line.

    Records made before the file may be created (``hold=True``: a run still
    validating, or planning) are kept in memory and written by :meth:`open`,
    so a refused command leaves no file behind. ``listen`` adds consumers
    (the experiment trackers of :mod:`fspladder.tracking`, the run clock of
    :mod:`fspladder.estimate`) that get every record written after they were added, and every training step
    (``on_step``) and the start of every stage (``on_stage``), where the listener has them: the engine's one
    callback protocol, engine/context.py).
    """

    def __init__(self, path: Path, hold: bool = False) -> None:
        self.path = path
        self._f = None
        self._held: list[str] | None = [] if hold else None
        self.listeners: list[Any] = []

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(rec)`` with every later record, ``listener.on_step(name, stage, step, total)`` (if it has
        one) at every step, and ``listener.close(failed)`` (if it has one) at close."""
        self.listeners.append(listener)

    def on_stage(self, key: Any) -> None:
        """Tell the listeners that follow stages which one starts (:func:`fspladder.chain.stage_key`)."""
        for listener in list(self.listeners):
            hear = getattr(listener, "on_stage", None)
            if hear is not None:
                hear(key)

    def on_step(self, name: str, stage: int, step: int, total: int) -> str | None:
        """Tell the listeners that hear steps where the loop is; the first note one returns (the progress bar's)."""
        note = None
        for listener in list(self.listeners):
            hear = getattr(listener, "on_step", None)
            if hear is None:
                continue
            try:
                said = hear(name, stage, step, total)
            except Exception as e:  # as for records: a failing listener must not end the training
                self.listeners.remove(listener)
                print(f"warning: {type(listener).__name__} stopped hearing steps after an error: {e}",
                      file=sys.stderr)
                continue
            note = note or said
        return note

    def open(self) -> None:
        """Start writing (and write what was held)."""
        held, self._held = self._held or [], None
        for line in held:
            self._write(line)

    def _write(self, line: str) -> None:
        if self._f is None:
            self._f = open(self.path, "a", buffering=1)
        self._f.write(line)

    def __call__(self, rec: dict[str, Any]) -> None:
        line = json.dumps(json_safe({"time": round(time.time(), 3), **rec}), allow_nan=False, default=str) + "\n"
        if self._held is not None:
            self._held.append(line)
            return
        self._write(line)
        for listener in list(self.listeners):
            try:
                listener(rec)
            except Exception as e:  # a tracker that fails (server down, disk full) must not end the training
                self.listeners.remove(listener)
                print(f"warning: {type(listener).__name__} stopped receiving metrics after an error: {e}; "
                      "metrics.jsonl keeps every record", file=sys.stderr)

    def close(self, failed: bool | None = None) -> None:
        """Close the file and the listeners, each told whether the work ``failed`` (None: whether an exception
        is on its way out)."""
        if failed is None:
            failed = sys.exc_info()[0] is not None
        if self._f is not None:
            self._f.close()
        for listener in self.listeners:
            closer = getattr(listener, "close", None)
            try:
                if closer is not None:
                    closer(failed)
            except Exception as e:  # the others still close, and the work's own error is not hidden
                print(f"warning: closing {type(listener).__name__} failed: {e}", file=sys.stderr)
        self.listeners = []


def save_state(out: Path, rung: int, flows: dict[str, Any], snap: dict[str, Any],
               stage1_result: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
    buf = io.BytesIO()
    torch.save({"format": "fspladder-state-v2", "rung": rung, "flows": flows, "stage1_result": stage1_result,
                **(extra or {}), **snap}, buf)
    atomic_write_bytes(inside(out, STATE_FILE), buf.getvalue())


def load_state(out: Path, rungs: int | None = None) -> dict[str, Any] | None:
    """The unfinished stage's state in ``out`` (None: there is none); ``rungs``: the chain's students, which its
    rung index must name (a state read back is untrusted: a rung outside the chain is refused, not guessed)."""
    path = out / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a partial file is impossible (atomic rename); anything else is foreign
        raise ResumeError(f"{path} cannot be read ({e}); delete it to restart the unfinished rung from scratch, "
                          "finished rungs are kept") from e
    if not isinstance(state, dict) or state.get("format") != "fspladder-state-v2":
        raise ResumeError(f"{path} is not a state file of this fspladder version; delete it to restart the "
                          "unfinished rung (finished rungs are kept)")
    rung = state.get("rung")
    if (not isinstance(rung, int) or isinstance(rung, bool) or state.get("stage") not in (1, 2)
            or (rungs is not None and not 1 <= rung <= rungs)):
        raise ResumeError(f"{path} names rung {rung!r}, stage {state.get('stage')!r}, which this run's chain does "
                          "not have; delete it to restart the unfinished rung (finished rungs are kept)")
    return state


def save_flows(path: Path, flows: dict[str, list[torch.Tensor]], pairs, prev_pairs) -> None:
    """``previous_i``, ``before_i``, ``after_i``: mean FSP matrices of pair ``i``, plus pair names."""
    arrays = {f"{k}_{i}": g.numpy() for k, gs in flows.items() for i, g in enumerate(gs)}
    arrays["pairs"] = np.array([str(p) for p in pairs])
    arrays["previous_pairs"] = np.array([str(p) for p in prev_pairs])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def prior_seconds(metrics: Path) -> float:
    """Seconds the earlier sessions of a run spent, from ``metrics.jsonl``: each session starts with a
    ``run_start`` event and lasted until its last record (a killed session's last epoch or step record), plus
    the seconds it had spent before its log opened (loading, checking, the estimate's profile: run_start's
    ``session_seconds``), which its own clock counted too."""
    if not metrics.is_file():
        return 0.0
    total, start, last = 0.0, None, None
    for line in metrics.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        t = rec.get("time")
        if not isinstance(t, (int, float)):
            continue
        if rec.get("event") == "run_start":
            if start is not None and last is not None:
                total += last - start
            start = t
            before = rec.get(SESSION_SECONDS)
            if isinstance(before, (int, float)) and math.isfinite(before) and before > 0:
                total += before
        last = t
    if start is not None and last is not None:
        total += last - start
    return total
