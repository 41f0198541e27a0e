"""``fspladder plan``: which intermediates and which recipe, from measurements (patent claims 8, 17; [0121]).

The patent leaves the number of intermediate networks to the target's
training time, its accuracy, or both. The planner makes that decision, and
picks the recipe each rung learns by, from numbers measured on the user's own
device and data:

1. **Candidates.** Chains between the teacher and the target within the
   built-in ResNet family (0, 1, 2, ... intermediate depths and widths, evenly
   spaced, each strictly larger than the one before it: claim 3), times the
   recipes of ``plan.recipes`` that apply (growth needs the ResNet family,
   soft targets a teacher of the data's classes).
2. **Cost.** Each candidate is a chain plan (:func:`fspladder.chain.run_tasks`)
   and its cost is the whole-job estimate's (:mod:`fspladder.estimate`): every
   distinct stage (a rung's stage 1 against the network before it, its stage 2
   with the recipe's guidance) runs a few real steps through the engine once
   for all candidates, and the candidate's seconds for the configured schedule
   (steps, every epoch's evaluation, checkpoint writes) follow from them: the
   same profile ``fspladder run`` prints its estimate from.
3. **Benefit.** Each candidate runs a short probe (a training subset, a short
   stage 1 and stage 2, by its recipe), cheapest first, as long as the probe's
   cost, estimated from the measured steps, fits what is left of
   ``plan.planning_budget``. One candidate is probed with a second seed to
   measure the probe's noise.
4. **Decision.** With a time budget: the best probe accuracy among candidates
   predicted to fit. With a target accuracy: the cheapest candidate whose
   probe reaches it. With both: the cheapest that reaches it within the
   budget, or a :class:`PlanError` that says what would.

Probe accuracy is measured after a short schedule, so it is a *ranking*
signal, not a forecast of final accuracy; the table says so.
"""

from .candidates import Candidate, PlanError, candidate_chains, select
from .measure import format_plan, run_plan

__all__ = ["PlanError", "Candidate", "candidate_chains", "select", "run_plan", "format_plan"]
