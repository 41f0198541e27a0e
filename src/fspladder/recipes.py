"""Recipes: how one rung of the ladder learns from the network before it.

A rung's transfer has three independent parts:

* **init**: ``random`` (a fresh network; the patent) or ``grow`` (function-
  preserving growth of the previous network, deeper and/or wider, Net2Net:
  Chen, Goodfellow and Shlens, ICLR 2016; see :mod:`fspladder.growth`);
* **stage 1**: ``fsp`` (match the previous network's FSP matrices, patent
  eq. 3) or ``none``;
* **guidance** of stage 2: ``ce`` (cross-entropy alone, patent eq. 4),
  ``kd`` (soft targets from the previous network all along; Hinton et al.
  2015), ``kd-early`` (soft targets only until the student's validation
  accuracy passes the previous network's, or a fraction of the schedule,
  whichever comes first; Weak-to-Strong KD, Li, Chai and Heide 2026) or
  ``joint`` (cross-entropy plus ``fsp_weight`` times the FSP loss against the
  previous network; not in the patent).

With ``init: grow`` and ``stage1: fsp`` the copied parts of the previous
network are frozen during stage 1 and only the new blocks, left at their fresh
initialisation instead of identities, learn the previous network's flow (the
bench's ``grow-fsp``).

The patent's recipe (random, fsp, ce) is the default. The named presets are
the bench's arms where an arm is one recipe (``direct`` and ``ladder`` are the
patent's recipe over two different chains, so both are names of it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["Recipe", "PRESETS", "ARMS", "DEFAULT_ARMS", "INITS", "STAGE1S", "GUIDANCES", "parse_recipe", "recipe_name",
           "schedule_defaults", "RECIPE_DEFAULT_KEYS"]

Init = Literal["random", "grow"]
Stage1 = Literal["fsp", "none"]
GuidanceKind = Literal["ce", "kd", "kd-early", "joint"]
INITS: tuple[str, ...] = ("random", "grow")
STAGE1S: tuple[str, ...] = ("fsp", "none")
GUIDANCES: tuple[str, ...] = ("ce", "kd", "kd-early", "joint")


@dataclass(frozen=True)
class Recipe:
    """One rung's transfer: how it starts, its stage 1, and what guides its stage 2."""

    init: Init = "random"
    stage1: Stage1 = "fsp"
    guidance: GuidanceKind = "ce"

    # What the recipe does, asked of the recipe: callers test these, never the part strings (issue 35).
    @property
    def grows(self) -> bool:
        """The student starts as the previous network grown to its size (Net2Net), not fresh."""
        return self.init == "grow"

    @property
    def has_stage1(self) -> bool:
        """Stage 1 trains the student on the previous network's FSP matrices (patent eq. 3)."""
        return self.stage1 == "fsp"

    @property
    def identity_growth(self) -> bool:
        """Growth's new blocks start as identities (grow without stage 1); with stage 1 they stay fresh and only
        they learn the previous network's flow."""
        return self.grows and not self.has_stage1

    @property
    def preserves_function(self) -> bool:
        """Stage 2 starts from the previous network's exact function (growth with identity blocks)."""
        return self.identity_growth

    @property
    def plain_training(self) -> bool:
        """No stage 1 and plain cross-entropy in stage 2: scratch, or growth from the previous network's function.
        The recipes whose schedule issue 32 measured against each other (``schedule_defaults``)."""
        return not self.has_stage1 and not self.uses_previous_in_stage2

    @property
    def soft_targets(self) -> bool:
        """Stage 2 learns from the previous network's soft targets (kd or kd-early)."""
        return self.guidance in ("kd", "kd-early")

    @property
    def soft_targets_early(self) -> bool:
        """The soft targets switch off once the student passes the previous network (kd-early, W2S)."""
        return self.guidance == "kd-early"

    @property
    def joint_flow(self) -> bool:
        """Stage 2 adds the FSP loss against the previous network to cross-entropy (guidance joint)."""
        return self.guidance == "joint"

    @property
    def uses_previous_in_stage2(self) -> bool:
        """Stage 2 runs the previous network too (soft targets or the joint FSP term), not cross-entropy alone."""
        return self.guidance != "ce"

    @property
    def compares_flows(self) -> bool:
        """FSP matrices of the two networks are compared (stage 1 or the joint term)."""
        return self.has_stage1 or self.joint_flow

    @property
    def compares_whole_flows(self) -> bool:
        """Stage 1 compares the whole student's FSP matrices with the previous network's, so their shapes must
        meet (claim 3); a grown student's stage 1 trains only its new blocks."""
        return self.has_stage1 and not self.grows

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        name = recipe_name(self)
        parts = f"init {self.init}, stage 1 {self.stage1}, guidance {self.guidance}"
        return f"{name} ({parts})" if name else parts


PRESETS: dict[str, Recipe] = {
    "patent": Recipe("random", "fsp", "ce"),
    "scratch": Recipe("random", "none", "ce"),
    "soft": Recipe("random", "none", "kd"),
    "grow": Recipe("grow", "none", "ce"),
    "grow-fsp": Recipe("grow", "fsp", "ce"),
    "w2s": Recipe("random", "none", "kd-early"),
    "ladder-w2s": Recipe("random", "fsp", "kd-early"),
    "grow-w2s": Recipe("grow", "none", "kd-early"),
    "grow-kd": Recipe("grow", "none", "kd"),
    "grow-joint": Recipe("grow", "none", "joint"),
    "patent-joint": Recipe("random", "fsp", "joint"),
}
ALIASES = {"ladder": "patent", "direct": "patent"}  # bench arms that are the patent's recipe on another chain


# The bench's arms: which chain (the target alone after the teacher, or every rung of the config) and
# which recipe every trained rung of it uses. See fspladder.bench.
ARMS: dict[str, tuple[str, str]] = {
    "scratch": ("target", "scratch"),
    "direct": ("target", "patent"),  # the FSP paper's setting: no intermediates
    "ladder": ("ladder", "patent"),  # the patent
    "soft": ("target", "soft"),
    "grow": ("target", "grow"),
    "grow-fsp": ("target", "grow-fsp"),
    "w2s": ("target", "w2s"),
    "ladder-w2s": ("ladder", "ladder-w2s"),
    "grow-w2s": ("target", "grow-w2s"),
}
DEFAULT_ARMS = ["scratch", "direct", "ladder", "soft", "grow"]  # the others run when asked for (--arms)


def recipe_name(recipe: Recipe) -> str | None:
    """The preset's name for ``recipe``, if it is one."""
    return next((k for k, v in PRESETS.items() if v == recipe), None)


def parse_recipe(value: Any, where: str = "recipe") -> tuple[Recipe | None, list[str]]:
    """A preset name or a mapping ``{init, stage1, guidance}`` (missing parts: the patent's).

    Returns the recipe and the problems (each naming ``where`` and the fix).
    """
    import difflib

    if isinstance(value, Recipe):
        return value, []
    if isinstance(value, str):
        name = ALIASES.get(value, value)
        if name in PRESETS:
            return PRESETS[name], []
        close = difflib.get_close_matches(value, [*PRESETS, *ALIASES], n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        return None, [f"{where}: unknown recipe {value!r}{hint}; use one of {', '.join(PRESETS)} or a mapping "
                      f"{{init: {'|'.join(INITS)}, stage1: {'|'.join(STAGE1S)}, guidance: {'|'.join(GUIDANCES)}}}"]
    if isinstance(value, dict):
        problems = []
        unknown = set(value) - {"init", "stage1", "guidance"}
        if unknown:
            problems.append(f"{where}: unknown part(s) {sorted(map(str, unknown))}; a recipe has init, stage1 and "
                            "guidance")
        for part, options in (("init", INITS), ("stage1", STAGE1S), ("guidance", GUIDANCES)):
            if part in value and value[part] not in options:
                problems.append(f"{where}.{part} must be one of {', '.join(options)}, got {value[part]!r}")
        if problems:
            return None, problems
        return Recipe(**{k: v for k, v in value.items()}), []
    return None, [f"{where} must be a recipe name ({', '.join(PRESETS)}) or a mapping {{init, stage1, guidance}}, "
                  f"got {type(value).__name__} {value!r}"]


# Stage-2 keys that are null in a config, meaning "the rung's recipe decides" (see schedule_defaults).
RECIPE_DEFAULT_KEYS = ("lr", "warmup_epochs", "kd_temperature", "kd_alpha", "kd_until", "fsp_weight", "schedule",
                       "decay_fraction", "ema", "growth_noise")

# Peak learning rate of stage 2 (SGD, batch 128, cosine to min_lr) by how the network starts.
# A random or FSP-initialised network needs the from-scratch peak: a lower one (0.02) cost the ladder
# 3.8 points in docs/recipes.md "What we tried". A network grown from a trained one starts at that network's
# function, which the from-scratch peak throws away in its first epoch (issue 16: val 0.926 -> 0.88) --
# and yet, measured on the teacher's own data (docs/recipes.md "Recipe schedules": ResNet-8 -> ResNet-20 grown,
# 8,000 images, peaks 0.005-0.05, 2/5/10-epoch schedules), the from-scratch peak ended best at 5 and 10
# epochs (0.8768 and 0.8862 val against 0.8690 and 0.8764 at 0.01) and within 0.003 at 2 epochs, and half
# an epoch of warm-up did not help. So the grown default is the same peak; the key stays per recipe.
RANDOM_LR = 0.05
GROWN_LR = 0.05
GROWN_WARMUP = 0.0
# Issue 32 item 6, defaults follow the evidence: warm-up-stable-decay with the last half of the steps decaying
# beat the one cosine at the full budget, for scratch and for growth alike, on four families (mean validation
# accuracy of 3 seeds, 10-20 epochs; docs/results/realistic-fair, vgg-fair, imagenet-fair, vit-fair): scratch +0.9,
# +1.0, +0.5 and +1.6 points, growth +0.6, +0.3, +0.16 and +0.4. So both plain recipes train with it by default
# (one measurement against it: scratch on all 55,000 images, one seed, -0.5 validation, +0.2 test). The recipes
# with a stage 1 or a teacher in stage 2 keep the one cosine: wsd was not measured for them (the patent's recipe
# stays as the paper trains it). Every wsd measured decayed half the steps, so that is wsd's default for any recipe.
PLAIN_SCHEDULE = "wsd"
WSD_DECAY = 0.5
# Warm-start levers for grown networks (issue 23), each measured in docs/results/growth-schedules: no averaging
# and split noise 0.1 stay the defaults.
GROWN_EMA = 0.0
GROW_NOISE = 0.1  # spread of the split proportions between channel copies (fspladder.growth); <= 0.4


def schedule_defaults(recipe: Recipe) -> dict[str, float | None]:
    """The stage-2 values a recipe gives to the keys a config leaves null (``RECIPE_DEFAULT_KEYS``).

    Keys a recipe does not use are None: setting them in a config is refused,
    since they would change nothing.
    """
    kd = recipe.soft_targets
    return {
        "lr": GROWN_LR if recipe.preserves_function else RANDOM_LR,
        "warmup_epochs": GROWN_WARMUP if recipe.preserves_function else 0.0,
        "kd_temperature": 4.0 if kd else None,  # Hinton et al.'s soft targets; our soft arm since issue 5
        "kd_alpha": 0.9 if kd else None,  # weight of the soft-target term; 1 - alpha on the labels
        "kd_until": 0.5 if recipe.soft_targets_early else None,  # fraction of the schedule, at the latest
        "fsp_weight": 1e-3 if recipe.joint_flow else None,  # docs/recipes.md "What we tried, part 2"
        # The learning-rate curve (engine.loop.lr_factor): cosine, or warm-up-stable-decay (wsd) whose
        # decay_fraction of the steps decays linearly; decay_fraction is read by wsd only, which
        # Stage2Config._check enforces (None here would mean "no recipe reads it").
        "schedule": PLAIN_SCHEDULE if recipe.plain_training else "cosine",
        "decay_fraction": WSD_DECAY,
        # Per-step decay of an exponential moving average of the weights (0 = off), evaluated and saved.
        "ema": GROWN_EMA if recipe.preserves_function else 0.0,
        "growth_noise": GROW_NOISE if recipe.grows else None,
    }
