"""The experiment trackers a config may name and the package each needs, checked without starting one.

Below both :mod:`.config` (which refuses a tracker that is not installed) and :mod:`.tracking` (which
starts them), so the config needs nothing of the trackers' machinery.
"""

from __future__ import annotations

import importlib.util

__all__ = ["TRACKERS", "INSTALL", "tracker_problems"]

TRACKERS = ("tensorboard", "mlflow")
INSTALL = "pip install 'fspladder[track]'"
_PACKAGE = {"tensorboard": ("tensorboard", "pip install tensorboard"),
            "mlflow": ("mlflow", "pip install mlflow-skinny")}  # mlflow-skinny provides the `mlflow` module


def tracker_problems(track: list[str]) -> list[str]:
    """One line per tracker of ``track`` that cannot run here (not installed, named twice)."""
    out = []
    if len(set(track)) != len(track):
        out.append(f"track lists a tracker twice: {track}")
    for name in dict.fromkeys(track):
        module, pip = _PACKAGE.get(name, (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            out.append(f"track: {name} is not installed here; `{INSTALL}` installs both trackers (or `{pip}`), or "
                       f"remove {name} from track (metrics.jsonl and report.html need neither)")
    return out
