"""Training engine: one loop (:mod:`.loop`) that both stages plug their loss into.

* :mod:`.context`: :class:`TrainContext`, the device, data and settings every stage shares;
* :mod:`.loop`: the loop, its optimiser and schedule, snapshots, resume and the divergence guard;
* :mod:`.stage1`: the FSP loss against the frozen previous network (patent eq. 3);
* :mod:`.stage2`: cross-entropy (patent eq. 4) and the recipes' guidance (soft targets, joint FSP);
* :mod:`.evaluation`: accuracy, held-out FSP loss, mean FSP matrices;
* :mod:`.results`: the typed records the stages return.

Data stays on the training device as tensors; each step indexes a batch,
augments it in one batched op and normalises it (airbench-style).
"""

from .context import TrainContext, count_params
from .evaluation import evaluate, fsp_eval_loss, mean_flows
from .loop import DivergenceError, Objective, fit
from .results import Stage1Result, Stage2Result, StageResult
from .stage1 import train_stage1
from .stage2 import EarlySwitch, FlowTarget, SoftTargets, schedule_record, train_stage2

__all__ = ["TrainContext", "count_params", "evaluate", "fsp_eval_loss", "mean_flows", "DivergenceError", "Objective",
           "fit", "Stage1Result", "Stage2Result", "StageResult", "train_stage1", "train_stage2", "FlowTarget",
           "SoftTargets", "EarlySwitch", "schedule_record"]
