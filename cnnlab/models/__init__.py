"""Model zoo: one family per file, all registered by name (see registry.py)."""

from cnnlab.models.registry import create_model, get_model_builder, list_models, register_model

# Importing a family module registers its models.
from cnnlab.models import (  # noqa: F401,E402
    alexnet, convnet, googlenet, lenet, linear, mobilenet, nin, preact_resnet, resnet, resnet9, resnet_cifar, resnext, vgg,
    wide_resnet,
)

__all__ = ["create_model", "get_model_builder", "list_models", "register_model"]
