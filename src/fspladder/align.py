"""Channel alignment for ladders that grow in width.

FSP matrices of two networks can only be compared element-wise when their
tapped channel counts match (patent eq. 2). When a student is wider than the
network before it, each mismatched student tap gets a learned 1x1 convolution
that maps its features to the previous network's channel count before the FSP
matrix is taken (for token sequences ``(B, N, d)``, the same weights map each
token's ``d`` features). The projections train with the student in stage 1 and are
discarded after it, so stage 2 and the final network are untouched. Where the
counts match, the tap passes through unchanged and the loss is exactly the
patent's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .flow import FsPair, Tap, fsp_matrix

__all__ = ["ChannelAligner"]


class ChannelAligner(nn.Module):
    """1x1 projections per FSP pair and side, from student channels to the previous network's.

    Args:
        student_shapes: ``(m_i, n_i)`` of each student FSP matrix.
        prev_shapes: ``(m_i, n_i)`` of each previous-network FSP matrix.
    """

    def __init__(self, student_shapes: Sequence[tuple[int, int]], prev_shapes: Sequence[tuple[int, int]]) -> None:
        super().__init__()
        if len(student_shapes) != len(prev_shapes):
            raise ValueError(f"{len(student_shapes)} student FSP pairs vs {len(prev_shapes)} previous; "
                             "projections cannot fix a different number of pairs")

        def proj(c_in: int, c_out: int) -> nn.Module:
            return nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)

        self.first = nn.ModuleList(proj(s[0], p[0]) for s, p in zip(student_shapes, prev_shapes))
        self.second = nn.ModuleList(proj(s[1], p[1]) for s, p in zip(student_shapes, prev_shapes))

    @property
    def is_identity(self) -> bool:
        return all(isinstance(m, nn.Identity) for m in [*self.first, *self.second])

    def flows(self, features: dict[Tap, torch.Tensor], pairs: Sequence[FsPair]) -> list[torch.Tensor]:
        """The student's FSP matrices in the previous network's channel space: ``(B, m_i, n_i)`` each."""
        return [fsp_matrix(_project(self.first[i], features[p.first]), _project(self.second[i], features[p.second]))
                for i, p in enumerate(pairs)]


def _project(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 1x1 projection to ``(B, C, H, W)`` maps, or the same weights to the last axis of ``(B, N, d)``
    token sequences (a linear map of each token: the 1x1 convolution's equivalent)."""
    if x.dim() == 3 and isinstance(m, nn.Conv2d):
        return F.linear(x, m.weight.flatten(1))  # (B, N, d_prev)
    return m(x)
