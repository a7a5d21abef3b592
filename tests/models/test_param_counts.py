"""Parameter counts asserted exactly: the papers', the course's and torchvision's numbers.

Models are built on the meta device: counting needs shapes, not memory or random numbers.
"""

from __future__ import annotations

import pytest
import torch

from cnnlab.models import create_model


def count(name: str, num_classes: int = 1000, **kw) -> int:
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, **kw)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, expected", [
    ("alexnet", 62_378_344),
    ("alexnet_tv", 61_100_840),
    ("vgg11", 132_863_336), ("vgg13", 133_047_848), ("vgg16", 138_357_544), ("vgg19", 143_667_240),
    ("vgg11_bn", 132_868_840), ("vgg13_bn", 133_053_736), ("vgg16_bn", 138_365_992), ("vgg19_bn", 143_678_248),
    ("googlenet", 6_624_904),
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
    ("resnet101", 44_549_160), ("resnet152", 60_192_808),
    ("wide_resnet50_2", 68_883_240), ("wide_resnet101_2", 126_886_696),
    ("resnext50_32x4d", 25_028_904), ("resnext101_32x8d", 88_791_336),
    ("preact_resnet18", 11_687_848), ("preact_resnet34", 21_796_008), ("preact_resnet50", 25_549_480),
])
def test_imagenet_counts(name: str, expected: int):
    assert count(name) == expected


def test_resnet9_count_by_layers():
    """Page's DAWNBench ResNet-9 at width 64 on CIFAR-10: 6,573,130 (convs without bias, BN scale and shift)."""
    convs = [3 * 64, 64 * 128, 128 * 128, 128 * 128, 128 * 256, 256 * 512, 512 * 512, 512 * 512]
    bn = 2 * (64 + 3 * 128 + 256 + 3 * 512)
    expected = 9 * sum(convs) + bn + 512 * 10 + 10
    assert expected == 6_573_130
    assert count("resnet9", num_classes=10) == expected
    assert count("resnet9", num_classes=10, in_chans=1, width=24) == 926_578  # the Fashion-MNIST recipe's net


def test_alexnet_two_gpu_split():
    """groups=2 halves the inputs of CONV2, CONV4, CONV5 (the paper's two GPUs): 60,965,224."""
    assert count("alexnet", groups=2) == 60_965_224
    saved = (256 * 5 * 5 * 96 + 384 * 3 * 3 * 384 + 256 * 3 * 3 * 384) // 2
    assert count("alexnet") - count("alexnet", groups=2) == saved


def test_googlenet_auxiliary_heads():
    assert count("googlenet", aux_logits=True) == 13_004_888
    # each aux head: 1x1 conv to 128 + BN, FC 2048->1024, FC 1024->1000; on 512 and 528 channels
    head = lambda cin: cin * 128 + 2 * 128 + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)  # noqa: E731
    assert count("googlenet", aux_logits=True) - count("googlenet") == head(512) + head(528)


def test_googlenet_paper_5x5_branch():
    """branch3_kernel=5 gives the paper's 5x5 convs: 16 more weights per (reduce, out) pair than 3x3."""
    pairs = [(16, 32), (32, 96), (16, 48), (24, 64), (24, 64), (32, 64), (32, 128), (32, 128), (48, 128)]  # Table 1
    assert count("googlenet", branch3_kernel=5) - count("googlenet") == sum((25 - 9) * r * o for r, o in pairs)


def test_nin_count_by_layers():
    """NIN on CIFAR-10: mlpconv blocks 192-160-96 (5x5), 192-192-192 (5x5), 192-192-10 (3x3)."""
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731
    expected = (conv(5, 3, 192) + conv(1, 192, 160) + conv(1, 160, 96)
                + conv(5, 96, 192) + conv(1, 192, 192) + conv(1, 192, 192)
                + conv(3, 192, 192) + conv(1, 192, 192) + conv(1, 192, 10))
    assert count("nin", num_classes=10) == expected == 966_986


def cifar_resnet_count(n: int) -> int:
    """Closed form for the 6n+2-layer CIFAR ResNet with option-A shortcuts (no shortcut parameters)."""
    conv_bn = lambda cin, cout: 9 * cin * cout + 2 * cout  # noqa: E731
    stage = lambda cin, c: conv_bn(cin, c) + conv_bn(c, c) + (n - 1) * 2 * conv_bn(c, c)  # noqa: E731
    return conv_bn(3, 16) + stage(16, 16) + stage(16, 32) + stage(32, 64) + 64 * 10 + 10


@pytest.mark.parametrize("depth, exact, paper", [
    (20, 269_722, "0.27M"), (32, 464_154, "0.46M"), (44, 658_586, "0.66M"), (56, 853_018, "0.85M"), (110, 1_727_962, "1.7M"),
])
def test_cifar_resnet_counts(depth: int, exact: int, paper: str):
    """He et al. Table 6: residual and plain nets have the same count, which rounds to the paper's."""
    n = (depth - 2) // 6
    assert count(f"resnet{depth}", num_classes=10) == exact == cifar_resnet_count(n)
    assert count(f"plain{depth}", num_classes=10) == exact
    digits = 1 if paper == "1.7M" else 2
    assert f"{exact / 1e6:.{digits}f}M" == paper


@pytest.mark.parametrize("name, exact, paper", [
    ("preact_resnet20", 272_282, "0.3M"),
    ("preact_resnet56", 855_578, "0.9M"),
    ("preact_resnet110", 1_730_522, "1.7M"),  # He et al. 2016, Table 3
    ("preact_resnet164", 1_703_258, "1.7M"),
    ("wrn16_4", 2_748_890, "2.7M"),  # Zagoruyko & Komodakis, Table 4 / 5
    ("wrn16_8", 10_961_370, "11.0M"),
    ("wrn40_4", 8_949_210, "8.9M"),
    ("wrn28_10", 36_479_194, "36.5M"),
])
def test_cifar_preact_and_wide_counts(name: str, exact: int, paper: str):
    assert count(name, num_classes=10) == exact
    assert f"{exact / 1e6:.1f}M" == paper


def test_shortcut_options_change_only_projection_parameters():
    """Option A (zero-padding) has no projections; B has one 1x1 conv + BN per dimension change; C one per block."""
    proj = lambda cin, cout: cin * cout + 2 * cout  # noqa: E731
    changes = proj(64, 128) + proj(128, 256) + proj(256, 512)
    assert count("resnet18") - count("resnet18", shortcut="A") == changes
    # C adds projections to the five identity blocks: layer1.0, layer1.1, layer2.1, layer3.1, layer4.1
    identity_blocks = 2 * proj(64, 64) + proj(128, 128) + proj(256, 256) + proj(512, 512)
    assert count("resnet18", shortcut="C") - count("resnet18") == identity_blocks
