"""Reading the logits out of whatever a model's ``forward`` returns.

Models from other libraries do not all return a bare tensor: some return
``(logits, features)`` or ``(logits, aux_logits)``, a mapping with ``"logits"``,
or an output object with a ``.logits`` attribute (Hugging Face). fspladder
takes the logits from each of these; anything else is a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..errors import FspladderError

__all__ = ["logits_of", "ModelOutputError"]


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
