import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ShapeError
from cnnlab.nn.unpool import (
    BedOfNailsUnpool2d,
    NearestUnpool2d,
    SwitchMaxPool2d,
    SwitchMaxUnpool2d,
    bed_of_nails_unpool,
    max_unpool,
    nearest_unpool,
)

X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2), the course's example


def test_nearest_unpool_course_example_and_torch():
    expected = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]], dtype=torch.float)
    assert torch.equal(nearest_unpool(X)[0, 0], expected)
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(nearest_unpool(x, 3), F.interpolate(x, scale_factor=3, mode="nearest"))
    assert torch.equal(NearestUnpool2d(3)(x), nearest_unpool(x, 3))


def test_bed_of_nails_course_example():
    expected = torch.tensor([[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]], dtype=torch.float)
    assert torch.equal(bed_of_nails_unpool(X)[0, 0], expected)
    x = torch.randn(2, 3, 4, 5)
    y = BedOfNailsUnpool2d(2)(x)
    assert y.shape == (2, 3, 8, 10)
    nails = torch.zeros_like(y, dtype=torch.bool)
    nails[..., ::2, ::2] = True
    assert torch.equal(y[nails].view_as(x), x) and torch.count_nonzero(y[~nails]) == 0


@pytest.mark.parametrize("k,s,p,size", [(2, 2, 0, (8, 8)), (3, 2, 1, (9, 7)), (2, 2, 0, (7, 9)), (3, 3, 0, (9, 9))])
def test_max_unpool_matches_torch(k, s, p, size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    y, idx = F.max_pool2d(x, k, s, p, return_indices=True)
    ours = max_unpool(y, idx, size)
    assert torch.equal(ours, F.max_unpool2d(y, idx, k, s, p, output_size=size))
    assert torch.equal(ours, nn.MaxUnpool2d(k, s, p)(y, idx, output_size=size))


def test_max_unpool_course_example():
    x = torch.tensor([[[[1.0, 2.0, 6.0, 3.0], [3.0, 5.0, 2.0, 1.0], [1.0, 2.0, 2.0, 1.0], [7.0, 3.0, 4.0, 8.0]]]])
    pool, unpool = SwitchMaxPool2d(2), None
    unpool = SwitchMaxUnpool2d(pool)
    y = pool(x)
    assert y[0, 0].tolist() == [[5.0, 6.0], [7.0, 8.0]]
    # The decoder puts new values where the maxima were: (1,1), (0,2), (3,0), (3,3).
    z = unpool(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = [[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]]
    assert z[0, 0].tolist() == expected


def test_switch_pair_in_an_encoder_decoder_and_errors():
    pool = SwitchMaxPool2d(2)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), pool, nn.Conv2d(4, 4, 1), SwitchMaxUnpool2d(pool))
    assert sum(1 for m in net.modules() if m is pool) == 1  # registered once
    x = torch.randn(2, 1, 6, 6, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 4, 6, 6)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ShapeError, match="run the paired pooling layer"):
        SwitchMaxUnpool2d(SwitchMaxPool2d(2))(torch.randn(1, 1, 2, 2))
    with pytest.raises(ShapeError, match="differ in shape"):
        max_unpool(torch.randn(1, 1, 2, 2), torch.zeros(1, 1, 2, 3, dtype=torch.long), (4, 4))
