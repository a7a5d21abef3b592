"""torchvision as the oracle: its state dicts load through ``create_model(name, weights=FILE)`` and give its outputs.

No download: torchvision's model is built with random weights (batch-norm statistics randomized
too, so every buffer's mapping is checked), saved to a temporary .pth, and loaded into ours.
"""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from cnnlab.models import create_model
from cnnlab.models.weights import load_weights


def randomize_batch_norm(model: nn.Module) -> None:
    """Non-trivial BN affine parameters and running statistics (fresh ones are the identity in eval mode)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)


def assert_matches_torchvision(name: str, tmp_path, size: int = 64, tv_kwargs: dict | None = None, **our_kwargs) -> None:
    torch.manual_seed(0)
    reference = getattr(tvm, name.removesuffix("_tv"))(weights=None, **(tv_kwargs or {}))
    randomize_batch_norm(reference)
    reference.eval()
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    ours = create_model(name, weights=path, **our_kwargs).eval()
    x = torch.randn(2, 3, size, size)  # (B, C, H, W)
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert got.shape == expected.shape == (2, 1000)
    assert expected.abs().max() > 1e-3, "degenerate reference output"
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ["alexnet_tv", "vgg11", "resnet18", "resnet50", "resnext50_32x4d", "mobilenet_v2"])
def test_matches_torchvision(name: str, tmp_path):
    assert_matches_torchvision(name, tmp_path)


@pytest.mark.parametrize("width_mult", [0.5, 1.4])
def test_mobilenet_v2_width_multiplier_matches_torchvision(width_mult: float, tmp_path):
    """Channels rounded to multiples of 8 as torchvision rounds them (the last conv stays 1280 below 1.0)."""
    assert_matches_torchvision("mobilenet_v2", tmp_path, tv_kwargs=dict(width_mult=width_mult), width_mult=width_mult)


def test_googlenet_matches_torchvision_with_and_without_aux_heads(tmp_path):
    """torchvision's files carry the auxiliary heads; a model without them drops those tensors."""
    tv_kwargs = dict(aux_logits=True, transform_input=False, init_weights=True)
    assert_matches_torchvision("googlenet", tmp_path, tv_kwargs=tv_kwargs)
    assert_matches_torchvision("googlenet", tmp_path, tv_kwargs=tv_kwargs, aux_logits=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg11_bn", "vgg16", "vgg19_bn", "resnet34", "resnet152", "wide_resnet50_2"])
def test_matches_torchvision_large(name: str, tmp_path):
    assert_matches_torchvision(name, tmp_path)


def test_googlenet_aux_heads_reset_for_another_class_count(tmp_path):
    """Transfer learning with auxiliary heads: the main and both auxiliary classifiers get fresh heads."""
    torch.manual_seed(0)
    reference = tvm.googlenet(weights=None, aux_logits=True, transform_input=False, init_weights=True)
    path = tmp_path / "googlenet.pth"
    torch.save(reference.state_dict(), path)
    model = create_model("googlenet", num_classes=5, aux_logits=True)
    report = load_weights(model, path)
    assert report["head_reset"] is True
    assert report["loaded"] == len(reference.state_dict()) - 6  # fc, aux1.fc2, aux2.fc2 weights and biases
    assert torch.equal(model.aux1.fc1.weight, reference.aux1.fc1.weight)
    assert model.aux2.fc2.out_features == 5
