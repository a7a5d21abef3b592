import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ShapeError
from cnnlab.scratch import conv
from tests.scratch.helpers import close, t

SETTINGS = [  # (x shape, w shape, stride, pad): square, rectangular, strided, strides that do not divide
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 1),
    ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1),
    ((1, 2, 9, 6), (3, 2, 4, 2), 3, 0),
    ((2, 1, 8, 8), (2, 1, 5, 5), 2, 2),
]


@pytest.mark.parametrize("impl", ["naive", "im2col", "fft"])
@pytest.mark.parametrize("xs,ws,stride,pad", SETTINGS)
def test_conv_matches_torch_conv2d(impl, xs, ws, stride, pad, rng):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    fwd, bwd = conv.CONV_IMPLEMENTATIONS[impl]
    out, cache = fwd(x, w, b, stride=stride, pad=pad)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = bwd(dout, cache)
    tx, tw, tb = t(x), t(w), t(b)
    tout = F.conv2d(tx, tw, tb, stride=stride, padding=pad)
    tout.backward(torch.tensor(dout))
    assert close(out, tout)
    assert close(dx, tx.grad) and close(dw, tw.grad) and close(db, tb.grad)


def test_three_convolutions_agree_with_each_other(rng):
    x, w, b = rng.standard_normal((3, 4, 10, 10)), rng.standard_normal((5, 4, 3, 3)), rng.standard_normal(5)
    outs, grads = [], []
    dout = None
    for impl in ("naive", "im2col", "fft"):
        fwd, bwd = conv.CONV_IMPLEMENTATIONS[impl]
        out, cache = fwd(x, w, b, stride=2, pad=1)
        dout = rng.standard_normal(out.shape) if dout is None else dout
        outs.append(out)
        grads.append(bwd(dout, cache))
    for out, g in zip(outs[1:], grads[1:]):
        assert np.allclose(out, outs[0], atol=1e-10)
        assert all(np.allclose(a, b_, atol=1e-10) for a, b_ in zip(g, grads[0]))


def test_im2col_col2im_are_adjoint(rng):
    # <im2col(x), c> == <x, col2im(c)> for every x, c: col2im is exactly the transpose
    x = rng.standard_normal((2, 3, 6, 5))
    cols = conv.im2col(x, 3, 2, 2, 1)
    c = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * c), np.sum(x * conv.col2im(c, x.shape, 3, 2, 2, 1)))


def test_conv_keeps_float32(rng):
    x, w = rng.standard_normal((1, 2, 5, 5)).astype(np.float32), rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    for impl in ("im2col", "fft"):
        out, _ = conv.CONV_IMPLEMENTATIONS[impl][0](x, w, np.zeros(2, np.float32), pad=1)
        assert out.dtype == np.float32


@pytest.mark.parametrize("xs,ws,stride,pad", [((1, 3, 5, 5), (2, 4, 3, 3), 1, 0), ((1, 1, 2, 2), (1, 1, 5, 5), 1, 0),
                                               ((1, 1, 5, 5), (1, 1, 3, 3), 0, 0)])
def test_conv_rejects_impossible_shapes(xs, ws, stride, pad):
    with pytest.raises(ShapeError, match="conv"):
        conv.conv_forward_im2col(np.zeros(xs), np.zeros(ws), np.zeros(ws[0]), stride=stride, pad=pad)
