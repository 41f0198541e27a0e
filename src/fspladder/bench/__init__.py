"""``fspladder bench``: does a recipe beat training from scratch, and at what cost?

The same target network is trained in several *arms* (same data, validation
split and optimiser), each a chain and a recipe (:data:`fspladder.recipes.ARMS`):
``scratch``, ``direct`` (teacher -> target, the FSP paper), ``ladder`` (the
patent), ``soft`` (Hinton KD), ``grow`` (Net2Net growth of the teacher),
``grow-fsp``, ``w2s``, ``ladder-w2s``, ``grow-w2s`` (soft targets only early,
Weak-to-Strong KD), plus named variants (an arm with its own recipe and
config overrides), at several stage-2 budgets over several seeds.
"""

from .plot import plot_bench
from .run import BENCH_CONFIG, PRESETS, resume_config, run_bench
from .summary import format_bench_md, summarize, time_to_target

__all__ = ["PRESETS", "BENCH_CONFIG", "run_bench", "resume_config", "summarize", "time_to_target",
           "format_bench_md", "plot_bench"]
