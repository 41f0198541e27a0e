"""Model registry with a decorator and a factory (timm-style).

A registered factory returns a plain ``torch.nn.Module``. Models that want to
serve as rungs of a ladder without extra configuration also carry a
``feature_info`` list (see :class:`FeatureInfo`) and a ``default_fsp_pairs``
attribute naming which tapped modules form the FSP pairs.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch.nn as nn

from ..errors import FspladderError

__all__ = ["ModelBuildError", "UnknownModelError", "FeatureInfo", "register_model", "create_model", "create_for_data",
           "list_models", "is_model", "is_factory_spec", "accepted_kwargs", "img_size_of"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


class ModelBuildError(FspladderError, TypeError):
    """A model cannot be built with the given arguments, or its factory returns no ``nn.Module``."""


class UnknownModelError(FspladderError, KeyError):
    """A model name is neither registered nor an importable ``module:factory``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


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
    """A registered name, or a ``module:factory`` spec (checked when it is built)."""
    return name in _REGISTRY or is_factory_spec(name)


def is_factory_spec(name: str) -> bool:
    """``package.module:factory`` names a user's model factory instead of a registered model."""
    return ":" in name


def resolve_factory(spec: str) -> Callable[..., nn.Module]:
    """Import ``package.module:factory`` (the working directory is importable too)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UnknownModelError(f"model spec {spec!r} must look like 'package.module:factory'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownModelError(f"model spec {spec!r}: cannot import module {module_name!r} ({e}); check the name and "
                       "that it is installed or in the working directory") from e
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise UnknownModelError(f"model spec {spec!r}: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise UnknownModelError(f"model spec {spec!r}: {attr!r} is not callable")
    return fn  # type: ignore[return-value]


def accepted_kwargs(name: str, kwargs: dict[str, object]) -> dict[str, object]:
    """Drop the data's arguments (:data:`DATA_KWARGS`) that a factory's signature does not take."""
    fn = resolve_factory(name) if is_factory_spec(name) else _REGISTRY.get(name)
    if fn is None:
        return kwargs
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params or k not in DATA_KWARGS}


def _names(name: str, param: str) -> bool:
    """Whether the factory's signature names ``param`` explicitly."""
    fn = resolve_factory(name) if is_factory_spec(name) else _REGISTRY.get(name)
    try:
        return fn is not None and param in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


# What fspladder passes to size a model for the data; ``img_size`` (an int, or ``[H, W]`` for non-square
# images) only to factories that name it (e.g. the ViTs, whose position embeddings depend on it).
DATA_KWARGS = ("in_chans", "num_classes", "img_size")


def img_size_of(image_size: Sequence[int]) -> int | list[int]:
    """The ``img_size`` argument for images of ``(H, W)``: an int for squares (as recorded in checkpoints)."""
    h, w = (int(s) for s in image_size)
    return h if h == w else [h, w]


def create_for_data(name: str, in_chans: int, num_classes: int, kwargs: dict[str, object] | None = None,
                    seed: int | None = None,
                    image_size: Sequence[int] | None = None) -> tuple[nn.Module, dict[str, object]]:
    """Build ``name`` sized for the data; returns the model and the keyword arguments that built it.

    ``in_chans``, ``num_classes`` and (given ``image_size``, ``(H, W)``) ``img_size`` go to a factory
    whose signature names them, and are left out where it does not (``img_size`` goes only where named).
    A factory that only takes ``**kwargs`` (torchvision-style ``f(*, weights=None,
    **kwargs)``) gets them too, and whichever one it then refuses is dropped and the call retried:
    torchvision's constructors take ``num_classes`` but not ``in_chans``. The user's own ``kwargs`` win.
    ``seed`` seeds the initialisation (again before a retry, so the weights do not depend on it).
    """
    import torch

    user = dict(kwargs or {})
    data: dict[str, object] = {"in_chans": in_chans, "num_classes": num_classes}
    if image_size is not None and _names(name, "img_size"):  # never guessed for a factory taking **kwargs
        data["img_size"] = img_size_of(image_size)
    full = accepted_kwargs(name, {**data, **user})
    tried = dict(full)
    while True:
        if seed is not None:
            torch.manual_seed(seed)
        try:
            return create_model(name, **tried), tried
        except TypeError as e:
            why = str(e.__cause__ or e)  # the factory's own message, not ours that lists every argument
            # Only a refused argument (a TypeError: unexpected keyword) is dropped; a ValueError that names it
            # (an img_size the patch does not divide) is the factory's verdict on the data, never retried away.
            refused = isinstance(e.__cause__, TypeError) or e.__cause__ is None
            drop = next((k for k in DATA_KWARGS if refused and k in tried and k not in user and k in why), None)
            if drop is None:
                raise
            tried = {k: v for k, v in tried.items() if k != drop}


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build a registered model by name, or a user's model from ``package.module:factory``.

    Raises :class:`UnknownModelError` (a ``KeyError``) with the closest registered names when ``name`` is
    unknown, and :class:`ModelBuildError` when the arguments do not build it (the factory's own error
    is chained, and named in the message).
    """
    if is_factory_spec(name):
        fn = resolve_factory(name)
        try:
            model = fn(**kwargs)
        except Exception as e:  # the user's own code: whatever it raises, say which model and arguments
            raise ModelBuildError(f"cannot build model {name!r} with arguments {kwargs}: "
                                  f"{type(e).__name__}: {e}") from e
        if not isinstance(model, nn.Module):
            raise ModelBuildError(f"model spec {name!r} returned {type(model).__name__}, not a torch.nn.Module")
        return model
    try:
        fn = _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Registered models: {', '.join(list_models())}."
        ) from None
    try:
        return fn(**kwargs)
    except (TypeError, ValueError) as e:
        raise ModelBuildError(f"cannot build model {name!r} with arguments {kwargs}: {e}") from e
