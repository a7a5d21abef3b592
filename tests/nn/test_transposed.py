import pytest
import torch
import torch.nn.functional as F

from cnnlab.nn.transposed import transposed_conv1d, transposed_conv2d


def test_course_1d_example_overlaps_are_summed():
    a, b, x, y, z = 2.0, 3.0, 5.0, 7.0, 11.0
    inp = torch.tensor([[[a, b]]])  # (1, 1, 2)
    w = torch.tensor([[[x, y, z]]])  # (C_in=1, C_out=1, 3)
    out = transposed_conv1d(inp, w, stride=2)
    assert out[0, 0].tolist() == [a * x, a * y, a * z + b * x, b * y, b * z]
    assert torch.equal(out, F.conv_transpose1d(inp, w, stride=2))


def test_course_2x2_example():
    """2x2 input, 3x3 filter, stride 2, pad 1 (output padding 1) -> 4x4 output; overlaps add up."""
    inp = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    w = torch.ones(1, 1, 3, 3)
    out = transposed_conv2d(inp, w, stride=2, padding=1, output_padding=1)
    expected = torch.tensor([[1, 3, 2, 2], [4, 10, 6, 6], [3, 7, 4, 4], [3, 7, 4, 4]], dtype=torch.float)
    assert torch.equal(out[0, 0], expected)
    assert torch.equal(out, F.conv_transpose2d(inp, w, stride=2, padding=1, output_padding=1))
    # Without output padding the size is (2 - 1) * 2 + 3 - 2 * 1 = 3: the centre 3x3 of that.
    assert torch.equal(transposed_conv2d(inp, w, stride=2, padding=1)[0, 0], expected[:3, :3])


@pytest.mark.parametrize("k,s,p,op", [(3, 1, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (2, 2, 0, 0), (5, 3, 2, 2)])
def test_transposed_conv2d_matches_torch(k, s, p, op):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    w = torch.randn(3, 4, k, k, dtype=torch.float64)
    torch.testing.assert_close(transposed_conv2d(x, w, s, p, op), F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op))


@pytest.mark.parametrize("k,s,p", [(3, 2, 0), (4, 2, 1), (1, 3, 0)])
def test_transposed_conv1d_matches_torch(k, s, p):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    w = torch.randn(3, 2, k, dtype=torch.float64)
    torch.testing.assert_close(transposed_conv1d(x, w, s, p), F.conv_transpose1d(x, w, stride=s, padding=p))
