"""Function-preserving growth of a trained network into a deeper and/or wider one, for every registered family.

Each family (:class:`GrowthFamily`, registered with :func:`register_growth`)
knows how its smaller members grow into its larger ones with the same
function; the functions here dispatch to the family of the two networks and
refuse, with one message naming the recipes that still apply, two networks of
different families or a model without one. Built-in families: the CIFAR
ResNets (:mod:`.cifar_resnet`), the plain VGG-style CNNs (:mod:`.vgg`), the
ImageNet-layout ResNets (:mod:`.imagenet_resnet`), the Vision Transformers (:mod:`.vit`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..recipes import GROW_NOISE, PRESETS  # GROW_NOISE: the recipes' default split noise, re-exported
from .registry import GrowthError, GrowthFamily, families, family_of, register_growth

__all__ = ["growth_problem", "grow", "grown_copies", "fresh_blocks_problem", "GROW_NOISE", "register_growth",
           "GrowthFamily", "GrowthError", "family_of", "families"]


def _without_growth() -> str:
    """The recipes that apply to any two networks: those that start the student fresh (init random)."""
    return ", ".join(name for name, r in PRESETS.items() if r.init == "random")


def _family_label(model: nn.Module, fam: GrowthFamily | None) -> str:
    return f"{type(model).__name__} (family {fam.name})" if fam else f"{type(model).__name__} (no growth family)"


def growth_problem(prev: nn.Module, cur: nn.Module) -> str | None:
    """Why ``cur`` cannot be grown from ``prev`` (None when it can), with the recipes that would work."""
    fp, fc = family_of(prev), family_of(cur)
    if fp is not None and fp is fc:
        return fp.problem(prev, cur)
    fix = f"use a recipe with init random ({_without_growth()})"
    if fp is None or fc is None:
        missing = type(prev if fp is None else cur)
        known = ", ".join(f.name for f in families()) or "none"
        return (f"growth needs two networks of one growth family, got {_family_label(prev, fp)} -> "
                f"{_family_label(cur, fc)}: {missing.__name__} has none (registered families: {known}); {fix}, "
                f"or register growth for {missing.__name__} with @fspladder.register_growth on a "
                "GrowthFamily subclass (docs/models.md, 'Growth for your own model')")
    return (f"growth needs two networks of one growth family, got {_family_label(prev, fp)} -> "
            f"{_family_label(cur, fc)}: a network of another family has no layers to copy into; {fix}")


def fresh_blocks_problem(prev: nn.Module, cur: nn.Module) -> str | None:
    """Why ``grow-fsp`` (new blocks fresh, aligned in stage 1 with the copies frozen) cannot apply; None when it
    can. Only meaningful where :func:`growth_problem` is None."""
    fam = family_of(cur)
    return None if fam is None else fam.fresh_blocks_problem(prev, cur)


def grow(prev: nn.Module, cur: nn.Module, *, identity: bool = True, noise: float = 0.0,
         seed: int = 0) -> dict[str, object]:
    """Copy ``prev`` into ``cur``, widening and deepening it; with ``identity``, ``cur`` computes ``prev``'s function.

    Without ``identity`` the new layers keep ``cur``'s own initialisation (the ``grow-fsp`` recipe then
    aligns them in stage 1). ``noise`` spreads the split proportions between replicated units; ``seed``
    makes that spread reproducible. Returns what was done, for the records; :class:`GrowthError` when
    :func:`growth_problem` names a problem.
    """
    problem = growth_problem(prev, cur)
    if problem is not None:
        raise GrowthError(problem)
    fam = family_of(cur)
    assert fam is not None  # growth_problem returned None: both are of this family
    with torch.no_grad():
        record = fam.grow(prev, cur, identity=identity, noise=noise, seed=seed)
    return {"family": fam.name, **record}


def grown_copies(prev: nn.Module, cur: nn.Module) -> list[nn.Module]:
    """The submodules of ``cur`` that :func:`grow` copied from ``prev`` (every other part is new)."""
    problem = growth_problem(prev, cur)
    if problem is not None:
        raise GrowthError(problem)
    fam = family_of(cur)
    assert fam is not None
    return fam.copies(prev, cur)


# families
from . import cifar_resnet as _cifar_resnet  # noqa: E402,F401  (registers the CIFAR ResNets' growth)
from . import imagenet_resnet as _imagenet_resnet  # noqa: E402,F401  (the ImageNet-layout ResNets)
from . import vgg as _vgg  # noqa: E402,F401  (the plain VGG-style CNNs)
from . import vit as _vit  # noqa: E402,F401  (the Vision Transformers)
