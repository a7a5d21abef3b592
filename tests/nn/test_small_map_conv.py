"""SmallMapConv2d against nn.Conv2d: same values and gradients, on the swapped path and the usual one."""

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.nn.small_map_conv import SmallMapConv2d, swapped_weight_grad


def pair(cin, cout, k, seed=0):
    torch.manual_seed(seed)
    a = SmallMapConv2d(cin, cout, k)
    b = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
    b.load_state_dict(a.state_dict())  # the same parameters under the same names
    return a, b


@pytest.mark.parametrize("k,size", [(3, 1), (3, 2), (3, 3), (3, 4), (5, 3), (3, 7)])
def test_values_and_gradients_match_conv2d(k, size):
    a, b = pair(6, 10, k)
    x = torch.randn(7, 6, size, size, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = a(xa), b(xb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(ya, yb)
    torch.testing.assert_close(a.weight.grad, b.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)
    assert a.weight.grad.shape == a.weight.shape


def test_swapped_weight_grad_is_the_sum_over_batch_and_positions():
    """dW[o, c, i, j] = sum_{b,h,w} dY[b, o, h, w] * Xpad[b, c, h + i, w + j], written out as loops."""
    torch.manual_seed(1)
    x, gy = torch.randn(2, 3, 3, 3, dtype=torch.float64), torch.randn(2, 4, 3, 3, dtype=torch.float64)
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1))
    ref = torch.zeros(4, 3, 3, 3, dtype=torch.float64)
    for i in range(3):
        for j in range(3):
            ref[:, :, i, j] = torch.einsum("bohw,bchw->oc", gy, xp[:, :, i:i + 3, j:j + 3])
    torch.testing.assert_close(swapped_weight_grad(x, gy, 1), ref)


def test_bf16_autocast_gradients_match_within_bf16_rounding():
    a, b = pair(32, 32, 3)
    x = torch.randn(16, 32, 3, 3).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ya, yb = a(x), b(x)
    assert ya.dtype == yb.dtype == torch.bfloat16
    ya.float().square().sum().backward()
    yb.float().square().sum().backward()
    assert a.weight.grad.dtype == torch.float32  # the fp32 master weight gets an fp32 gradient
    torch.testing.assert_close(a.weight.grad, b.weight.grad, rtol=0.05, atol=0.05 * b.weight.grad.abs().max().item())


def test_no_grad_and_large_maps_use_the_plain_convolution():
    a, b = pair(4, 5, 3)
    with torch.no_grad():
        torch.testing.assert_close(a(torch.ones(1, 4, 2, 2)), b(torch.ones(1, 4, 2, 2)))
    y = a(torch.randn(2, 4, 8, 8))  # 64 pixels > max_map: the usual autograd graph
    assert type(y.grad_fn).__name__.startswith("Convolution")
    y = a(torch.randn(2, 4, 4, 4))  # 16 pixels: the swapped backward
    assert "SmallMapConv" in type(y.grad_fn).__name__


def test_even_kernels_are_refused():
    with pytest.raises(ConfigError, match="odd kernel"):
        SmallMapConv2d(3, 3, 2)
