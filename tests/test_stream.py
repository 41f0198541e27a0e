"""Issue 18: the streaming input path beside the in-memory one."""

from __future__ import annotations

import json

import pytest
import torch

from fspladder import create_model
from fspladder.check import check_config
from fspladder.cli import main
from fspladder.config import load_config, read_config_data
from fspladder.data import DataSplits
from fspladder.engine import train_stage1, train_stage2
from fspladder.ladder import default_pairs
from fspladder.session import context_for, load_data

CPU = torch.device("cpu")


def _splits(idx_folder, stream, workers=1):
    cfg = load_config(None, ["data.name=idx", f"data.root={idx_folder}", "data.val_size=100", "progress=false",
                             f"data.stream={str(stream).lower()}", f"data.workers={workers}", "eval_batch_size=64"])
    return cfg, load_data(cfg, CPU)


def test_streamed_and_in_memory_paths_train_on_the_same_images_in_the_same_order(idx_folder):
    """Same seed, same images, same order, same augmentation: the weights agree bit for bit after stage 1 and 2."""
    (cfg, mem), (_, st) = _splits(idx_folder, False), _splits(idx_folder, True)
    assert not mem.streamed and st.streamed
    assert torch.equal(mem.train.y, st.train.y) and mem.mean == st.mean and mem.std == st.std
    assert torch.equal(mem.val.read(torch.arange(len(mem.val))), st.val.read(torch.arange(len(st.val))))
    assert mem.train.fingerprint("idx") == st.train.fingerprint("idx")
    weights = []
    for data in (mem, st):
        ctx = context_for(cfg, CPU, data)
        torch.manual_seed(0)
        prev, student = create_model("resnet8", in_chans=1, num_classes=4).eval(), \
            create_model("resnet14", in_chans=1, num_classes=4)
        s1 = cfg.stage1
        s1.batch_size, s1.epochs = 50, 1.0
        r1 = train_stage1(student, default_pairs(student), prev, default_pairs(prev), s1, ctx, "s", seed=3)
        s2 = cfg.stage_for(cfg.rungs[-1], "stage2")
        s2.batch_size, s2.epochs = 50, 2
        r2 = train_stage2(student, s2, ctx, "s", seed=3)
        weights.append((student.state_dict(), r1.fsp_loss_end, r2.val_acc))
    (a, fa, va), (b, fb, vb) = weights
    assert fa == fb and va == vb
    assert all(torch.equal(a[k], b[k]) for k in a)


def _folder(root, n=40, classes=("a", "b", "c")):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for part, m in (("train", n), ("test", 6)):
        for k, c in enumerate(classes):
            d = root / part / c
            d.mkdir(parents=True)
            for i in range(m):
                px = (torch.rand(16, 16, 3, generator=g) * 60).to(torch.uint8)
                px[4 * k : 4 * k + 4] += 150  # a band per class: learnable
                Image.fromarray(px.numpy()).save(d / f"{i}.png")
    return root


def test_a_folder_too_large_for_its_memory_share_streams_through_a_whole_ladder(tmp_path, capsys):
    root = _folder(tmp_path / "imgs")
    data = ["--set", "data.name=folder", "--set", f"data.root={root}", "--set", "data.val_size=12",
            "--set", "data.image_size=16", "--set", "data.workers=1"]
    small = ["--set", "stage1.batch_size=16", "--set", "stage2.batch_size=16", "--set", "eval_batch_size=32",
             "--no-progress"]
    teacher = tmp_path / "t.pt"
    assert main(["train", "--model", "resnet8", "--save", str(teacher), "--set", "stage2.epochs=1", *data, *small]) == 0
    tight = ["--set", "data.memory_share=1e-9"]  # auto: any data set exceeds this share of free memory
    assert main(["check", *data, *tight, "--set", f"teacher.checkpoint={teacher}"]) == 0
    printed = capsys.readouterr().out
    assert "108 training images" in printed and "-> streamed from disk batch by batch (data.stream: auto)" in printed
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *data, *small, *tight, "--set", f"teacher.checkpoint={teacher}",
                 "--set", "stage1.epochs=1", "--set", "stage2.epochs=1", "--set", "rungs.0.stage2.epochs=1",
                 "--no-report"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["data"]["streamed"] and s["data"]["train"] == 108
    assert all(r["stage1"]["fsp_loss_end"] < r["stage1"]["fsp_loss_start"] for r in s["rungs"])
    assert main(["check", *data, "--set", f"teacher.checkpoint={teacher}"]) == 0
    assert "-> held in memory on the training device" in capsys.readouterr().out


def test_streamed_folder_statistics_and_split_match_the_in_memory_path(tmp_path):
    root = _folder(tmp_path / "imgs", n=20)
    base = ["data.name=folder", f"data.root={root}", "data.val_size=6", "data.image_size=16", "data.workers=0"]
    mem = load_data(load_config(None, base + ["data.stream=false"]), CPU)
    st = load_data(load_config(None, base + ["data.stream=true"]), CPU)
    assert mem.mean == st.mean and mem.std == st.std  # all 54 training images are in the statistics' sample
    assert torch.equal(mem.val.x, st.val.read(torch.arange(6))) and torch.equal(mem.train.y, st.train.y)
    assert mem.train.fingerprint("f") == st.train.fingerprint("f")


def test_cache_teacher_needs_the_in_memory_path():
    from fspladder.config import ConfigError

    with pytest.raises(ConfigError, match="stage1.cache_teacher needs the in-memory data path"):
        load_config(None, ["data.stream=true", "stage1.augment=false", "stage1.cache_teacher=true"])


def test_own_datasets_stream_through_the_python_api(idx_folder, tmp_path):
    from fspladder import run_ladder, save_checkpoint

    _, mem = _splits(idx_folder, False)
    train = torch.utils.data.TensorDataset(mem.train.x.float() / 255, mem.train.y)
    test = torch.utils.data.TensorDataset(mem.test.x, mem.test.y)
    own = DataSplits.from_datasets(train, test, val_size=50, stream=True, workers=1)
    assert own.streamed and len(own.train) == 450 and own.num_classes == 4
    teacher = tmp_path / "t.pt"
    torch.manual_seed(0)
    save_checkpoint(teacher, create_model("resnet8", in_chans=1, num_classes=4),
                    {"name": "resnet8", "kwargs": {"in_chans": 1, "num_classes": 4}})
    cfg = load_config(None, [f"teacher.checkpoint={teacher}", "recipe=w2s", "stage2.epochs=1", "stage2.batch_size=50",
                             "rungs=[{name: target, model: resnet14}]", "progress=false"])
    s = run_ladder(cfg, tmp_path / "api", data=own)
    assert s["data"]["streamed"] and s["rungs"][0]["stage2"]["val_acc"]


@pytest.mark.skipif(not (__import__("fspladder").data.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (make test installs it)")
def test_the_default_config_runs_streamed(tmp_path):
    out = tmp_path / "fm"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report", "--set", "data.stream=true",
                 "--set", "data.train_subset=512", "--set", "data.test_subset=200", "--set", "stage1.epochs=0.25",
                 "--set", "stage2.epochs=1", "--set", "rungs.0.stage2.epochs=1"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["data"]["streamed"] and s["teacher"]["test_acc"] > 0.8


def test_check_explains_the_path_and_refuses_nothing_for_auto(idx_folder):
    notes: list[str] = []
    _, problems = check_config(read_config_data(None, ["data.name=idx", f"data.root={idx_folder}",
                                                       "data.val_size=100"]), notes)
    assert any("500 training images = 0.1 MiB decoded" in n and "(data.stream: auto)" in n for n in notes), notes
