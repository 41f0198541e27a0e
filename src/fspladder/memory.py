"""How much memory is free where tensors will live (for the teacher cache and the data path decisions)."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["free_bytes"]


def free_bytes(device: torch.device) -> int | None:
    """Free memory where ``device``'s tensors live, in bytes; None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
        except (OSError, ValueError, IndexError):
            return None
    return None
