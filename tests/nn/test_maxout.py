import pytest
import torch

from cnnlab.errors import ShapeError
from cnnlab.nn.maxout import Maxout, MaxoutConv2d, maxout


def test_maxout_function_by_hand():
    x = torch.tensor([[1.0, 5.0, -2.0, -3.0, 4.0, 4.5]])
    assert maxout(x, 2, dim=1).tolist() == [[5.0, -2.0, 4.5]]
    assert maxout(x, 3, dim=1).tolist() == [[5.0, 4.5]]
    with pytest.raises(ShapeError, match="do not split into groups of 4"):
        maxout(x, 4)


def test_maxout_layer_is_max_of_its_linear_pieces():
    torch.manual_seed(0)
    layer = Maxout(6, 4, pieces=3)
    x = torch.randn(5, 6)
    w, b = layer.linear.weight.view(4, 3, 6), layer.linear.bias.view(4, 3)
    pieces = torch.einsum("ni,opi->nop", x, w) + b  # (N, out, pieces)
    torch.testing.assert_close(layer(x), pieces.amax(-1))
    assert layer(x).shape == (5, 4)


def test_maxout_with_a_zero_piece_is_relu():
    torch.manual_seed(0)
    layer = Maxout(3, 2, pieces=2)
    with torch.no_grad():
        layer.linear.weight.view(2, 2, 3)[:, 1] = 0  # second piece of every unit is 0
        layer.linear.bias.view(2, 2)[:, 1] = 0
    x = torch.randn(7, 3)
    w1, b1 = layer.linear.weight.view(2, 2, 3)[:, 0], layer.linear.bias.view(2, 2)[:, 0]
    torch.testing.assert_close(layer(x), torch.relu(x @ w1.T + b1))


def test_maxout_conv():
    torch.manual_seed(0)
    layer = MaxoutConv2d(3, 4, 3, pieces=2, padding=1)
    x = torch.randn(2, 3, 5, 5)
    y = layer(x)
    z = layer.conv(x).view(2, 4, 2, 5, 5)
    assert y.shape == (2, 4, 5, 5)
    torch.testing.assert_close(y, z.amax(2))
