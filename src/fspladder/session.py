"""What every command sets up from a config: the device, the data, the engine context, the machine's facts."""

from __future__ import annotations

import platform
from typing import Any

import torch

from .config import ConfigError, RunConfig
from .data import DataSplits, load_splits
from .distributed import DistInfo
from .engine import TrainContext
from .precision import native_bf16, resolve_amp, resolve_teacher_amp
from .teacher_source import with_teacher_preprocessing

__all__ = ["resolve_device", "load_data", "context_for", "machine_info", "memory_format"]


def resolve_device(name: str, dist: DistInfo | None = None) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank if dist and dist.enabled else 0)
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):  # torch's own words ("Device string must not be empty") name no fix
        raise ConfigError([f"device must be auto, cpu, cuda or cuda:N, got {name!r}"]) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError([f"device {name!r} was asked for but CUDA is not available here; use device: cpu or auto"])
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(["device 'mps' was asked for but this torch has no MPS backend here; "
                           "use device: cpu or auto"])
    return dev


def load_data(cfg: RunConfig, device: torch.device | None = None, path: list | None = None) -> DataSplits:
    """The run's train / validation / test splits, on the input path ``data.stream`` chooses for ``device``
    (in-memory splits are on the CPU; ``.to(device)`` moves them). ``path`` receives the choice. With
    ``teacher.preprocessing`` they are normalised as the teacher was trained (checked against the data)."""
    return with_teacher_preprocessing(load_splits(cfg.data, cfg.seed, device, path), cfg)


def context_for(cfg: RunConfig, device: torch.device, data: DataSplits, log: Any = None,
                dist: DistInfo | None = None) -> TrainContext:
    """The engine's context for a run config (one place, for run, bench, plan and train)."""
    main = dist is None or dist.is_main
    amp = resolve_amp(cfg.amp, device)
    return TrainContext(device=device, data=data, channels_last=cfg.channels_last,
                        eval_batch_size=cfg.eval_batch_size, progress=cfg.progress and main,
                        crop_pad=cfg.data.crop_pad, flip=cfg.data.flip, log=log or (lambda rec: None),
                        dist=dist or DistInfo(), amp=amp,
                        teacher_amp=resolve_teacher_amp(cfg.teacher_amp, amp, device), compile=cfg.compile)


def memory_format(cfg: RunConfig) -> torch.memory_format:
    return torch.channels_last if cfg.channels_last else torch.preserve_format


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "device": str(device), "cpu_threads": torch.get_num_threads(), "native_bf16": native_bf16(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
