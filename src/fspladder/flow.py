"""Information flow: taps on any ``nn.Module`` and FSP matrices between them.

The *flow of solution procedure* (FSP) matrix of two feature maps is the Gram
matrix of their channels (Yim et al., CVPR 2017, eq. 1; patent KR 10-2063377,
eq. 1, [0083-0089])::

    G[i, j] = sum_{s,t} F1[s, t, i] * F2[s, t, j] / (h * w)

For token sequences ``(B, N, d)`` (a transformer's taps) the token index takes
the place of the spatial position ``(s, t)``: ``G = F1^T F2 / N``.

Features are read through forward hooks that a :class:`FlowRecorder` owns and
removes on exit, so the model's own code is never edited.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import FspladderError

__all__ = ["Tap", "FsPair", "FlowRecorder", "TapError", "fsp_matrix", "parse_tap", "flow_of", "taps_of"]


class TapError(FspladderError, ValueError):
    """A tap names a module the model does not have."""


@dataclass(frozen=True)
class Tap:
    """A feature map read from module ``module``'s ``input`` or ``output``."""

    module: str
    kind: Literal["input", "output"] = "output"

    def __str__(self) -> str:
        return self.module if self.kind == "output" else f"{self.module}:input"


def parse_tap(spec: str | Tap) -> Tap:
    """Parse ``"layer1"``, ``"layer1:output"`` or ``"layer2.0:input"`` into a :class:`Tap`."""
    if isinstance(spec, Tap):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise TapError(f"a tap must be a module name like 'layer1' or 'layer2.0:input', got {spec!r}")
    name, _, kind = spec.strip().partition(":")
    kind = kind or "output"
    if kind not in ("input", "output"):
        raise TapError(f"tap {spec!r}: the part after ':' must be 'input' or 'output', got {kind!r}")
    return Tap(name, kind)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FsPair:
    """Two taps whose FSP matrix is one term of the FSP loss."""

    first: Tap
    second: Tap

    @classmethod
    def parse(cls, pair: Sequence[str | Tap] | "FsPair") -> "FsPair":
        if isinstance(pair, FsPair):
            return pair
        if isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise TapError(f"an FSP pair must be two taps like ['stem', 'layer1'], got {pair!r}")
        return cls(parse_tap(pair[0]), parse_tap(pair[1]))

    def __str__(self) -> str:
        return f"({self.first}, {self.second})"


def fsp_matrix(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """FSP matrix of two feature maps (patent eq. 1), of images or of token sequences.

    Args:
        f1: ``(B, m, h1, w1)`` features of the first layer, or ``(B, N, m)`` tokens.
        f2: ``(B, n, h2, w2)`` features of the second layer, or ``(B, N, n)`` tokens.

    Returns:
        ``(B, m, n)`` float32 tensor. Images: ``G[b, i, j] = sum_{s,t} f1[b,i,s,t] * f2[b,j,s,t] / (h*w)``.
        Tokens: eq. 1 with the token index ``k`` in place of the position ``(s, t)``,
        ``G[b, i, j] = sum_k f1[b,k,i] * f2[b,k,j] / N``, i.e. ``G = F1^T F2 / N`` per sample.

    When the spatial sizes differ, each map is max-pooled to the smaller height
    and the smaller width [patent 0118] (adaptive pooling, so non-square and
    non-divisible sizes work). Token sequences have no such geometry: both taps
    must have the same token count ``N`` (a ViT's taps are taken after blocks that
    all carry the class token, so they do); different counts, or one image map
    and one token sequence, raise :class:`TapError`. Computed as one batched
    matrix product in float32, with autocast disabled, so mixed precision never
    reaches the Gram sums (memory ``O(B*m*n)``, never ``O(B*m*n*h*w)``).
    """
    if f1.dim() not in (3, 4) or f2.dim() != f1.dim():
        raise TapError(
            f"an FSP pair needs two (B, C, H, W) feature maps or two (B, N, d) token sequences, got shapes "
            f"{tuple(f1.shape)} and {tuple(f2.shape)}; tap two image layers or two transformer blocks"
        )
    if f1.shape[0] != f2.shape[0]:
        raise ValueError(f"fsp_matrix: batch sizes differ: {f1.shape[0]} vs {f2.shape[0]}")
    if f1.dim() == 3:
        if f1.shape[1] != f2.shape[1]:
            raise TapError(
                f"an FSP pair of token sequences (B, N, d) needs equal token counts N, got shapes {tuple(f1.shape)} "
                f"and {tuple(f2.shape)}; tap layers on the same side of the class token, e.g. a ViT's 'embed' "
                "and its blocks"
            )
        with torch.autocast(device_type=f1.device.type, enabled=False):
            a, b = f1.float(), f2.float()  # (B, N, m), (B, N, n)
            return torch.bmm(a.transpose(1, 2), b) / f1.shape[1]  # (B, m, n)
    h = min(f1.shape[2], f2.shape[2])
    w = min(f1.shape[3], f2.shape[3])
    with torch.autocast(device_type=f1.device.type, enabled=False):
        a, b = f1.float(), f2.float()
        if a.shape[2:] != (h, w):
            a = F.adaptive_max_pool2d(a, (h, w))
        if b.shape[2:] != (h, w):
            b = F.adaptive_max_pool2d(b, (h, w))
        a = a.flatten(2)  # (B, m, h*w)
        b = b.flatten(2)  # (B, n, h*w)
        return torch.bmm(a, b.transpose(1, 2)) / (h * w)  # (B, m, n)


class _StopForward(Exception):
    """Raised inside a hook once every tap is captured, to skip the rest of the model."""


class FlowRecorder:
    """Context manager that records tapped feature maps of a model.

    Example::

        with FlowRecorder(model, ["stem", "layer1", "layer2.0:input"]) as rec:
            logits = model(x)
        feats = rec.features  # {Tap: tensor}

    With ``stop_early=True`` the forward pass is cut short as soon as every tap
    has been recorded (use :meth:`run`): stage 1 needs nothing after the last
    tap, so the head's compute is skipped. Hooks are removed on exit, also when
    the body raises.
    """

    def __init__(self, model: nn.Module, taps: Iterable[str | Tap], stop_early: bool = False) -> None:
        self.model = model
        self.taps: list[Tap] = list(dict.fromkeys(parse_tap(t) for t in taps))
        if not self.taps:
            raise TapError("FlowRecorder needs at least one tap")
        check_taps(model, self.taps)
        self.stop_early = stop_early
        self.features: dict[Tap, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _store(self, tap: Tap, value: object) -> None:
        if isinstance(value, (tuple, list)):
            value = value[0]
        if not isinstance(value, torch.Tensor):
            raise TapError(f"tap {tap} did not produce a tensor (got {type(value).__name__})")
        self.features[tap] = value
        if self.stop_early and len(self.features) == len(self.taps):
            raise _StopForward

    def __enter__(self) -> "FlowRecorder":
        for tap in self.taps:
            module = self.model.get_submodule(tap.module)
            if tap.kind == "output":
                h = module.register_forward_hook(lambda m, i, o, tap=tap: self._store(tap, o))
            else:
                h = module.register_forward_pre_hook(lambda m, i, tap=tap: self._store(tap, i))
            self._handles.append(h)
        return self

    def __exit__(self, *exc: object) -> bool:
        self.remove()
        return False

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def run(self, *args: object, **kwargs: object) -> dict[Tap, torch.Tensor]:
        """Run the model and return the tapped features (cut short if ``stop_early``)."""
        self.features = {}
        try:
            self.model(*args, **kwargs)
        except _StopForward:
            pass
        missing = [str(t) for t in self.taps if t not in self.features]
        if missing:
            raise TapError(
                f"taps {missing} of {type(self.model).__name__} were never reached in forward(); "
                "pick modules that the forward pass actually calls"
            )
        return dict(self.features)


def check_taps(model: nn.Module, taps: Iterable[str | Tap]) -> None:
    """Raise one :class:`TapError` naming every tap whose module ``model`` lacks."""
    names = [n for n, _ in model.named_modules() if n]
    known = set(names)
    bad = [parse_tap(t) for t in taps if parse_tap(t).module not in known]
    if not bad:
        return
    lines = []
    for t in bad:
        close = difflib.get_close_matches(t.module, names, n=3, cutoff=0.5)
        lines.append(f"  {t.module!r}" + (f" (closest: {', '.join(close)})" if close else ""))
    raise TapError(
        f"{type(model).__name__} has no module named:\n" + "\n".join(lines) +
        "\nRun `fspladder layers MODEL` to list its module names."
    )


def taps_of(pairs: Sequence[FsPair]) -> list[Tap]:
    """The distinct taps that ``pairs`` read, in order."""
    return list(dict.fromkeys(t for p in pairs for t in (p.first, p.second)))


def flow_of(features: dict[Tap, torch.Tensor], pairs: Sequence[FsPair]) -> list[torch.Tensor]:
    """FSP matrices, one ``(B, m, n)`` tensor per pair, from recorded features."""
    return [fsp_matrix(features[p.first], features[p.second]) for p in pairs]
