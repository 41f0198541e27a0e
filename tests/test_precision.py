"""The frozen network's mixed precision (precision.py, ``teacher_amp``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import fspladder.engine.stage1 as engine
import fspladder.precision as precision
from fspladder import ConfigError, FsPair, create_model, parse_config
from fspladder.config import Stage1Config
from fspladder.engine import Stage1Result, fsp_eval_loss, train_stage1
from fspladder.flow import FlowRecorder, flow_of, taps_of
from fspladder.fold import fold_batchnorm
from fspladder.precision import resolve_amp, resolve_teacher_amp

CPU = torch.device("cpu")


def test_resolution_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_amp("auto", CPU) == "off" and resolve_amp("auto", torch.device("cuda")) == "bf16"
    assert resolve_amp("fp16", CPU) == "fp16"
    for explicit in ("off", "bf16", "fp16"):  # an explicit value is never overridden
        assert resolve_teacher_amp(explicit, "bf16", CPU) == explicit
    assert resolve_teacher_amp("auto", "fp16", CPU) == "fp16"  # follows a trained network's autocast
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert resolve_teacher_amp("auto", "off", CPU) == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert resolve_teacher_amp("auto", "off", CPU) == "off"  # emulated bf16 would be slower than float32


def test_native_bf16_is_a_bool_and_recorded() -> None:
    from fspladder.runner import machine_info

    assert isinstance(precision.native_bf16(CPU), bool)
    assert precision.native_bf16(torch.device("meta")) is False
    assert machine_info(CPU)["native_bf16"] == precision.native_bf16(CPU)


def test_config_key_is_checked_and_reaches_the_context(tiny_pair) -> None:
    with pytest.raises(ConfigError, match="teacher_amp"):
        parse_config({"teacher_amp": "fp8"})
    from fspladder.runner import context_for

    ctx, _, _ = tiny_pair
    for value in ("off", "bf16"):
        assert context_for(parse_config({"teacher_amp": value}), CPU, ctx.data).teacher_amp == value
    auto = context_for(parse_config({}), CPU, ctx.data).teacher_amp
    assert auto == ("bf16" if precision.native_bf16(CPU) else "off")


def test_bf16_targets_stay_close_to_float32() -> None:
    """The documented error: bf16 features, float32 FSP matrices, well under 1 % relative."""
    torch.manual_seed(0)
    prev = create_model("resnet14", in_chans=1, num_classes=10).eval()
    pairs = [FsPair.parse(p) for p in prev.default_fsp_pairs]
    fast, _ = fold_batchnorm(prev, taps_of(pairs))
    x = torch.randn(32, 1, 28, 28)
    with FlowRecorder(fast, taps_of(pairs), stop_early=True) as rec, torch.no_grad():
        g32 = flow_of(rec.run(x), pairs)
        with precision.autocast_for(CPU, "bf16"):
            g16 = flow_of(rec.run(x), pairs)
    for a, b in zip(g32, g16):
        assert b.dtype == torch.float32  # the Gram sums never run in bf16
        rel = ((a - b).norm() / a.norm()).item()
        assert 0 < rel < 0.01, rel  # > 0: bf16 really ran; < 1 %: close enough to be a target


def test_stage1_runs_the_frozen_network_under_teacher_amp(tiny_pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training targets come from a bf16 forward; the held-out FSP loss stays float32; the student
    (amp off) trains in float32; and the stage learns about as well as with a float32 teacher."""
    ctx, prev, student = tiny_pair
    pairs_p = [FsPair.parse(p) for p in prev.default_fsp_pairs]
    pairs_s = [FsPair.parse(p) for p in student.default_fsp_pairs]
    cfg = Stage1Config(epochs=1.0, batch_size=50)
    seen: list[set[torch.dtype]] = []
    real = engine.flow_of

    def spy(features, pairs):
        seen.append({f.dtype for f in features.values()})
        return real(features, pairs)

    results = {}
    for mode in ("off", "bf16"):
        seen.clear()
        monkeypatch.setattr(engine, "flow_of", spy)
        c = dataclasses.replace(ctx, teacher_amp=mode)
        torch.manual_seed(1)
        s = create_model("resnet14", in_chans=1, num_classes=4)
        results[mode] = train_stage1(s, pairs_s, prev, pairs_p, cfg, c, "s")
        monkeypatch.undo()
        kinds = [frozenset(d) for d in seen]
        if mode == "bf16":
            assert frozenset({torch.bfloat16}) in kinds  # the frozen network's training forward
        assert frozenset({torch.float32}) in kinds  # student, and the held-out measurement
        assert all(k <= {torch.float32, torch.bfloat16} for k in kinds)
    # The held-out loss is measured against float32 targets in both runs, so they compare directly.
    start = results["off"].fsp_loss_start
    assert results["bf16"].fsp_loss_start == pytest.approx(start, rel=1e-6)
    gain32 = start - results["off"].fsp_loss_end
    gain16 = start - results["bf16"].fsp_loss_end
    assert gain32 > 0 and gain16 == pytest.approx(gain32, rel=0.1)


def test_cache_is_built_under_teacher_amp(tiny_pair) -> None:
    ctx, prev, student = tiny_pair
    pairs = [FsPair.parse(p) for p in prev.default_fsp_pairs]
    pairs_s = [FsPair.parse(p) for p in student.default_fsp_pairs]
    fast, _ = fold_batchnorm(prev, taps_of(pairs))
    caches = {}
    for mode in ("off", "bf16"):
        obj = engine.FspObjective(student, pairs_s, prev, pairs, Stage1Config(augment=False, cache_teacher=True),
                                  dataclasses.replace(ctx, teacher_amp=mode), "s", Stage1Result(epochs=1, steps=1))
        obj.build_cache(ctx.data.train)
        caches[mode] = obj.cache
    for a, b in zip(caches["off"], caches["bf16"]):
        assert b.dtype == torch.float32 and 0 < ((a - b).norm() / a.norm()).item() < 0.01
    # and the held-out measurement ignores teacher_amp
    c16 = dataclasses.replace(ctx, teacher_amp="bf16")
    assert fsp_eval_loss(student, pairs_s, prev, pairs, ctx.data.val, c16) == \
        fsp_eval_loss(student, pairs_s, prev, pairs, ctx.data.val, dataclasses.replace(ctx, teacher_amp="off"))
