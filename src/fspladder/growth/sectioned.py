"""What the convolutional growth families share: a stem, sections of blocks, a width multiplier and a linear head.

The CIFAR ResNets, the plain VGG-style CNNs and the ImageNet-layout ResNets
grow the same way at this level (Net2Net, Chen et al. ICLR 2016): the student
may be as wide or wider and have as many blocks or more in every section; it
must read the same image channels and predict the same classes (the head is
copied); the copies are the stem, the head and the first blocks of each
section. Each family adds its own checks (:meth:`SectionedGrowth.kind_problem`)
and its own weight copying (``grow``).
"""

from __future__ import annotations

import torch.nn as nn

from .registry import GrowthFamily

__all__ = ["SectionedGrowth", "FIX"]

FIX = "use init: random (a recipe without growth, e.g. patent or w2s)"


class SectionedGrowth(GrowthFamily):
    """A family of models with ``stem`` (its first module a ``Conv2d``), the sections named by ``sections``
    (each an ``nn.Sequential`` of blocks), an integer ``width`` multiplier and a linear ``fc`` head."""

    sections: tuple[str, ...] = ()
    unit: str = "blocks"  # what a section holds, for the messages

    def kind_problem(self, prev: nn.Module, cur: nn.Module) -> str | None:
        """A family's own reason ``cur`` cannot be grown from ``prev`` (block kinds, stems); None by default."""
        return None

    def problem(self, prev: nn.Module, cur: nn.Module) -> str | None:
        own = self.kind_problem(prev, cur)
        if own is not None:
            return f"{own}; {FIX}"
        if cur.width < prev.width:
            return f"the student is narrower than the network before it (width {cur.width} < {prev.width}); {FIX}"
        for name in self.sections:
            n_prev, n_cur = len(getattr(prev, name)), len(getattr(cur, name))
            if n_cur < n_prev:
                return (f"the student has fewer {self.unit} in {name} than the network before it ({n_cur} < "
                        f"{n_prev}); {FIX}")
        c_prev, c_cur = prev.stem[0].in_channels, cur.stem[0].in_channels
        if c_cur != c_prev:
            return f"the networks read images of {c_prev} and {c_cur} channels; {FIX}"
        if cur.fc.out_features != prev.fc.out_features:
            return (f"the networks predict {prev.fc.out_features} and {cur.fc.out_features} classes: growth copies "
                    f"the head; {FIX}")
        return None

    def fresh_blocks_problem(self, prev: nn.Module, cur: nn.Module) -> str | None:
        if prev.width != cur.width:
            return f"that needs equal widths, got width {prev.width} -> {cur.width}"
        return None

    def copies(self, prev: nn.Module, cur: nn.Module) -> list[nn.Module]:
        """Stem, head, and the first ``n_prev`` blocks of each section; every other block is new."""
        parts: list[nn.Module] = [cur.stem, cur.fc]
        for name in self.sections:
            parts += list(getattr(cur, name))[: len(getattr(prev, name))]
        return parts
