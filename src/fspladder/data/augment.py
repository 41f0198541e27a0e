"""Batched augmentation and normalisation on whole tensors (no per-image Python loop).

Random parameters are drawn for a whole (global) batch first and applied
second, so that data-parallel ranks, each holding a slice of the batch, apply
exactly what one process would have applied to the same images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_crop", "random_flip", "normalize", "draw_augment", "apply_augment", "crop_at", "flip_where"]


def crop_at(x: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Zero-pad by ``pad`` and crop back to ``(H, W)`` at per-image offsets ``dy``, ``dx`` in ``[0, 2*pad]``."""
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    dy, dx = dy.to(x.device), dx.to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, W)
    bidx = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
    # Advanced indices around a slice put the broadcast dims first: (B, H, W, C).
    return xp[bidx, :, rows, cols].permute(0, 3, 1, 2).contiguous()


def flip_where(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Flip left-right the images where ``mask`` (``(B,)`` bool) is set."""
    return torch.where(mask.to(x.device)[:, None, None, None], x.flip(3), x)


def draw_augment(n: int, pad: int, flip: bool, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    """Random crop offsets and flip decisions for ``n`` images (on the CPU generator)."""
    out: dict[str, torch.Tensor] = {}
    if pad > 0:
        out["dy"] = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        out["dx"] = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    if flip:
        out["flip"] = torch.rand(n, generator=generator).lt(0.5)
    return out


def apply_augment(x: torch.Tensor, params: dict[str, torch.Tensor], pad: int) -> torch.Tensor:
    if "dy" in params:
        x = crop_at(x, pad, params["dy"], params["dx"])
    if "flip" in params:
        x = flip_where(x, params["flip"])
    return x


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad by ``pad`` (zeros) and crop back to the input size at a random offset per image.

    ``x``: ``(B, C, H, W)``; returns the same shape.
    """
    if pad <= 0:
        return x
    p = draw_augment(x.shape[0], pad, False, generator)
    return crop_at(x, pad, p["dy"], p["dx"])


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability 1/2. ``x``: ``(B, C, H, W)``."""
    return flip_where(x, draw_augment(x.shape[0], 0, True, generator)["flip"])


def normalize(x: torch.Tensor, mean: tuple[float, ...] | torch.Tensor,
              std: tuple[float, ...] | torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` in [0, 255] to float32, standardised per channel.

    ``mean``/``std`` may be tensors already on ``x``'s device (then nothing is copied).
    """
    m = torch.as_tensor(mean, device=x.device, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(std, device=x.device, dtype=torch.float32).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s
