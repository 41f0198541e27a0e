"""Built-in models and the registry."""

from . import plain as _plain  # noqa: F401  (registers the plain CNNs)
from . import resnet as _resnet  # noqa: F401  (registers the ResNets)
from .registry import FeatureInfo, accepted_kwargs, create_model, is_factory_spec, is_model, list_models, register_model
from .plain import PlainCNN
from .resnet import BasicBlock, CifarResNet

__all__ = [
    "FeatureInfo",
    "register_model",
    "create_model",
    "list_models",
    "is_model",
    "is_factory_spec",
    "accepted_kwargs",
    "CifarResNet",
    "BasicBlock",
    "PlainCNN",
]
