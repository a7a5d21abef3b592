import pytest
import torch
from torch import nn

from cnnlab.errors import ShapeError
from cnnlab.ops.conv_arith import (
    conv_macs,
    conv_output_size,
    conv_params,
    inception_cost_example,
    receptive_field,
    same_padding,
)


@pytest.mark.parametrize(
    "n,f,s,p,d",
    [(32, 5, 1, 0, 1), (7, 3, 2, 0, 1), (7, 3, 3, 0, 1), (224, 11, 4, 2, 1), (28, 5, 1, 2, 1), (10, 3, 1, 0, 2), (9, 4, 3, 1, 1)],
)
def test_output_size_matches_torch_conv(n, f, s, p, d):
    conv = nn.Conv2d(1, 1, f, stride=s, padding=p, dilation=d)
    out = conv(torch.zeros(1, 1, n, n))
    assert conv_output_size(n, f, s, p, d) == out.shape[-1]


def test_output_size_course_examples():
    assert conv_output_size(32, 5) == 28  # LeNet CONV1
    assert conv_output_size(7, 3, s=2) == 3  # CS231n: 7x7 input, 3x3 filter, stride 2 -> 3x3
    assert conv_output_size(6, 3) == 4  # the 6x6 edge-detection example


def test_strict_rejects_stride_that_does_not_tile_and_says_why():
    assert conv_output_size(7, 3, s=3) == 2  # floor, as torch does
    with pytest.raises(ShapeError, match="not a multiple of stride 3"):
        conv_output_size(7, 3, s=3, strict=True)


def test_filter_larger_than_input_is_a_shape_error():
    with pytest.raises(ShapeError, match="larger than the padded input"):
        conv_output_size(4, 7)
    with pytest.raises(ShapeError, match="negative"):
        conv_output_size(4, 3, p=-1)
    with pytest.raises(ShapeError):
        conv_output_size(4, 3, s=0)


@pytest.mark.parametrize("f", [1, 3, 5, 7, 11])
def test_same_padding_keeps_size(f):
    p = same_padding(f)
    assert p == (f - 1) // 2
    assert conv_output_size(17, f, 1, p) == 17


def test_same_padding_with_dilation_and_even_filter():
    assert same_padding(3, dilation=2) == 2
    with pytest.raises(ShapeError, match="odd filter"):
        same_padding(4)


def test_receptive_field():
    assert receptive_field([(3, 1)] * 3) == 7  # three 3x3 convs see 7x7
    assert receptive_field([(3, 1)] * 2) == 5
    assert receptive_field([(5, 1), (2, 2), (5, 1), (2, 2)]) == 16  # LeNet-5 conv/pool stack
    assert receptive_field([(3, 1, 2), (3, 1, 4)]) == 13  # dilated 3x3s: 1 + 2*2 + 2*4
    with pytest.raises(ShapeError):
        receptive_field([(3,)])


def test_receptive_field_by_gradient():
    """The input pixels that influence the centre output are exactly the computed receptive field."""
    torch.manual_seed(0)
    layers = [(3, 1), (2, 2), (3, 1), (3, 2)]
    mods = [nn.Conv2d(1, 1, f, s) if i % 2 == 0 else nn.AvgPool2d(f, s) for i, (f, s) in enumerate(layers)]
    net = nn.Sequential(*mods)
    x = torch.randn(1, 1, 40, 40, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    assert rows.max() - rows.min() + 1 == receptive_field(layers)


def test_params_and_macs_course_numbers():
    assert conv_params(5, 3, 8) == 608  # LeNet CONV1
    assert conv_params(5, 8, 16) == 3216  # LeNet CONV2
    assert conv_params(3, 64, 64, bias=False) == 36864
    assert conv_macs(28, 28, 3, 8, 5) == 470_400


def test_inception_cost_example():
    cost = inception_cost_example()
    assert cost["direct"] == 120_422_400  # the course's "about 120M"
    assert cost["bottleneck_1x1"] == 2_408_448  # ~2.4M
    assert cost["bottleneck_conv"] == 10_035_200  # ~10.0M
    assert cost["bottleneck_total"] == 12_443_648  # ~12.4M
    assert round(cost["direct"] / 1e6) == 120 and round(cost["bottleneck_total"] / 1e5) == 124
