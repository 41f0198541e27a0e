"""Cheaper stage-1 variants (issue 9): teacher-FSP cache, image subset, plateau stop, loss norms."""

from __future__ import annotations

import copy

import pytest
import torch

from fspladder.config import ConfigError, Stage1Config, load_config
from fspladder.engine import train_stage1
from fspladder.ladder import default_pairs
from fspladder.losses import fsp_loss


@pytest.fixture
def setup(tiny_pair):  # (ctx, frozen ResNet-8, ResNet-14 student) on the tiny IDX data
    return tiny_pair


def _stage1(setup, **kw):
    ctx, prev, student = setup
    s = copy.deepcopy(student)
    cfg = Stage1Config(batch_size=50, **kw)
    r = train_stage1(s, default_pairs(s), prev, default_pairs(prev), cfg, ctx, "s")
    return s, r


def test_cached_teacher_flows_train_like_the_live_teacher(setup):
    live, r_live = _stage1(setup, augment=False, epochs=2)
    cached, r_cached = _stage1(setup, augment=False, cache_teacher=True, epochs=2)
    # Same batches, same targets up to float rounding of a different batch size in the teacher's pass.
    for a, b in zip(live.state_dict().values(), cached.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    assert r_cached.cache_bytes_per_image == 4 * (16 * 16 + 16 * 32 + 32 * 64)  # float32 per image
    assert r_cached.fsp_loss_end < r_cached.fsp_loss_start


def test_cache_needs_fixed_inputs():
    with pytest.raises(ConfigError, match="cache_teacher needs fixed inputs: set stage1.augment: false"):
        load_config(None, ["stage1.cache_teacher=true"])
    with pytest.raises(ConfigError, match=r"rungs\[1\].stage1.cache_teacher"):
        load_config(None, ["rungs.1.stage1={cache_teacher: true}"])


def test_image_subset_sets_the_steps(setup):
    _, r = _stage1(setup, images=200, epochs=1)
    assert r.images == 200 and r.steps == 4  # 200 images / batch 50
    _, r = _stage1(setup, images=10_000, epochs=1)
    assert r.images == 500 and r.steps == 10  # more than there are: all 500 training images


def test_plateau_stops_early_and_says_so(setup):
    _, r = _stage1(setup, epochs=3, plateau=0.9)  # "improve by 90% per window" is soon unmet
    window = max(5, r.steps // 10)
    assert r.stopped_at_step % window == 0 and window <= r.stopped_at_step < r.steps
    assert len(r.history) < 3  # later epochs never ran
    _, r = _stage1(setup, epochs=1)
    assert r.stopped_at_step is None
    with pytest.raises(ConfigError, match=r"plateau must be a finite number in \(0, 1\)"):
        load_config(None, ["stage1.plateau=2"])


def test_loss_norms():
    g_s = [torch.zeros(3, 4, 5), torch.zeros(3, 2, 2)]
    g_t = [torch.ones(3, 4, 5), 2 * torch.ones(3, 2, 2)]
    assert fsp_loss(g_s, g_t).item() == pytest.approx(20 + 16)  # patent eq. 2: squared Frobenius, batch mean
    assert fsp_loss(g_s, g_t, norm="element").item() == pytest.approx(1 + 4)
    assert fsp_loss(g_s, g_t, norm="pair").item() == pytest.approx(2.0)  # each pair relative to the teacher's norm
    assert fsp_loss(g_t, g_t, norm="pair").item() == 0
    with pytest.raises(ValueError, match="norm must be one of patent, element, pair"):
        fsp_loss(g_s, g_t, norm="l1")


def test_fp16_loss_scale_is_part_of_the_epoch_snapshot(setup):
    from dataclasses import replace

    from fspladder.config import Stage2Config
    from fspladder.engine import Objective, Stage2Result
    from fspladder.engine.loop import _Loop

    ctx, _, student = setup

    class Model(Objective):
        def modules(self):
            return {"model": student}

    loop = _Loop(Model(), Stage2Config(lr=0.1), ctx.data.train, replace(ctx, amp="fp16"), name="s", seed=0, total=1,
                 steps_per_epoch=1, warmup=0, result=Stage2Result(epochs=1, steps=1), on_epoch_end=None)
    scaler = loop.scaler
    assert scaler.is_enabled()
    scaler.scale(torch.ones(()))  # the scale tensor exists from the first scaled loss on
    scaler.update(new_scale=256.0)
    snap = loop.snapshot()
    scaler.update(new_scale=8.0)
    loop.restore(snap)
    assert scaler.get_scale() == 256.0


def test_a_cache_too_large_for_free_memory_is_refused_before_training(setup, monkeypatch):
    import fspladder.engine.stage1 as stage1

    monkeypatch.setattr(stage1, "free_bytes", lambda device: 200 * 11_264)  # room for 100 images at half
    ctx, prev, student = setup
    s = copy.deepcopy(student)
    before = copy.deepcopy(s.state_dict())
    with pytest.raises(ConfigError, match=r"for 500 images need 5 MiB \(11264 bytes per image\).*"
                                          r"set stage1.images to at most 100, or stage1.cache_teacher: false"):
        train_stage1(s, default_pairs(s), prev, default_pairs(prev),
                     Stage1Config(batch_size=50, augment=False, cache_teacher=True), ctx, "s")
    for a, b in zip(before.values(), s.state_dict().values()):
        assert torch.equal(a, b)  # nothing trained
    monkeypatch.setattr(stage1, "free_bytes", lambda device: 10**12)
    _, r = _stage1(setup, augment=False, cache_teacher=True, epochs=0.1)
    assert r.cache_bytes_per_image == 11_264


def test_free_memory_is_read_on_cpu():
    import pathlib

    from fspladder.engine.stage1 import free_bytes

    free = free_bytes(torch.device("cpu"))
    if pathlib.Path("/proc/meminfo").exists():
        assert free is not None and free > 2**20
    else:
        assert free is None
