"""Model registry with a decorator and a factory (timm-style).

A registered factory returns a plain ``torch.nn.Module``. Models that want to
serve as rungs of a ladder without extra configuration also carry a
``feature_info`` list (see :class:`FeatureInfo`) and a ``default_fsp_pairs``
attribute naming which tapped modules form the FSP pairs.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

__all__ = ["FeatureInfo", "register_model", "create_model", "list_models", "is_model"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


@dataclass(frozen=True)
class FeatureInfo:
    """Metadata of one tap-able feature map.

    ``module`` is the dotted module name (``model.get_submodule(module)``),
    ``num_chs`` the channel count of its output and ``reduction`` the spatial
    stride relative to the input image.
    """

    module: str
    num_chs: int
    reduction: int


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its ``__name__``; duplicate names are a programming error."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def is_model(name: str) -> bool:
    return name in _REGISTRY


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build a registered model by name.

    Raises ``KeyError`` with the closest registered names when ``name`` is unknown.
    """
    try:
        fn = _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"unknown model {name!r}.{hint} Registered models: {', '.join(list_models())}."
        ) from None
    try:
        return fn(**kwargs)
    except TypeError as e:
        raise TypeError(f"cannot build model {name!r} with arguments {kwargs}: {e}") from e
