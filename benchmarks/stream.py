"""Images per second of the two input paths on a generated image folder: in memory vs streamed from disk.

A folder of PNG files (``--images`` of ``--size`` x ``--size`` RGB, 10 classes) is written once, then read
the two ways ``fspladder`` can:

* **in memory** (``data.stream: false``): every image decoded once up front (timed separately), then each
  batch is an index lookup on the training device;
* **streamed** (``data.stream: true``): batches decoded by ``DataLoader`` worker processes (Pillow) a few
  batches ahead, with ``--workers`` 0 (decoding in the training process) and more.

Both then go through the same batched augmentation and normalisation. Two rates per path: the input
pipeline alone (batches prepared per second, no model), and a ResNet-20 stage-2 epoch (images trained
per second: what the pipeline costs a real step). Medians over ``--repeats``.

    python benchmarks/stream.py                          # 4,000 images of 32x32, CPU
    python benchmarks/stream.py --images 2000 --repeats 1 --dry-run

Writes results/stream-<device>.json.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import bench_parser


def make_folder(root: Path, n: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        k = i % 10
        d = root / f"class{k}"
        d.mkdir(parents=True, exist_ok=True)
        px = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        px[(size * k) // 10 : (size * (k + 1)) // 10] += 120
        Image.fromarray(px).save(d / f"{i}.png")
    return root


def pipeline_rate(data, ctx, batch: int, steps: int) -> float:
    """Batches of ``batch`` prepared per second (read, augment, normalise), as the training loop draws them."""
    from itertools import islice

    from fspladder.engine.loop import batches

    gen = torch.Generator().manual_seed(0)
    order = list(islice(batches(len(data.train), batch, gen), steps))
    t = time.perf_counter()
    for idx, x in zip(order, data.train.stream(order)):
        ctx.augment_batch(x, len(idx), True, gen)
    return len(order) * batch / (time.perf_counter() - t)


def train_rate(cfg, data, ctx) -> float:
    from fspladder import create_model
    from fspladder.engine import train_stage2

    torch.manual_seed(0)
    model = create_model("resnet20", in_chans=3, num_classes=10).to(memory_format=torch.channels_last)
    r = train_stage2(model, cfg.stage_for(cfg.rungs[-1], "stage2"), ctx, "stream-bench", eval_test=False)
    return len(data.train) // cfg.stage2.batch_size * cfg.stage2.batch_size / r.train_seconds


def main() -> None:
    from fspladder.config import load_config
    from fspladder.session import context_for, load_data, machine_info

    ap = bench_parser(__doc__, "a small folder, one repeat, no training epoch")
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--workers", default="0,1,2", help="worker counts for the streamed path")
    a = ap.parse_args()
    if a.dry_run:
        a.images, a.repeats = 600, 1
    device = torch.device("cpu")
    res: dict = {"images": a.images, "size": a.size, "batch": a.batch, "repeats": a.repeats,
                 "machine": machine_info(device), "paths": {}}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        root = make_folder(Path(tmp) / "imgs", a.images, a.size)
        res["write_seconds"] = time.perf_counter() - t
        base = ["data.name=folder", f"data.root={root}", f"data.image_size={a.size}",
                f"data.val_size={max(10, min(200, a.images // 20))}",
                f"stage2.batch_size={a.batch}", "stage2.epochs=1", "progress=false"]
        variants = [("in memory", ["data.stream=false"])] + [
            (f"streamed, {w} worker(s)", ["data.stream=true", f"data.workers={w}"]) for w in a.workers.split(",")]
        for name, sets in variants:
            cfg = load_config(None, base + sets)
            load_s, pipe, train = [], [], []
            for _ in range(a.repeats):
                t = time.perf_counter()
                data = load_data(cfg, device).to(device)
                load_s.append(time.perf_counter() - t)
                ctx = context_for(cfg, device, data)
                steps = len(data.train) // a.batch
                pipe.append(pipeline_rate(data, ctx, a.batch, steps))
                if not a.dry_run:
                    train.append(train_rate(cfg, data, ctx))
            res["paths"][name] = {
                "load_seconds": statistics.median(load_s),  # in memory: decoding everything; streamed: indexing + stats
                "pipeline_images_per_second": statistics.median(pipe),
                "train_images_per_second": statistics.median(train) if train else None}
            r = res["paths"][name]
            print(f"{name:24s} load {r['load_seconds']:6.2f} s   pipeline {r['pipeline_images_per_second']:8.0f} img/s"
                  + (f"   ResNet-20 stage 2 {r['train_images_per_second']:6.0f} img/s" if train else ""))
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / f"stream-{device.type}{'-dry' if a.dry_run else ''}.json"
    path.write_text(json.dumps(res, indent=2))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
