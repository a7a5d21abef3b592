"""Fully connected layer, activation functions and Maxout as forward/backward pairs.

Every ``*_forward`` returns ``(out, cache)``; the matching ``*_backward(dout, cache)``
returns the gradient of the loss with respect to each input, in the order of the forward
arguments. This is the course's modular-layer design: a network is a stack of such pairs,
and backprop is calling the backwards in reverse order.
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import ShapeError


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray):
    """Fully connected layer: out = x.reshape(N, D) @ w + b (images are flattened)."""
    n = x.shape[0]
    if int(np.prod(x.shape[1:])) != w.shape[0]:
        raise ShapeError(f"affine: input has {int(np.prod(x.shape[1:]))} features per example, weights expect {w.shape[0]}")
    out = x.reshape(n, -1) @ w + b  # (N, D) @ (D, M) -> (N, M)
    return out, (x, w, b)


def affine_backward(dout: np.ndarray, cache):
    """Gradients of the affine layer: dx = dout w^T, dw = x^T dout, db = sum over the batch."""
    x, w, _ = cache
    dx = (dout @ w.T).reshape(x.shape)  # (N, M) @ (M, D) -> (N, ...)
    dw = x.reshape(x.shape[0], -1).T @ dout  # (D, N) @ (N, M)
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x: np.ndarray):
    """ReLU max(0, x): the course's default activation (no saturation for x > 0)."""
    return np.maximum(x, 0), x


def relu_backward(dout: np.ndarray, cache):
    return dout * (cache > 0)


def leaky_relu_forward(x: np.ndarray, alpha: float = 0.01):
    """Leaky ReLU max(alpha x, x): a small slope for x < 0 so units never die."""
    return np.where(x > 0, x, alpha * x), (x, alpha)


def leaky_relu_backward(dout: np.ndarray, cache):
    x, alpha = cache
    return dout * np.where(x > 0, 1.0, alpha)


def elu_forward(x: np.ndarray, alpha: float = 1.0):
    """ELU: x for x > 0, alpha (exp(x) - 1) otherwise (negative outputs, mean closer to 0)."""
    neg = alpha * np.expm1(np.minimum(x, 0))
    return np.where(x > 0, x, neg), (x, neg, alpha)


def elu_backward(dout: np.ndarray, cache):
    x, neg, alpha = cache
    return dout * np.where(x > 0, 1.0, neg + alpha)  # d/dx alpha (e^x - 1) = alpha e^x


def sigmoid_forward(x: np.ndarray):
    """Sigmoid 1 / (1 + exp(-x)), written via tanh so large |x| cannot overflow."""
    out = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out, out


def sigmoid_backward(dout: np.ndarray, cache):
    return dout * cache * (1.0 - cache)  # sigma' = sigma (1 - sigma), at most 1/4


def tanh_forward(x: np.ndarray):
    """tanh: zero-centred, but still saturates like the sigmoid."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout: np.ndarray, cache):
    return dout * (1.0 - cache * cache)


def maxout_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray):
    """Maxout (Goodfellow et al. 2013): out = max over k pieces of x w[k] + b[k].

    x: (N, D), w: (K, D, M), b: (K, M) -> out: (N, M). With K = 2 and one piece zero it is
    ReLU; it never saturates nor dies, at K times the parameters.
    """
    if x.ndim != 2 or w.ndim != 3 or w.shape[1] != x.shape[1] or b.shape != (w.shape[0], w.shape[2]):
        raise ShapeError(f"maxout: want x (N, D), w (K, D, M), b (K, M); got {x.shape}, {w.shape}, {b.shape}")
    z = np.einsum("nd,kdm->knm", x, w) + b[:, None, :]  # (K, N, M)
    idx = z.argmax(axis=0)  # (N, M) winning piece
    out = np.take_along_axis(z, idx[None], axis=0)[0]
    return out, (x, w, idx)


def maxout_backward(dout: np.ndarray, cache):
    x, w, idx = cache
    dz = (np.arange(w.shape[0])[:, None, None] == idx[None]) * dout[None]  # (K, N, M): only winners
    dx = np.einsum("knm,kdm->nd", dz, w)
    dw = np.einsum("nd,knm->kdm", x, dz)
    db = dz.sum(axis=1)
    return dx, dw, db


def affine_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray):
    """The course's convenience sandwich: affine followed by ReLU."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout: np.ndarray, cache):
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)
