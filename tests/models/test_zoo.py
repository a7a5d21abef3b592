"""Every registered model, automatically: shapes, gradients, determinism, export, the classifier contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import ShapeError
from cnnlab.models import create_model, list_models

NUM_CLASSES = 7
IN_CHANS = 1


def input_size(model: nn.Module) -> int:
    """The smallest convenient square input: 32x32, or the model's own minimum if larger."""
    return max(32, getattr(model, "min_input_size", 0))


def build(name: str, num_classes: int = NUM_CLASSES, in_chans: int = IN_CHANS) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=num_classes, in_chans=in_chans, img_size=32)


def test_zoo_lists_the_classic_architectures():
    names = list_models()
    assert len(names) >= 30
    for required in ("lenet5", "alexnet", "alexnet_tv", "vgg16", "vgg19_bn", "nin", "googlenet", "resnet18", "resnet152",
                     "resnet20", "resnet110", "plain20", "preact_resnet18", "preact_resnet20", "wrn28_10",
                     "wide_resnet50_2", "resnext50_32x4d"):
        assert required in names
    assert list_models("vgg*_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name: str):
    """Train-mode forward/backward reaches every parameter; eval is deterministic, exports, and splits into features + head."""
    model = build(name)
    size = input_size(model)
    x = torch.randn(2, IN_CHANS, size, size)  # (B, C, H, W); batch 2 so batch norm can train

    model.train()
    logits = model(x)
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, NUM_CLASSES - 1])).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    model.eval()
    with torch.no_grad():
        out1, out2 = model(x), model(x)
        feats = model.forward_features(x)
        assert torch.equal(out1, out2)
        assert feats.ndim == 4 and feats.shape[0] == 2  # the unpooled feature map
        assert torch.allclose(model.forward_head(feats), out1, atol=1e-6)
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    assert model.get_classifier().weight.shape[0] == NUM_CLASSES

    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), out1, atol=1e-5)

    stages = model.stages()
    stage_params = {id(p) for s in stages for p in s.parameters()}
    model_params = {id(p) for p in model.parameters()}
    assert stage_params <= model_params
    assert not stage_params & {id(p) for p in model.get_classifier().parameters()}, "the head must not be a stage"
    if name != "linear":  # the linear classifier is all head
        assert len(stages) >= 3 and stage_params

    model.reset_classifier(3)
    assert model.get_classifier().weight.shape == (3, model.num_features)
    with torch.no_grad():
        assert model(x).shape == (2, 3)


@pytest.mark.parametrize("name", ["resnet20", "plain20", "preact_resnet20", "wrn16_4", "nin", "googlenet", "resnet18", "resnext50_32x4d",
                                  "resnet9"])
def test_small_grey_images(name: str):
    """28x28x1 (Fashion-MNIST) inputs work: natively for CIFAR-style nets, via adaptive pooling for the others."""
    model = build(name, num_classes=10, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name, smallest", [("alexnet", 67), ("alexnet_tv", 63), ("vgg11", 32), ("resnet9", 8)])
def test_too_small_inputs_raise_shape_error(name: str, smallest: int):
    """Nets whose pooling cannot shrink further say how large the input must be (instead of a 0x0 conv error)."""
    model = build(name, num_classes=10, in_chans=3).eval()
    assert model.min_input_size == smallest
    with torch.no_grad():
        assert model(torch.randn(1, 3, smallest, smallest)).shape == (1, 10)
        with pytest.raises(ShapeError, match=f"at least {smallest}x{smallest}"):
            model(torch.randn(1, 3, smallest - 1, smallest))


def run_stages(model: nn.Module, x: torch.Tensor, n: int) -> list[torch.Tensor]:
    """The outputs of stages()[:n] applied one after another (at 64 px and up, where LeNet pads nothing)."""
    outs = []
    for stage in model.stages()[:n]:
        x = stage(x)
        outs.append(x)
    return outs


@pytest.mark.parametrize("name", list_models())
def test_backbone_contract_feature_info_matches_the_real_maps(name: str):
    """feature_info's channels, reductions and modules are those of forward_intermediates' real tensors, which are
    the outputs of stages() in turn; the last is forward_features; negative and out-of-range indices."""
    model = build(name).eval()
    info = model.feature_info
    modules = dict(model.named_modules())
    assert info and all(i["module"] in modules for i in info)
    if name == "linear":  # the input as a (B, C*H*W, 1, 1) map, at a fixed input size
        x = torch.randn(2, IN_CHANS, 32, 32)
        with torch.no_grad():
            (m,) = model.forward_intermediates(x)
            assert torch.equal(m, model.forward_features(x)) and m.shape == (2, info[0]["num_chs"], 1, 1)
            assert torch.equal(model.forward_head(m, pre_logits=True), x.flatten(1))
        assert info == [dict(num_chs=32 * 32, reduction=32, module="features")]
        return
    side = max(64, getattr(model, "min_input_size", 0))
    x, x_large = torch.randn(1, IN_CHANS, side, side), torch.randn(1, IN_CHANS, side + 64, side + 64)
    with torch.no_grad():
        maps, large = model.forward_intermediates(x), model.forward_intermediates(x_large)
        feats = model.forward_features(x)
        chained = run_stages(model, x, len(info))
        assert len(maps) == len(large) == len(info) >= 2
        for t, t_large, c, i in zip(maps, large, chained, info):
            assert t.ndim == 4 and t.shape[1] == i["num_chs"]
            assert (t_large.shape[-1] - t.shape[-1]) * i["reduction"] == 64  # reduction = the stage's stride
            if not name.startswith(("alexnet", "lenet")):  # 'same' padding: exactly input side / map side
                assert side / t.shape[-1] == i["reduction"]
            assert torch.equal(t, c), "stage i of feature_info must be stages()[i]"
        assert torch.equal(maps[-1], feats)
        assert [r["reduction"] for r in info] == sorted(r["reduction"] for r in info)
        picked = model.forward_intermediates(x, [0, -1])
        assert torch.equal(picked[0], maps[0]) and torch.equal(picked[1], feats)
        with pytest.raises(IndexError, match="does not exist"):
            model.forward_intermediates(x, [len(info)])


def test_feature_info_keeps_frozen_batch_norms_in_eval_mode():
    """Measuring feature_info (lazily, on first use) restores every module's own mode."""
    model = build("resnet20").train()
    model.bn1.eval()  # as --freeze leaves a frozen batch norm
    assert model.feature_info[-1] == dict(num_chs=64, reduction=4, module="layer3")
    assert model.training and not model.bn1.training and model.layer1.training
