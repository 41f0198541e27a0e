"""Checkpoints: atomic writes and safe loading (``weights_only=True``).

A checkpoint is a dict ``{"format", "model": {"name", "kwargs"}, "state_dict", "meta"}``
so that it can rebuild its network from the registry without pickled code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import tempfile
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .errors import FspladderError
from .faults import kill_point
from .models import create_model

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "resolve_checkpoint", "atomic_write_bytes",
           "atomic_write_json", "json_safe", "check_writable", "creatable", "load_model", "state_digest"]

FORMAT = "fspladder-checkpoint-v1"


class CheckpointError(FspladderError, ValueError):
    """A checkpoint is missing, unreadable or does not fit the model."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if os.environ.get("FSPLADDER_FAULT"):
                f.write(data[: len(data) // 2])
                f.flush()
                kill_point(f"write:{path.name}")
                f.seek(0)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by None, so the JSON written is strict (RFC 8259)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (non-finite numbers become null), written atomically."""
    atomic_write_bytes(path, (json.dumps(json_safe(obj), indent=2, default=str, allow_nan=False) + "\n").encode())


def check_writable(path: str | Path) -> None:
    """Refuse, before any work, a checkpoint path that exists (it is never overwritten), is a folder, or whose
    folder cannot be created or written."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give a file name for the checkpoint, e.g. {path / 'model.pt'}")
    if path.exists():
        raise CheckpointError(f"{path} already exists and fspladder never overwrites a file; choose another path "
                              "or move that one away")
    why = creatable(path.parent)
    if why:
        raise CheckpointError(f"cannot write {path}: {why}; choose another path")


def creatable(folder: str | Path) -> str | None:
    """None when ``folder`` exists or can be created, and files can be written into it; else why not.

    Nothing is left behind: a temporary folder is made and removed in the nearest existing parent (permission
    bits alone do not tell, e.g. for root, or on /proc)."""
    base = Path(folder).expanduser()
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        return f"{base} is a file, so no folder can be made below it"
    try:
        os.rmdir(tempfile.mkdtemp(dir=base, prefix=".fspladder-probe-"))
    except OSError as e:
        return f"cannot write into {base} ({e.strerror or e})"
    return None


def save_checkpoint(path: str | Path, model: nn.Module, spec: dict[str, Any],
                    meta: dict[str, Any] | None = None) -> None:
    """Save ``model``'s weights with the spec (``{"name", "kwargs"}``) that rebuilds it."""
    import io

    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # JSON round trip: only plain types, so loading with weights_only=True accepts them.
    plain = json.loads(json.dumps({"model": spec, "meta": meta or {}}, default=str))
    torch.save({"format": FORMAT, **plain, "state_dict": state, "sha256": state_digest(state)}, buf)
    atomic_write_bytes(path, buf.getvalue())


def resolve_checkpoint(ref: str) -> Path:
    """``builtin:NAME`` -> the file shipped in ``fspladder/pretrained``; anything else is a path."""
    if ref.startswith("builtin:"):
        name = ref.split(":", 1)[1]
        path = Path(str(resources.files("fspladder") / "pretrained" / f"{name}.pt"))
        if not path.is_file():
            shipped = sorted(p.stem for p in path.parent.glob("*.pt"))
            raise CheckpointError(f"no built-in checkpoint {name!r}; shipped: {', '.join(shipped) or 'none'}")
        return path
    if not ref:
        raise CheckpointError("the checkpoint path is empty; give a file written by `fspladder run` or "
                              "`fspladder train`")
    path = Path(ref).expanduser()
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))[-3:]
        raise CheckpointError(f"checkpoint {path} is a folder; give a checkpoint file in it"
                              f"{' (e.g. ' + ', '.join(found) + ')' if found else ''}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train a teacher with `fspladder train` "
                              "or fix the path")
    return path


def load_checkpoint(ref: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint written by :func:`save_checkpoint` (no pickled code runs)."""
    path = resolve_checkpoint(str(ref))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or foreign files
        # torch's own message for a foreign pickle suggests weights_only=False, which can run code: never
        # repeat that advice; say what the file is not.
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; torch's own message says little
            first = "not a torch file"
        elif isinstance(e, pickle.UnpicklingError):
            first = "not a torch file of plain tensors: another format, or pickled objects we do not load"
        else:
            first = (str(e).strip().splitlines() or [""])[0].rstrip(".") or f"{type(e).__name__}: cut short?"
        raise CheckpointError(f"{path} is not a readable fspladder checkpoint ({first}); pass a file written by "
                              "`fspladder run` or `fspladder train`, or retrain it if it was cut short") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an fspladder checkpoint (expected format {FORMAT!r})")
    if "sha256" in ckpt and state_digest(ckpt["state_dict"]) != ckpt["sha256"]:
        raise CheckpointError(f"{path}: the weights do not match the checksum recorded when it was saved; "
                              "the file is corrupt: restore it or retrain that network")
    return ckpt


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict, in key order."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_model(ref: str | Path, expect: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network stored in a checkpoint and load its weights.

    Returns the model and ``{"model": spec, "meta": meta}`` from the checkpoint.

    ``expect`` (``{"name", "kwargs"}``) is the architecture the caller asked
    for (``name`` None = any); a checkpoint of another architecture is refused
    with both named.
    """
    ckpt = load_checkpoint(ref)
    spec = ckpt["model"]
    if expect is not None and ((expect.get("name") not in (None, spec["name"])) or
                               {**spec["kwargs"], **expect.get("kwargs", {})} != spec["kwargs"]):
        raise CheckpointError(
            f"checkpoint {ref} holds {spec['name']} {spec['kwargs']} but the config asks for "
            f"{expect['name']} {expect['kwargs']}; make the config's model match the checkpoint"
        )
    model = create_model(spec["name"], **spec["kwargs"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {ref} does not fit {spec['name']}: {e}") from e
    return model, {"model": spec, "meta": ckpt["meta"]}
