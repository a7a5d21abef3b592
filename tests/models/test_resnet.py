"""ResNet family: shortcut options, plain twins, bottleneck widths, pre-activation and wide blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import ModelError
from cnnlab.models import create_model
from cnnlab.models.preact_resnet import PreActBlock
from cnnlab.models.resnet import BasicBlock, Bottleneck, ResNet, ZeroPadShortcut


def test_zero_padding_shortcut_subsamples_and_pads():
    """Option A: y = [x[:, :, ::2, ::2], zeros] with no parameters."""
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(y[:, 16:], torch.zeros(2, 16, 4, 4))
    assert list(shortcut.parameters()) == []
    with pytest.raises(ValueError, match="cannot shrink"):
        ZeroPadShortcut(32, 16, stride=1)


def test_basic_block_adds_the_identity():
    """With the residual branch zeroed (last BN scale 0) a block is relu(x): the shortcut carries the signal."""
    block = BasicBlock(8, 8).eval()
    nn.init.zeros_(block.bn2.weight)
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(block(x), torch.relu(x))
    plain = BasicBlock(8, 8, residual=False).eval()
    nn.init.zeros_(plain.bn2.weight)
    assert torch.equal(plain(x), torch.zeros_like(x))


def test_plain_net_is_the_resnet_without_shortcuts():
    """Same parameters (option A shortcuts have none), different function."""
    torch.manual_seed(0)
    residual, plain = create_model("resnet20", num_classes=10), create_model("plain20", num_classes=10)
    assert residual.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(residual.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(residual.eval()(x), plain.eval()(x))
    assert all(not b.residual for stage in plain.stages()[1:] for b in stage)


def test_cifar_resnet_layout():
    model = create_model("resnet56", num_classes=10)
    assert [len(s) for s in model.stages()[1:]] == [9, 9, 9]
    assert model.conv1.kernel_size == (3, 3) and isinstance(model.maxpool, nn.Identity)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == 56  # 6n+1 convs and the FC layer
    sizes = []
    x = torch.randn(2, 3, 32, 32)
    x = model.stages()[0](x)
    for stage in model.stages()[1:]:
        x = stage(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


def test_imagenet_resnet_stage_shapes_at_224():
    model = create_model("resnet50").eval()
    x = torch.randn(1, 3, 224, 224)
    shapes = []
    with torch.no_grad():
        for stage in model.stages():
            x = stage(x)
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 56, 56), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]


def test_bottleneck_stride_position():
    """torchvision ("v1.5") strides in the 3x3 conv, the paper in the first 1x1: same parameters, other features."""
    torch.manual_seed(0)
    v15 = create_model("resnet50", num_classes=10)
    v1 = ResNet(Bottleneck, [3, 4, 6, 3], num_classes=10, stride_in_1x1=True)
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    v1.load_state_dict(v15.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(v1.eval()(x), v15.eval()(x))


def test_resnext_grouped_bottleneck_width():
    """32x4d: the first stage's 3x3 conv is 32 groups x 4 = 128 channels wide."""
    model = create_model("resnext50_32x4d")
    conv = model.layer1[0].conv2
    assert conv.groups == 32 and conv.in_channels == conv.out_channels == 128
    assert model.layer4[0].conv2.out_channels == 1024
    assert create_model("wide_resnet50_2").layer1[0].conv2.out_channels == 128  # 2 x 64


def test_preact_block_keeps_a_clean_identity_path():
    """Zeroing the last conv leaves exactly x: no BN or ReLU after the addition."""
    block = PreActBlock(8, 8).eval()
    nn.init.zeros_(block.conv2.weight)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(block(x), x)
    down = PreActBlock(8, 16, stride=2)
    assert isinstance(down.shortcut, nn.Conv2d) and down.project_preact


def test_wide_resnet_block_dropout_and_widths():
    model = create_model("wrn28_10", num_classes=10, drop_rate=0.3)
    stages = model.stages()
    assert [len(s) for s in stages[1:3]] == [4, 4]
    assert [stages[i][0].conv1.out_channels for i in (1, 2)] == [160, 320]
    assert model.num_features == 640
    block = stages[1][1]
    assert block.drop_rate == 0.3
    x = torch.randn(2, 160, 8, 8)
    block.train()
    assert not torch.equal(block(x), block(x))  # dropout is active in training
    block.eval()
    assert torch.equal(block(x), block(x))


def test_bad_options_raise_model_error():
    with pytest.raises(ModelError, match="unknown shortcut 'D'"):
        create_model("resnet18", shortcut="D")
    with pytest.raises(ModelError, match="unknown stem"):
        create_model("resnet18", stem="tiny")


def test_cifar_stem_for_imagenet_layouts():
    """stem='cifar' keeps 32x32 inputs at full resolution in the first stage."""
    model = create_model("preact_resnet18", num_classes=10, stem="cifar")
    assert model.stages()[1](model.stages()[0](torch.randn(2, 3, 32, 32))).shape == (2, 64, 32, 32)
