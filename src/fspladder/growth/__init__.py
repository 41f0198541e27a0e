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

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..models import probe_classes
from ..recipes import GROW_NOISE, PRESETS  # GROW_NOISE: the recipes' default split noise, re-exported
from .registry import GrowthError, GrowthFamily, families, family_of, register_growth

__all__ = ["growth_problem", "grow", "grown_copies", "fresh_blocks_problem", "GROW_NOISE", "register_growth",
           "GrowthFamily", "GrowthError", "family_of", "families"]


def _without_growth() -> str:
    """The recipes that apply to any two networks: those that start the student fresh (init random)."""
    return ", ".join(name for name, r in PRESETS.items() if not r.grows)


def _family_label(model: nn.Module, fam: GrowthFamily | None) -> str:
    return f"{type(model).__name__} (family {fam.name})" if fam else f"{type(model).__name__} (no growth family)"


def _in_chans(model: nn.Module) -> int | None:
    """The channels of the images ``model`` reads: its first convolution's input channels (None without one)."""
    first = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    return None if first is None else first.in_channels


def _common_problem(prev: nn.Module, cur: nn.Module, input_shape: Sequence[int] | None) -> str | None:
    """What every family needs, checked before any family's code: the same image channels, the same classes and
    image size (with ``input_shape``, by running both networks on it)."""
    fix = f"use a recipe with init random ({_without_growth()})"
    cp, cc = _in_chans(prev), _in_chans(cur)
    if cp is not None and cc is not None and cp != cc:
        return (f"the networks read images of {cp} and {cc} channels: growth copies the first layer unchanged; "
                f"{fix}")
    if input_shape is not None:
        shape = "x".join(str(int(v)) for v in input_shape)
        (kp, why_p), (kc, why_c) = probe_classes(prev, input_shape), probe_classes(cur, input_shape)
        if why_p or why_c:
            who = "the network before it" if why_p else "the student"
            return (f"{who} cannot run on the data's {shape} images ({why_p or why_c}): growth needs both networks "
                    f"made for the same images; {fix}")
        if kp != kc:
            return (f"the networks predict {kp} and {kc} classes: growth copies the classifier, so the student must "
                    f"predict the same classes as the network before it (a teacher of other classes, e.g. other "
                    f"data.classes, cannot be grown into this data's network); {fix}")
    return None


def _smaller_problem(prev: nn.Module, cur: nn.Module) -> str | None:
    """A student smaller than ``prev`` cannot hold every weight growth copies into it."""
    fix = f"use a recipe with init random ({_without_growth()})"
    np_, nc = (sum(p.numel() for p in m.parameters()) for m in (prev, cur))
    if nc < np_:
        return (f"the student is smaller than the network before it ({nc:,} < {np_:,} parameters): growth copies "
                f"every weight of the smaller network into a larger one, none narrower or shallower; {fix}")
    return None


def growth_problem(prev: nn.Module, cur: nn.Module, input_shape: Sequence[int] | None = None) -> str | None:
    """Why ``cur`` cannot be grown from ``prev`` (None when it can), with the recipes that would work.

    The checks every family needs come first, for every family, the user's own included (image channels,
    classes, image size); then the family's own (:meth:`GrowthFamily.problem`), which words a smaller student
    precisely (narrower, fewer blocks); then, for a family whose ``problem`` does not, a student with fewer
    parameters than ``prev``. All before :func:`grow` runs any family's copy.
    ``input_shape``: the data's (C, H, W); with it both networks run once on it, which checks the classes and
    the image size (without it, only what the layers show: image channels and parameter counts)."""
    fp, fc = family_of(prev), family_of(cur)
    if fp is not None and fp is fc:
        return _common_problem(prev, cur, input_shape) or fp.problem(prev, cur) or _smaller_problem(prev, cur)
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
         seed: int = 0, input_shape: Sequence[int] | None = None) -> dict[str, object]:
    """Copy ``prev`` into ``cur``, widening and deepening it; with ``identity``, ``cur`` computes ``prev``'s function.

    Without ``identity`` the new layers keep ``cur``'s own initialisation (the ``grow-fsp`` recipe then
    aligns them in stage 1). ``noise`` spreads the split proportions between replicated units; ``seed``
    makes that spread reproducible; ``input_shape`` (C, H, W) lets :func:`growth_problem` check classes and image
    size. Returns what was done, for the records; :class:`GrowthError` when :func:`growth_problem` names a problem
    (or the family's copy fails on shapes it could not see).
    """
    problem = growth_problem(prev, cur, input_shape)
    if problem is not None:
        raise GrowthError(problem)
    fam = family_of(cur)
    assert fam is not None  # growth_problem returned None: both are of this family
    try:
        with torch.no_grad():
            record = fam.grow(prev, cur, identity=identity, noise=noise, seed=seed)
    except (RuntimeError, IndexError) as e:  # a shape the checks could not see (no input_shape): one message
        raise GrowthError(f"growth family {fam.name!r} could not copy {type(prev).__name__} into "
                          f"{type(cur).__name__}: {(str(e).strip().splitlines() or [type(e).__name__])[0]}; check "
                          "the two networks with growth_problem(prev, cur, input_shape) or use a recipe with init "
                          f"random ({_without_growth()})") from None
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
