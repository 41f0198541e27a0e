"""Batched augmentation and normalisation on whole tensors (no per-image Python loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_crop", "random_flip", "normalize"]


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad by ``pad`` (zeros) and crop back to the input size at a random offset per image.

    ``x``: ``(B, C, H, W)``; returns the same shape.
    """
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device="cpu").to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device="cpu").to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, W)
    bidx = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
    # Advanced indices around a slice put the broadcast dims first: (B, H, W, C).
    return xp[bidx, :, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability 1/2. ``x``: ``(B, C, H, W)``."""
    flip = torch.rand(x.shape[0], generator=generator, device="cpu").lt(0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` in [0, 255] to float32, standardised per channel."""
    m = torch.tensor(mean, device=x.device, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=torch.float32).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s
