"""Add what a checkpoint saved before self-describing checkpoints lacks: preprocessing and training fingerprint.

Older `fspladder train` checkpoints record the data they were trained on (data set, classes, val_size,
seed, training images) but not the normalisation statistics, class names or the fingerprint of the
training images. This script re-derives them from that record, exactly as training derived its split,
checks that the derived split has the recorded number of images, and writes them into the checkpoint's
meta. The weights are not touched (their SHA-256 is checked before and after).

    python scripts/describe_checkpoint.py src/fspladder/pretrained/resnet8_fmnist.pt
"""

from __future__ import annotations

import sys

import torch

from fspladder.checkpoint import load_checkpoint, save_checkpoint, state_digest
from fspladder.config import load_config
from fspladder.models import create_model
from fspladder.session import load_data


def describe(path: str) -> None:
    ck = load_checkpoint(path)
    meta = dict(ck["meta"])
    if "preprocessing" in meta and "train_fingerprint" in meta:
        print(f"{path}: already self-describing")
        return
    sets = [f"data.name={meta['data']}", f"data.val_size={meta['val_size']}", f"seed={meta['seed']}"]
    if meta.get("classes") is not None:
        sets.append(f"data.classes={meta['classes']}")
    if meta.get("train_subset"):
        sets.append(f"data.train_subset={meta['train_subset']}")
    data = load_data(load_config(None, sets), torch.device("cpu"))
    if len(data.train) != meta["train_images"]:
        raise SystemExit(f"{path}: the derived split has {len(data.train)} training images, the record says "
                         f"{meta['train_images']}; not changed")
    meta["preprocessing"] = data.describe()
    meta["train_fingerprint"] = data.train.fingerprint(data.name)
    meta["described_by"] = "scripts/describe_checkpoint.py (re-derived from the recorded data, classes, val_size, seed)"
    model = create_model(ck["model"]["name"], **ck["model"]["kwargs"])
    model.load_state_dict(ck["state_dict"])
    before = state_digest(ck["state_dict"])
    save_checkpoint(path, model, ck["model"], meta)
    after = load_checkpoint(path)
    assert state_digest(after["state_dict"]) == before == after["sha256"]
    print(f"{path}: preprocessing and training fingerprint added ({len(data.train)} images); weights unchanged")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        describe(p)
