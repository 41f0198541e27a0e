"""Built-in models and the registry."""

from . import plain as _plain  # noqa: F401  (registers the plain CNNs)
from . import resnet as _resnet  # noqa: F401  (registers the ResNets)
from . import resnet_imagenet as _resnet_imagenet  # noqa: F401  (registers the ImageNet-layout ResNets)
from . import vit as _vit  # noqa: F401  (registers the Vision Transformers)
from .outputs import MODEL_FAILURES, ModelOutputError, logits_of, module_device, probe_classes, probe_logits
from .plain import PlainCNN
from .registry import (
    FeatureInfo,
    ModelBuildError,
    UnknownModelError,
    accepted_kwargs,
    create_for_data,
    create_model,
    is_factory_spec,
    is_model,
    list_models,
    register_model,
)
from .resnet import BasicBlock, CifarResNet
from .resnet_imagenet import Bottleneck, ImageNetBasicBlock, ImageNetResNet
from .vit import VisionTransformer

__all__ = [
    "ModelBuildError",
    "UnknownModelError",
    "FeatureInfo",
    "register_model",
    "create_model",
    "create_for_data",
    "list_models",
    "is_model",
    "is_factory_spec",
    "accepted_kwargs",
    "CifarResNet",
    "BasicBlock",
    "PlainCNN",
    "ImageNetResNet",
    "ImageNetBasicBlock",
    "Bottleneck",
    "VisionTransformer",
    "logits_of",
    "ModelOutputError",
    "probe_logits",
    "probe_classes",
    "module_device",
    "MODEL_FAILURES",
]
