"""fspladder: train a large network faster from a small trained one, through networks of growing size.

Implements the method of patent KR 10-2063377 (KAIST/ETRI) on top of the FSP
matrix of Yim, Joo, Bae and Kim, "A Gift from Knowledge Distillation", CVPR
2017, with a recipe per rung (:mod:`fspladder.recipes`): how a student starts
(fresh, or grown from the network before it, Net2Net), its stage 1 (the FSP
loss, or none) and what guides its stage 2 (labels, soft targets, early soft
targets, or a joint FSP term).
"""

from .checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from .config import ConfigError, RunConfig, load_config, parse_config
from .data import DataSplits, ImageSet
from .engine import (
    DivergenceError,
    FlowTarget,
    SoftTargets,
    Stage1Result,
    Stage2Result,
    TrainContext,
    evaluate,
    train_stage1,
    train_stage2,
)
from .errors import FspladderError
from .flow import FlowRecorder, FsPair, Tap, TapError, flow_of, fsp_matrix, parse_tap, taps_of
from .growth import GrowthFamily, grow, growth_problem, register_growth
from .ladder import LadderError, Rung, validate_ladder
from .losses import fsp_loss, soft_target_loss
from .models import FeatureInfo, create_model, list_models, register_model
from .plan.auto import plan_and_run
from .predict import classify_files, load_for_inference
from .recipes import PRESETS as RECIPES
from .recipes import Recipe, parse_recipe
from .runner import run_ladder, train_network

__version__ = "0.2.0"

__all__ = [
    "fsp_matrix", "fsp_loss", "soft_target_loss", "Tap", "FsPair", "parse_tap", "FlowRecorder", "flow_of", "taps_of",
    "TapError", "Rung", "validate_ladder", "LadderError",
    "Recipe", "RECIPES", "parse_recipe", "grow", "growth_problem", "register_growth", "GrowthFamily",
    "TrainContext", "train_stage1", "train_stage2", "FlowTarget", "SoftTargets", "Stage1Result", "Stage2Result",
    "evaluate", "DivergenceError",
    "DataSplits", "ImageSet",
    "RunConfig", "load_config", "parse_config", "ConfigError", "FspladderError",
    "create_model", "register_model", "list_models", "FeatureInfo",
    "save_checkpoint", "load_checkpoint", "load_model", "CheckpointError", "load_for_inference", "classify_files",
    "run_ladder", "plan_and_run", "train_network", "__version__",
]
