"""The growth interface: a family declares how a smaller member grows into a larger one with the same function.

A *family* is a set of model classes whose members can be grown into each
other (deeper, wider, or both) by copying weights: Net2Net (Chen, Goodfellow
and Shlens, ICLR 2016) for convolutional stacks, bert2BERT / LiGO /
HyperCloning for transformers. One :class:`GrowthFamily` subclass per family,
registered once with :func:`register_growth`; :mod:`fspladder.growth`
dispatches ``growth_problem``, ``grow`` and ``grown_copies`` through it, so
``check``, ``run``, ``bench`` and ``plan`` accept every registered family.

Example (a user's own model)::

    @register_growth
    class MyNetGrowth(GrowthFamily):
        name = "mynet"
        models = (MyNet,)
        def problem(self, prev, cur): ...       # None when cur can be grown from prev
        def grow(self, prev, cur, *, identity, noise, seed): ...
        def copies(self, prev, cur): ...        # the submodules of cur copied from prev
"""

from __future__ import annotations

import torch.nn as nn

from ..errors import FspladderError

__all__ = ["GrowthFamily", "GrowthError", "register_growth", "family_of", "families"]


class GrowthError(FspladderError, ValueError):
    """A network cannot be grown into another (different families, narrower, fewer layers, ...)."""


class GrowthFamily:
    """How the members of one family of models grow into each other; subclass once per family.

    ``grow`` runs under ``torch.no_grad()`` (the dispatcher's) after ``problem`` returned None, with
    ``prev`` and ``cur`` both instances of ``models``.
    """

    name: str = ""  # e.g. "cifar-resnet", "vgg", "imagenet-resnet", "vit"
    models: tuple[type[nn.Module], ...] = ()  # the model classes of the family

    def problem(self, prev: nn.Module, cur: nn.Module) -> str | None:
        """Why ``cur`` cannot be grown from ``prev`` (None: it can); both are instances of ``models``."""
        raise NotImplementedError

    def grow(self, prev: nn.Module, cur: nn.Module, *, identity: bool, noise: float, seed: int) -> dict[str, object]:
        """Copy ``prev`` into ``cur`` in place; with ``identity`` ``cur`` computes ``prev``'s function (new
        layers are identities), without it new layers keep ``cur``'s own initialisation (``grow-fsp`` aligns
        them in stage 1). ``noise`` spreads the split between replicated units (function kept); ``seed``
        makes it reproducible. Returns a record of what was done (JSON-able values)."""
        raise NotImplementedError

    def copies(self, prev: nn.Module, cur: nn.Module) -> list[nn.Module]:
        """The submodules of ``cur`` that :meth:`grow` copied from ``prev`` (frozen by ``grow-fsp``'s stage 1)."""
        raise NotImplementedError

    def fresh_blocks_problem(self, prev: nn.Module, cur: nn.Module) -> str | None:
        """Why ``grow-fsp`` (new blocks left fresh, aligned by stage 1 with the copies frozen) cannot apply
        (e.g. the widths differ); None when it can."""
        return None

    def __repr__(self) -> str:
        return f"<growth family {self.name!r}: {', '.join(m.__name__ for m in self.models)}>"


_FAMILIES: list[GrowthFamily] = []


def _key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_growth(family_cls: type[GrowthFamily]) -> type[GrowthFamily]:
    """Class decorator: instantiate ``family_cls`` and register it.

    Refuses a family without a name or model classes, a name already taken, and a model class another
    family already claims. Registering the same family class again (a re-imported module) replaces it.
    """
    if not (isinstance(family_cls, type) and issubclass(family_cls, GrowthFamily)):
        raise TypeError(f"register_growth decorates a GrowthFamily subclass, got {family_cls!r}")
    fam = family_cls()
    if not fam.name or not isinstance(fam.name, str):
        raise ValueError(f"growth family {family_cls.__name__} needs a name (class attribute name = '...')")
    models = tuple(fam.models)
    if not models or not all(isinstance(m, type) and issubclass(m, nn.Module) for m in models):
        raise ValueError(f"growth family {fam.name!r}: models must be a non-empty tuple of nn.Module classes, "
                         f"got {fam.models!r}")
    for i, other in enumerate(_FAMILIES):
        same = other.name == fam.name and _key(type(other)) == _key(family_cls)
        if same:
            continue
        if other.name == fam.name:
            raise ValueError(f"growth family {fam.name!r} is already registered (by {_key(type(other))})")
        claimed = [m.__name__ for m in models if any(_key(m) == _key(o) for o in other.models)]
        if claimed:
            raise ValueError(f"growth family {fam.name!r}: model class {', '.join(claimed)} already belongs to "
                             f"family {other.name!r}; a model class has one growth family")
    _FAMILIES[:] = [f for f in _FAMILIES if f.name != fam.name] + [fam]
    return family_cls


def family_of(model: nn.Module) -> GrowthFamily | None:
    """The growth family of ``model`` (by ``isinstance``, the family of its most specific class first)."""
    mro = type(model).__mro__
    best: tuple[int, GrowthFamily] | None = None
    for fam in _FAMILIES:
        for cls in fam.models:
            if isinstance(model, cls):
                rank = mro.index(cls) if cls in mro else len(mro)
                if best is None or rank < best[0]:
                    best = (rank, fam)
    return None if best is None else best[1]


def families() -> list[GrowthFamily]:
    """The registered growth families, in registration order."""
    return list(_FAMILIES)
