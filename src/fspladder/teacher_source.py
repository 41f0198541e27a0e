"""A teacher fspladder did not train: the weights a user already has, read as they are.

``teacher.checkpoint`` may name, beside an fspladder checkpoint:

- a plain state_dict, ``torch.save(model.state_dict(), "small.pt")``;
- a Lightning-style checkpoint, ``{"state_dict": {"model.conv1.weight": ...}, "epoch": ...}`` (or any dict with
  one dict of tensors in it, e.g. ``{"model_state_dict": ..., "optimizer_state_dict": ...}``), whose keys carry
  the prefix of the attribute that held the network (found, or given as ``teacher.prefix``);
- a ``.safetensors`` file.

``teacher.model`` / ``teacher.kwargs`` build the architecture for these (a built-in name or ``module:factory``).
Files are read with ``torch.load(weights_only=True)``: no pickled code runs, and a whole pickled module is refused
with the line that says how to save its state_dict. Every way a file can fail (cut short, another format, keys
or shapes that do not fit) is one :class:`CheckpointError` line.

``teacher.preprocessing`` (mean, std in [0, 1] units; optionally image size and channels) replaces the data's
own normalisation statistics in :class:`DataSplits` (:func:`with_teacher_preprocessing`), so the teacher, every
student and growth see exactly the inputs the teacher was trained on: there is one normalisation path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .checkpoint import FORMAT, CheckpointError, atomic_write_bytes, load_checkpoint, resolve_checkpoint
from .config import ConfigError, RunConfig, TeacherConfig
from .data import DataSplits
from .errors import FspladderError
from .models import create_for_data, create_model

__all__ = ["read_weights", "fit_state_dict", "load_user_teacher", "file_sha256", "is_fspladder_file",
           "with_teacher_preprocessing", "export_state_dict", "SAVE_HINT", "preprocessing_record",
           "read_teacher_weights"]

SAVE_HINT = "torch.save(model.state_dict(), path)"
_SHOWN = 4  # keys quoted in a mismatch message: enough to see the pattern, short enough for one line


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (what summary.json records as the teacher's source)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_safetensors(path: Path) -> bool:
    return path.suffix.lower() == ".safetensors"


def _pickles_a_module(path: Path) -> bool:
    """Whether the torch zip at ``path`` pickles an ``nn.Module`` (read as bytes, never unpickled): a module's
    pickled state always holds its ``_modules`` and ``_parameters`` dicts."""
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            data = z.read(pkl) if pkl else b""
    except (zipfile.BadZipFile, OSError, KeyError):
        return False
    return b"_modules" in data and b"_parameters" in data


def _short(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0].rstrip(".")[:160] or type(e).__name__


def _read_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or foreign files
        # Never repeat torch's advice to pass weights_only=False: that runs whatever code the file pickles.
        if isinstance(e, pickle.UnpicklingError) and _pickles_a_module(path):
            raise CheckpointError(f"{path} holds a whole pickled model (torch.save(model)), which fspladder does not "
                                  f"unpickle (it could run any code); save its weights instead with {SAVE_HINT} and "
                                  "point teacher.checkpoint at that file") from e
        if isinstance(e, pickle.UnpicklingError):
            raise CheckpointError(f"{path} holds pickled Python objects beside its tensors, which fspladder does not "
                                  f"unpickle; save the network's weights alone with {SAVE_HINT} (for a Lightning "
                                  "checkpoint: torch.save(ckpt['state_dict'], path))") from e
        what = "not a torch file, or cut short" if not zipfile.is_zipfile(path) else f"cut short? {_short(e)}"
        raise CheckpointError(f"{path} cannot be read as weights ({what}); save it again with {SAVE_HINT}, or as "
                              ".safetensors") from e


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file  # optional at import time: only .safetensors files need it
    except ImportError as e:
        raise CheckpointError(f"{path} is a .safetensors file and the safetensors package is not installed; "
                              "pip install safetensors") from e
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # SafetensorError and OSError, for cut-short or foreign files
        raise CheckpointError(f"{path} cannot be read as a .safetensors file ({_short(e)}); it may be cut short: "
                              "write it again (safetensors.torch.save_file(model.state_dict(), path))") from e


def _tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                        for k, v in obj.items())


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state_dict a file holds and its format: ``state_dict``, ``lightning`` (a dict holding the weights under
    ``state_dict``), ``dict:KEY`` (a dict holding one dict of tensors, under KEY) or ``safetensors``. An fspladder
    checkpoint is not read here."""
    path = Path(path)
    if _is_safetensors(path):
        state = _read_safetensors(path)
        if not state:
            raise CheckpointError(f"{path} holds no tensors; save the network's weights into it")
        return state, "safetensors"
    obj = _read_torch(path)
    if _tensor_dict(obj):
        return dict(obj), "state_dict"
    if isinstance(obj, dict):
        inner = {k: v for k, v in obj.items() if _tensor_dict(v)}
        if "state_dict" in inner:  # Lightning's key, chosen over e.g. an EMA copy beside it
            return dict(inner["state_dict"]), "lightning"
        if len(inner) == 1:  # e.g. {"model_state_dict": ..., "optimizer_state_dict": ..., "epoch": ...}
            key, state = next(iter(inner.items()))
            return dict(state), f"dict:{key}"
        if inner:
            raise CheckpointError(f"{path} holds several sets of weights ({', '.join(map(repr, inner))}); save the "
                                  f"one to learn from alone with {SAVE_HINT}")
    if isinstance(obj, torch.Tensor):
        raise CheckpointError(f"{path} holds a single tensor, not a network's weights; save them with {SAVE_HINT}")
    raise CheckpointError(f"{path} holds no network weights (a {type(obj).__name__} without a dict of tensors); "
                          f"save them with {SAVE_HINT}")


def _prefixes(keys: list[str], depth: int = 3) -> list[str]:
    """Candidate key prefixes ending in '.', up to ``depth`` segments, most keys first (``model.``, ``net.``,
    ``module.`` and the like: the attribute, or DataParallel's wrapper, that held the network)."""
    counts: Counter[str] = Counter()
    for k in keys:
        parts = k.split(".")
        for i in range(1, min(depth, len(parts) - 1) + 1):
            counts[".".join(parts[:i]) + "."] += 1
    return [p for p, _ in sorted(counts.items(), key=lambda pc: (-pc[1], len(pc[0])))]


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _few(keys: list[str], sep: str = ", ") -> str:
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return sep.join(keys[:_SHOWN]) + more


def fit_state_dict(state: dict[str, torch.Tensor], model: nn.Module, prefix: str | None,
                   where: str) -> tuple[dict[str, torch.Tensor], dict[str, str | None]]:
    """``state`` renamed to ``model``'s keys and checked for shapes; returns it and how it was renamed
    (``{"prefix": stripped, "added": added}``).

    ``prefix`` (``teacher.prefix``): strip it and keep only the keys that carry it; None: the prefix is found
    (stripped from the file's keys, or added to them where the model wraps the saved network). One
    :class:`CheckpointError` line lists the first missing and unexpected keys and a prefix that would fit."""
    own = model.state_dict()
    want = set(own)
    tries: list[tuple[str, str, dict[str, torch.Tensor]]] = []  # (stripped, added, renamed state)
    if prefix is not None:
        tries.append((prefix, "", _strip(state, prefix)))
    else:
        tries.append(("", "", dict(state)))
        tries += [(p, "", _strip(state, p)) for p in _prefixes(list(state))]
        tries += [("", q, {q + k: v for k, v in state.items()}) for q in _prefixes(list(own))]
    fits = [t for t in tries if set(t[2]) == want]
    # Two prefixes that each fit (e.g. "model." and "ema." of one Lightning file) with other weights: guessing one
    # would learn from a network the user did not mean; the same weights under both fit either way.
    differ = [t for t in fits[1:] if any(not torch.equal(t[2][k], fits[0][2][k]) for k in want)]
    if differ:
        named = ", ".join(repr(t[0] or t[1]) for t in [fits[0], *differ])
        raise CheckpointError(f"{where}: several key prefixes fit the model with different weights ({named}); set "
                              "teacher.prefix to the one that holds the network to learn from")
    fit = fits[0] if fits else None
    if fit is None:
        # Report against the renaming that fits most keys; name a prefix that fits them all if there is one.
        best = max(tries, key=lambda t: (len(set(t[2]) & want), -len(t[0]) - len(t[1])))
        missing = sorted(want - set(best[2]))
        unexpected = sorted(set(best[2]) - want)
        hint = ""
        if prefix is not None:
            other = next((p for p in [""] + _prefixes(list(state)) if set(_strip(state, p)) == want), None)
            if other is not None:
                hint = f"; teacher.prefix: {other!r} makes every key fit (or null, to find it)"
        elif best[0] or best[1]:
            hint = (f"; {'stripping ' + repr(best[0]) if best[0] else 'adding ' + repr(best[1])} fits "
                    f"{len(set(best[2]) & want)} of its {len(want)} keys")
        parts = ([f"{len(missing)} of the model's {len(want)} keys are missing from the file ({_few(missing)})"]
                 if missing else []) + \
            ([f"{len(unexpected)} of the file's keys are not the model's ({_few(unexpected)})"] if unexpected else [])
        raise CheckpointError(
            f"{where} does not fit the model: {', '.join(parts)}{hint}; set teacher.model and teacher.kwargs to the "
            "network that was saved (teacher.prefix to the attribute that held it)")
    renamed = fit[2]
    wrong = [f"{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in sorted(renamed.items())
             if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise CheckpointError(f"{where} does not fit the model: {len(wrong)} weights have other shapes ("
                              f"{_few(wrong, '; ')}); set teacher.kwargs to the arguments the network "
                              "was trained with (e.g. width, depth, in_chans, num_classes)")
    return renamed, {"prefix": fit[0] or None, "added": fit[1] or None}


def is_fspladder_file(path: Path) -> bool:
    """Whether ``path`` is an fspladder checkpoint (read with ``weights_only=True``; False for anything else,
    readable or not: the user-weights reader then says what is wrong)."""
    if _is_safetensors(path):
        return False
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def read_teacher_weights(tc: TeacherConfig) -> tuple[Path, dict[str, torch.Tensor], str]:
    """The file ``teacher.checkpoint`` names (not an fspladder checkpoint), the state_dict it holds and its format;
    :class:`CheckpointError` when it cannot be read or ``teacher.model`` is unset. Builds no network: without data
    to size one by, this is what can be checked of the file."""
    path = resolve_checkpoint(tc.checkpoint)
    state, fmt = read_weights(path)
    if tc.model is None:
        raise CheckpointError(f"{path} holds weights without their architecture ({fmt}); set teacher.model to the "
                              "network they belong to (a built-in name or module:factory) and teacher.kwargs to its "
                              "arguments")
    return path, state, fmt


def load_user_teacher(tc: TeacherConfig, data: DataSplits | None) -> tuple[nn.Module, dict[str, Any]]:
    """The network a non-fspladder file holds, built by ``teacher.model``/``teacher.kwargs`` (sized for ``data``
    where the factory takes ``in_chans``/``num_classes``), its weights loaded; and the record
    ``{"model": spec, "meta": {"source": ..., "preprocessing": ...}}``."""
    path, state, fmt = read_teacher_weights(tc)
    try:
        if data is not None:
            model, kwargs = create_for_data(tc.model, data.in_chans, data.num_classes, tc.kwargs, seed=0,
                                            image_size=data.image_size)
        else:  # a caller without data to size it by: the factory's defaults and the user's kwargs
            model, kwargs = create_model(tc.model, **tc.kwargs), dict(tc.kwargs)
    except FspladderError as e:  # a factory that does not import or build: a teacher problem check lists
        raise CheckpointError(f"teacher.model {tc.model!r} for {path}: {e}") from e
    renamed, how = fit_state_dict(state, model, tc.prefix, str(path))
    try:
        model.load_state_dict(renamed)
    except RuntimeError as e:  # keys and shapes were checked; anything else torch refuses, in one line
        raise CheckpointError(f"teacher.checkpoint {path} does not fit {tc.model}: {_short(e)}") from e
    source = {"file": str(path), "sha256": file_sha256(path), "format": fmt, **how}
    return model, {"model": {"name": tc.model, "kwargs": kwargs},
                   "meta": {"source": source, "preprocessing": preprocessing_record(tc)}}


def preprocessing_record(tc: TeacherConfig) -> dict[str, Any] | None:
    """``teacher.preprocessing`` as a teacher's record keeps it (None when unset: the data's statistics apply)."""
    return dataclasses.asdict(tc.preprocessing) if tc.preprocessing.mean is not None else None


def with_teacher_preprocessing(splits: DataSplits, cfg: RunConfig) -> DataSplits:
    """``splits`` normalised as the teacher was trained (``teacher.preprocessing``), else unchanged.

    Its image size and channels must be the data's (for folder data, ``data.image_size`` and
    ``data.channels`` decide them: set those); a disagreement is a :class:`ConfigError` naming both."""
    pre = cfg.teacher.preprocessing
    err = []
    if pre.channels is not None and pre.channels != splits.in_chans:
        fix = (f"set data.channels: {pre.channels}" if cfg.data.name == "folder" else
               "use data with the channels the teacher was trained on, or the teacher trained on this data")
        err.append(f"teacher.preprocessing.channels is {pre.channels} but the data ({splits.name}) has "
                   f"{splits.in_chans} channels: {fix}")
    size = tuple(splits.image_size)
    if pre.image_size is not None and size != (pre.image_size, pre.image_size):
        fix = (f"set data.image_size: {pre.image_size}" if cfg.data.name == "folder" else
               "use data of the teacher's image size, or the teacher trained on this data")
        err.append(f"teacher.preprocessing.image_size is {pre.image_size} but the data's images are "
                   f"{size[0]}x{size[1]}: {fix}")
    if pre.mean is not None and len(pre.mean) not in (1, splits.in_chans):
        err.append(f"teacher.preprocessing.mean and std have {len(pre.mean)} values but the data has "
                   f"{splits.in_chans} channels: give one per channel (or one for all)")
    if err:
        raise ConfigError(err)
    if pre.mean is None or pre.std is None:
        return splits
    c = splits.in_chans
    mean = tuple(float(m) for m in (pre.mean * c if len(pre.mean) == 1 else pre.mean))
    std = tuple(float(s) for s in (pre.std * c if len(pre.std) == 1 else pre.std))
    return dataclasses.replace(splits, mean=mean, std=std)


def export_state_dict(ckpt: str | Path, out: str | Path) -> None:
    """Write the weights of fspladder checkpoint ``ckpt`` as a plain state_dict file (``.safetensors`` by that
    suffix, else ``torch.save``): ``model.load_state_dict(torch.load(out, weights_only=True))`` in any code."""
    state = load_checkpoint(ckpt)["state_dict"]
    if _is_safetensors(Path(out)):
        from safetensors.torch import save  # only this format needs the package

        data = save({k: v.contiguous() for k, v in state.items()})
    else:
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
    atomic_write_bytes(out, data)
