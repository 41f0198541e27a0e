"""Using a trained network on its own (``fspladder predict``): classify image files or score a data set.

Checkpoints written by ``fspladder run`` and ``fspladder train`` record how
their inputs were prepared (``meta["preprocessing"]``: input shape, per-channel
mean and std of the training images, class names, data source), so a
checkpoint needs nothing else: images are read with Pillow, converted to the
recorded channels, resized to the recorded size, scaled to [0, 1] and
normalised with the recorded statistics, exactly as in training (less the
random augmentation).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .checkpoint import CheckpointError, load_model
from .config import RunConfig
from .data import DataFileError, decode_image, normalize
from .data.folder import IMAGE_SUFFIXES
from .models import logits_of

__all__ = ["load_for_inference", "classify_files", "score_data", "image_files"]


def load_for_inference(ref: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The network in a checkpoint (eval mode, on ``device``) and how its inputs must be prepared."""
    model, ck = load_model(ref)
    prep = (ck.get("meta") or {}).get("preprocessing")
    if not prep:
        raise CheckpointError(
            f"{ref} records no preprocessing (input shape, mean/std, class names): it was saved by an older "
            "fspladder; retrain it, or score it through a config with `fspladder predict CKPT --data CONFIG`, which "
            "recomputes the statistics of that config's training split")
    return model.to(device).eval(), prep


def image_files(paths: Iterable[str | Path]) -> list[Path]:
    """Image files named directly or found (recursively, sorted) in the named folders."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise DataFileError(f"{p} does not exist; name image files or folders of images")
    if not out:
        raise DataFileError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {', '.join(map(str, paths))}")
    return out


def _prepare(x_uint8: torch.Tensor, prep: dict[str, Any], device: torch.device | str) -> torch.Tensor:
    mean = torch.tensor(prep["mean"], dtype=torch.float32, device=device)
    std = torch.tensor(prep["std"], dtype=torch.float32, device=device)
    return normalize(x_uint8.to(device), mean, std)


@torch.no_grad()
def classify_files(model: nn.Module, prep: dict[str, Any], files: list[Path], batch: int = 256,
                   device: torch.device | str = "cpu", top: int = 1) -> list[dict[str, Any]]:
    """One record per file: the ``top`` classes with their probabilities."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise DataFileError(f"classify_files(top=...) must be an integer >= 1 (classes per image), got {top!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise DataFileError(f"classify_files(batch=...) must be an integer >= 1 (images per forward pass), got "
                            f"{batch!r}")
    c, h, w = prep["input_shape"]
    if h != w:
        raise CheckpointError(f"the checkpoint's input is {h}x{w}; only square inputs can be read from files")
    names = prep.get("class_names") or [str(k) for k in range(prep["num_classes"])]
    out = []
    for i in range(0, len(files), batch):
        chunk = files[i : i + batch]
        x = torch.from_numpy(np.stack([decode_image(f, h, c) for f in chunk]))
        probs = torch.softmax(logits_of(model(_prepare(x, prep, device))).float(), 1)
        p, k = probs.topk(min(top, probs.shape[1]), dim=1)
        for f, pi, ki in zip(chunk, p.tolist(), k.tolist()):
            out.append({"file": str(f), "classes": [names[j] for j in ki], "labels": ki, "probabilities": pi})
    return out


@torch.no_grad()
def score_data(model: nn.Module, prep: dict[str, Any] | None, cfg: RunConfig, split: str = "test",
               device: torch.device | str = "cpu", batch: int = 1000) -> dict[str, Any]:
    """Top-1 accuracy on a config's ``split`` (``test``, ``val`` or ``train``), with the checkpoint's
    preprocessing (or, for a checkpoint without one, the statistics of the config's own training split)."""
    from .session import load_data

    data = load_data(cfg)
    if prep is None:
        prep = data.describe()
    want = list(prep["input_shape"])
    got = [data.in_chans, *data.image_size]
    if want != got:
        raise DataFileError(f"the checkpoint reads {want[0]}x{want[1]}x{want[2]} images but the data gives "
                            f"{got[0]}x{got[1]}x{got[2]}; score it on data of its own kind")
    if prep["num_classes"] != data.num_classes:
        raise DataFileError(f"the checkpoint predicts {prep['num_classes']} classes and the data has "
                            f"{data.num_classes}")
    s = {"test": data.test, "val": data.val, "train": data.train}[split]
    correct = 0
    for i in range(0, len(s), batch):
        idx = torch.arange(i, min(len(s), i + batch))
        logits = logits_of(model(_prepare(s.read(idx), prep, device)))
        correct += int((logits.argmax(1).cpu() == s.y[idx.to(s.y.device)].cpu()).sum())
    return {"split": split, "images": len(s), "accuracy": correct / max(1, len(s)), "data": data.name}
