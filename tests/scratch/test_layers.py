import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ShapeError
from cnnlab.scratch import layers
from tests.scratch.helpers import close, t


def _check(forward, backward, torch_fn, arrays, rng, **kw):
    """Forward equals torch_fn's output; backward equals torch autograd for every input."""
    out, cache = forward(*arrays, **kw)
    dout = rng.standard_normal(out.shape)
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    tensors = [t(a) for a in arrays]
    tout = torch_fn(*tensors)
    tout.backward(torch.tensor(dout))
    assert close(out, tout)
    for g, tt in zip(grads, tensors):
        assert close(g, tt.grad)


def test_affine_matches_torch_linear(rng):
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    _check(layers.affine_forward, layers.affine_backward, lambda x, w, b: F.linear(x.reshape(4, -1), w.T, b), [x, w, b], rng)


def test_affine_rejects_wrong_feature_count(rng):
    with pytest.raises(ShapeError, match="affine"):
        layers.affine_forward(rng.standard_normal((2, 7)), rng.standard_normal((6, 5)), np.zeros(5))


@pytest.mark.parametrize("name,torch_fn,kw", [
    ("relu", torch.relu, {}),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.1), {"alpha": 0.1}),
    ("elu", lambda x: F.elu(x, 0.7), {"alpha": 0.7}),
    ("sigmoid", torch.sigmoid, {}),
    ("tanh", torch.tanh, {}),
])
def test_activations_match_torch(name, torch_fn, kw, rng):
    x = 3 * rng.standard_normal((5, 7))
    _check(getattr(layers, f"{name}_forward"), getattr(layers, f"{name}_backward"), torch_fn, [x], rng, **kw)


def test_sigmoid_does_not_overflow():
    out, _ = layers.sigmoid_forward(np.array([-1000.0, 0.0, 1000.0]))
    assert np.all(np.isfinite(out)) and np.allclose(out, [0.0, 0.5, 1.0])


def test_maxout_matches_torch_max_over_pieces(rng):
    x, w, b = rng.standard_normal((6, 4)), rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 5))
    _check(layers.maxout_forward, layers.maxout_backward,
           lambda x, w, b: (torch.einsum("nd,kdm->knm", x, w) + b[:, None, :]).amax(0), [x, w, b], rng)


def test_maxout_with_a_zero_piece_is_relu(rng):
    x, w = rng.standard_normal((6, 4)), rng.standard_normal((4, 5))
    pieces = np.stack([w, np.zeros_like(w)])
    out, _ = layers.maxout_forward(x, pieces, np.zeros((2, 5)))
    assert np.allclose(out, np.maximum(x @ w, 0))


def test_affine_relu_sandwich_matches_torch(rng):
    x, w, b = rng.standard_normal((4, 6)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    _check(layers.affine_relu_forward, layers.affine_relu_backward, lambda x, w, b: torch.relu(x @ w + b), [x, w, b], rng)
