import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d, correlate2d

from cnnlab.errors import ConfigError, ShapeError
from cnnlab.nn.edges import EDGE_KERNELS, detect_edges, edge_conv2d, edge_kernel


def test_course_vertical_edge_example():
    img = torch.tensor([[10.0] * 3 + [0.0] * 3] * 6)  # left half 10, right half 0
    out = detect_edges(img, "vertical")
    assert out.shape == (4, 4)
    assert torch.equal(out, torch.tensor([[0.0, 30.0, 30.0, 0.0]] * 4))
    # Dark-to-bright instead gives -30: the sign says which way the edge goes.
    assert torch.equal(detect_edges(img.flip(1), "vertical"), -out)
    # A horizontal filter sees no edge in this image.
    assert torch.count_nonzero(detect_edges(img, "horizontal")) == 0


def test_kernels_are_the_textbook_values():
    assert edge_kernel("sobel_vertical").tolist() == [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    assert edge_kernel("scharr_horizontal").tolist() == [[3, 10, 3], [0, 0, 0], [-3, -10, -3]]
    assert edge_kernel("horizontal").tolist() == [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]
    for name in EDGE_KERNELS:
        assert edge_kernel(name).sum() == 0  # no response on flat regions
    with pytest.raises(ConfigError, match="unknown edge filter 'canny'"):
        edge_kernel("canny")


@pytest.mark.parametrize("name", sorted(EDGE_KERNELS))
def test_conv_layers_compute_cross_correlation_and_flip_gives_convolution(name):
    rng = np.random.default_rng(0)
    img = rng.standard_normal((9, 11))
    k = np.array(EDGE_KERNELS[name])
    t = torch.from_numpy(img)
    np.testing.assert_allclose(detect_edges(t, name).numpy(), correlate2d(img, k, mode="valid"), atol=1e-12)
    np.testing.assert_allclose(detect_edges(t, name, flip=True).numpy(), convolve2d(img, k, mode="valid"), atol=1e-12)
    # The filters are antisymmetric, so true convolution is the negative of cross-correlation.
    np.testing.assert_allclose(detect_edges(t, name, flip=True).numpy(), -detect_edges(t, name).numpy(), atol=1e-12)


def test_batch_padding_and_bad_shape():
    x = torch.randn(2, 1, 8, 8)
    assert detect_edges(x, "sobel_horizontal", padding=1).shape == (2, 1, 8, 8)
    with pytest.raises(ShapeError, match="grey image"):
        detect_edges(torch.randn(2, 3, 8, 8))


def test_edge_conv2d_is_initialised_and_learnable():
    conv = edge_conv2d(["sobel_vertical", "sobel_horizontal"], in_channels=3, padding=0)
    assert conv.weight.requires_grad and conv.bias.requires_grad
    assert torch.equal(conv.weight[1, 2], edge_kernel("sobel_horizontal"))
    x = torch.randn(1, 3, 6, 7)
    expected = F.conv2d(x.sum(1, keepdim=True), edge_kernel("sobel_vertical")[None, None])
    torch.testing.assert_close(conv(x)[:, :1], expected, rtol=1e-5, atol=1e-5)
    conv(x).square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    before = conv.weight.detach().clone()
    torch.optim.SGD(conv.parameters(), lr=1e-3).step()
    assert not torch.equal(before, conv.weight)  # a training step moves the filters
