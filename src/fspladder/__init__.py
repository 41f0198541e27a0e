"""fspladder: progressive FSP knowledge transfer, from a small trained network to a large one.

Implements the method of patent KR 10-2063377 (KAIST/ETRI) on top of the FSP
matrix of Yim, Joo, Bae and Kim, "A Gift from Knowledge Distillation", CVPR 2017.
"""

from .checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from .config import ConfigError, RunConfig, load_config, parse_config
from .engine import DivergenceError, FlowTarget, TrainContext, evaluate, train_stage1, train_stage2
from .flow import FlowRecorder, FsPair, Tap, TapError, flow_of, fsp_matrix, parse_tap, taps_of
from .ladder import LadderError, Rung, validate_ladder
from .losses import fsp_loss
from .models import FeatureInfo, create_model, list_models, register_model
from .runner import run_ladder, train_network

__version__ = "0.1.0"

__all__ = [
    "fsp_matrix", "fsp_loss", "Tap", "FsPair", "parse_tap", "FlowRecorder", "flow_of", "taps_of", "TapError",
    "Rung", "validate_ladder", "LadderError",
    "TrainContext", "train_stage1", "train_stage2", "FlowTarget", "evaluate", "DivergenceError",
    "RunConfig", "load_config", "parse_config", "ConfigError",
    "create_model", "register_model", "list_models", "FeatureInfo",
    "save_checkpoint", "load_checkpoint", "load_model", "CheckpointError",
    "run_ladder", "train_network", "__version__",
]
