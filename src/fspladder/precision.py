"""Mixed-precision choices: the autocast the trained network and the frozen one run under.

The frozen previous network only ever runs forward, without gradients, to give
stage 1 its target FSP matrices. Its forward pass can therefore run in bfloat16
wherever the hardware computes bfloat16 natively (CUDA GPUs from Ampere on; x86
CPUs with AVX512-BF16 or AMX), even when the student trains in float32: the
FSP matrices themselves are always made in float32 (:func:`fspladder.flow.fsp_matrix`),
so only the features' rounding changes (0.2-0.4 % relative Frobenius error in a
ResNet-14's targets, benchmarks/throughput.py; tests/test_precision.py checks < 1 %), while the frozen forward pass, a
fifth of a live stage-1 step on a CPU, gets 1.5-1.8x faster (docs/performance.md, "Engine overhead").
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["AmpMode", "native_bf16", "resolve_amp", "resolve_teacher_amp", "autocast_for"]

AmpMode = Literal["off", "bf16", "fp16"]


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (not emulated, which is slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        # torch.cpu's probes are private; a torch without them counts as no native bf16 (float32 is safe).
        probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        try:
            return any(p() for p in probes if p is not None)
        except RuntimeError:
            return False
    return False


def resolve_amp(setting: str, device: torch.device) -> AmpMode:
    """The trained network's autocast for the config value ``amp``: auto = bf16 on CUDA, off elsewhere."""
    if setting != "auto":
        return setting  # type: ignore[return-value]
    return "bf16" if device.type == "cuda" else "off"


def resolve_teacher_amp(setting: str, amp: AmpMode, device: torch.device) -> AmpMode:
    """The frozen network's autocast for the config value ``teacher_amp``.

    auto = the trained network's mode when that is not off, else bf16 where
    the device has native bfloat16, else off (float32).
    """
    if setting != "auto":
        return setting  # type: ignore[return-value]
    if amp != "off":
        return amp
    return "bf16" if native_bf16(device) else "off"


def autocast_for(device: torch.device, mode: str) -> torch.autocast:
    """An autocast context for ``mode`` (off | bf16 | fp16) on ``device``'s type."""
    dtype = torch.float16 if mode == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=mode != "off")
