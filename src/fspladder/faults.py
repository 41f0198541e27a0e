"""Fault injection for the reliability tests (off unless ``FSPLADDER_FAULT`` is set).

``FSPLADDER_FAULT`` holds comma-separated labels. A process that reaches a
``kill:`` label SIGKILLs itself there, exactly as a crash or an OOM killer
would; a ``nan:`` label poisons losses. Labels:

* ``kill:stage1:RUNG:EPOCH`` / ``kill:stage2:RUNG:EPOCH``: halfway through that epoch;
* ``kill:rung-done:RUNG``: after the rung's checkpoint and summary are written;
* ``kill:write:FILENAME``: halfway through writing that file's temporary copy;
* ``nan:stage1:RUNG:N`` / ``nan:stage2:RUNG:N``: the first N losses of that stage are NaN.
"""

from __future__ import annotations

import os
import signal

__all__ = ["kill_point", "nan_steps"]


def _labels() -> list[str]:
    raw = os.environ.get("FSPLADDER_FAULT", "")
    return [x.strip() for x in raw.split(",") if x.strip()]


def kill_point(label: str) -> None:
    """SIGKILL this process if ``kill:<label>`` is requested."""
    if f"kill:{label}" in _labels():
        os.kill(os.getpid(), signal.SIGKILL)


def nan_steps(stage: int, rung: str) -> int:
    """How many leading losses of this stage to poison with NaN (0 = none)."""
    prefix = f"nan:stage{stage}:{rung}:"
    for lab in _labels():
        if lab.startswith(prefix):
            return int(lab[len(prefix):])
    return 0
