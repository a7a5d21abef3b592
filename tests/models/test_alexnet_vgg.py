"""AlexNet's output volumes and normalization as in the CS231n notes; VGG's 3x3-only design."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models import create_model


def output_volumes(model: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """(H, W, C) after every conv and max pool, then the width of every fully connected layer."""
    shapes: list[tuple[int, ...]] = []

    def record(module, inputs, out):
        shapes.append((out.shape[2], out.shape[3], out.shape[1]) if out.dim() == 4 else (out.shape[1],))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return shapes


def test_alexnet_output_volumes_at_227():
    model = create_model("alexnet").eval()
    volumes = output_volumes(model, torch.randn(1, 3, 227, 227))
    # CONV1, POOL1, CONV2, POOL2, CONV3, CONV4, CONV5, POOL3, FC6, FC7, FC8 (CS231n notes)
    assert volumes == [(55, 55, 96), (27, 27, 96), (27, 27, 256), (13, 13, 256), (13, 13, 384), (13, 13, 384),
                       (13, 13, 256), (6, 6, 256), (4096,), (4096,), (1000,)]


def test_alexnet_lrn_after_first_two_pools_with_paper_constants():
    model = create_model("alexnet")
    kinds = [type(m).__name__ for m in model.features]
    assert kinds[:8] == ["Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm", "Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm"]
    assert kinds.count("LocalResponseNorm") == 2
    lrn = model.features[3]
    # b = a / (k + alpha * sum over 5 neighbouring channels of a^2)^beta, k=2, alpha=1e-4, beta=0.75
    a = torch.randn(1, 7, 2, 2)
    sq = torch.nn.functional.pad(a.pow(2), (0, 0, 0, 0, 2, 2))  # zero channels at both ends
    window = sum(sq[:, i:i + 7] for i in range(5))
    expected = a / (2.0 + 1e-4 * window).pow(0.75)
    assert torch.allclose(lrn(a), expected, atol=1e-7)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in create_model("alexnet_tv").modules())


def test_alexnet_groups_split_the_right_layers():
    convs = [m for m in create_model("alexnet", groups=2).features if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]


def test_alexnet_features_are_fc7_codes():
    model = create_model("alexnet", num_classes=10).eval()
    assert model.num_features == 4096
    assert len(model.stages()) == 7  # CONV1..CONV5, FC6, FC7
    with torch.no_grad():
        codes = model.forward_head(model.forward_features(torch.randn(2, 3, 67, 67)), pre_logits=True)
    assert codes.shape == (2, 4096) and (codes >= 0).all()  # after FC7's ReLU


def test_vgg_uses_only_3x3_convs_and_five_pools():
    for name, n_convs in [("vgg11", 8), ("vgg13", 10), ("vgg16", 13), ("vgg19", 16)]:
        with torch.device("meta"):  # structure only: no memory, no random numbers
            model = create_model(name)
        convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
        assert len(convs) == n_convs
        assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in convs)
        assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 5
        assert len(model.stages()) == 7  # five conv stages, FC6, FC7
    with torch.device("meta"):
        assert sum(isinstance(m, nn.BatchNorm2d) for m in create_model("vgg16_bn").modules()) == 13


def test_vgg_feature_map_is_7x7x512_at_224():
    model = create_model("vgg11").eval()
    with torch.no_grad():
        assert model.features(torch.randn(1, 3, 224, 224)).shape == (1, 512, 7, 7)
