"""Reading the logits out of whatever a model's ``forward`` returns.

Models from other libraries do not all return a bare tensor: some return
``(logits, features)`` or ``(logits, aux_logits)``, a mapping with ``"logits"``,
or an output object with a ``.logits`` attribute (Hugging Face). fspladder
takes the logits from each of these; anything else is a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from ..errors import FspladderError

__all__ = ["logits_of", "ModelOutputError", "probe_logits", "module_device", "MODEL_FAILURES", "probe_classes",
           "failure_line"]

# What a model's own code raises when it cannot run on an input (a wrong shape, a missing layer, an assert in its
# forward, an empty module's next(parameters())): the probe reports these as one line, never a traceback.
MODEL_FAILURES = (RuntimeError, TypeError, ValueError, AttributeError, IndexError, KeyError, AssertionError,
                  StopIteration)


class ModelOutputError(FspladderError, TypeError):
    """A model's forward returned something fspladder cannot read logits from."""


def logits_of(out: Any) -> torch.Tensor:
    """The ``(B, K)`` logits in ``out``: the tensor itself, the first item of a tuple or list, ``out["logits"]``
    of a mapping, or ``out.logits``."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    if isinstance(out, Mapping) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]
    if isinstance(getattr(out, "logits", None), torch.Tensor):
        return out.logits
    raise ModelOutputError(
        f"the model's forward returned {type(out).__name__}, not logits: return a (batch, classes) tensor, a tuple "
        "whose first item is that tensor, a mapping with 'logits', or an object with .logits (or wrap the model)")


def module_device(model: nn.Module) -> torch.device:
    """Where ``model`` lives: its first parameter's device, else its first buffer's, else the CPU (a module with
    neither, e.g. a parameter-free wrapper)."""
    t = next(model.parameters(), None)
    if t is None:
        t = next(model.buffers(), None)
    return t.device if t is not None else torch.device("cpu")


def failure_line(e: BaseException) -> str:
    """A model's failure in one line: the message's first line, led by the exception's type where that says more."""
    line = (str(e).strip().splitlines() or [""])[0].strip()
    if isinstance(e, ModelOutputError) or (isinstance(e, RuntimeError) and line):
        return line
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


@torch.no_grad()
def probe_logits(model: nn.Module, input_shape: Sequence[int],
                 batch: int = 2) -> tuple[torch.Tensor, None] | tuple[None, str]:
    """Run ``model`` once on a zeros batch of ``batch`` images of ``input_shape`` (C, H, W): its logits
    (:func:`logits_of`; shape unchecked, the caller's to judge) and None, or None and one line saying why it
    cannot run (the model's own failure, or an output without logits). Eval mode, so that no statistics move; the
    model's mode is restored. The one probe ``check``, the teacher's checks and growth share."""
    was = model.training
    model.eval()
    try:
        x = torch.zeros(batch, *(int(v) for v in input_shape), device=module_device(model))  # (batch, C, H, W)
        return logits_of(model(x)), None
    except MODEL_FAILURES as e:  # ModelOutputError is a TypeError
        return None, failure_line(e)
    finally:
        model.train(was)


def probe_classes(model: nn.Module, input_shape: Sequence[int]) -> tuple[int, None] | tuple[None, str]:
    """How many classes ``model`` predicts for images of ``input_shape`` (C, H, W) (:func:`probe_logits`), or None
    and why it cannot run on them or returns no (batch, classes) logits."""
    out, why = probe_logits(model, input_shape)
    if out is None:
        return None, why
    if out.dim() != 2:
        return None, f"it returns logits of shape {tuple(out.shape)}, not (batch, classes)"
    return int(out.shape[1]), None
