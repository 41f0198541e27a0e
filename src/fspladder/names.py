"""Names that become file names, and paths that must stay inside their output folder.

A rung's name becomes ``rung-K-NAME.pt`` and ``flow-K-NAME.npz``, a bench arm's or variant's name becomes
``runs/NAME__seedS__budgetB.json``, a tracked run's name a TensorBoard folder. Every such name is untrusted input
(a config, a ``--set``, a checkpoint or a resumed run's summary), so one rule holds for all of them
(:func:`name_problem`): letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most
:data:`NAME_MAX` characters; no separators, never ``.`` or ``..``. The config parser reports a name that breaks
it as a config problem (``fspladder check`` lists it), naming the key.

Defence in depth: every file the tool writes under an output folder is placed with :func:`inside`, which
resolves the path and refuses, before anything is written, one that would land outside the folder.

This module imports nothing of fspladder but its errors, so the config schema can use it.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import FspladderError

__all__ = ["NAME_MAX", "NAME_RULE", "name_problem", "check_name", "safe_name", "inside", "UnsafePathError"]

NAME_MAX = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_RULE = (f"letters, digits, '.', '_' and '-' only, starting with a letter or digit, at most {NAME_MAX} "
             "characters (it becomes part of a file name)")


class UnsafePathError(FspladderError, ValueError):
    """A name that cannot be part of a file name, or a path that would lie outside its output folder."""


def name_problem(name: object, key: str) -> str | None:
    """Why ``name`` (the value of config key ``key``) cannot become part of a file name; None when it can."""
    if not isinstance(name, str):
        return f"{key} must be a text name ({NAME_RULE}), got {type(name).__name__}"
    if len(name) <= NAME_MAX and _NAME.fullmatch(name):
        return None
    fix = safe_name(name)
    hint = f", e.g. {fix!r}" if fix != "x" else ""
    return f"{key} {name!r} cannot be a file name: use {NAME_RULE}{hint}"


def check_name(name: object, key: str) -> str:
    """``name`` if it may become part of a file name, else :class:`UnsafePathError` naming ``key`` and the rule."""
    why = name_problem(name, key)
    if why:
        raise UnsafePathError(why)
    return name  # type: ignore[return-value]


def safe_name(text: str) -> str:
    """``text`` made to follow the rule: each run of other characters becomes ``-`` (a model called
    ``package.module:factory`` names its rung ``package.module-factory``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).lstrip("._-")[:NAME_MAX].rstrip("-")
    return s or "x"


def inside(out: str | Path, *parts: str | Path) -> Path:
    """``out`` joined with ``parts``, refused (:class:`UnsafePathError`, nothing written) unless it lies inside
    ``out``: its folder, resolved (``..``, absolute parts and symbolic links followed), is ``out`` or below it,
    and its own name is a name (not ``..``). The file itself may be a link: a write replaces it in place."""
    base = Path(out).expanduser()
    path = base.joinpath(*parts)
    root, folder = base.resolve(), path.parent.resolve()
    if path.name in ("", ".", "..") or (folder != root and root not in folder.parents):
        raise UnsafePathError(f"refusing {path}: it is not inside the output folder {base} (nothing was written); "
                              f"a name that becomes a file name must use {NAME_RULE}")
    return path
