"""The course's two networks built from the scratch layers: a two-layer fully connected net
and a three-layer conv net (conv - relu - 2x2 max pool - affine - relu - affine - softmax).

Both follow the Solver's model protocol: ``params`` (name -> array) and
``loss(X, y=None)``, which returns class scores when y is None, else (loss, grads) with
grads keyed like params. The L2 penalty 0.5 reg ||W||^2 applies to weights, not biases.
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import ConfigError
from cnnlab.scratch import conv, layers, losses, pool


def _init(rng, shape: tuple, fan_in: int, weight_scale: float | None, dtype) -> np.ndarray:
    """Gaussian weights: std weight_scale, or He et al.'s sqrt(2 / fan_in) when None (ReLU nets)."""
    std = np.sqrt(2.0 / fan_in) if weight_scale is None else weight_scale
    return (std * rng.standard_normal(shape)).astype(dtype)


class TwoLayerNet:
    """affine - relu - affine - softmax, with an L2 penalty on W1 and W2."""

    def __init__(self, input_dim: int = 64, hidden_dim: int = 100, num_classes: int = 10,
                 weight_scale: float | None = None, reg: float = 0.0, seed: int = 0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        self.reg = reg
        self.params = {
            "W1": _init(rng, (input_dim, hidden_dim), input_dim, weight_scale, dtype),
            "b1": np.zeros(hidden_dim, dtype=dtype),
            "W2": _init(rng, (hidden_dim, num_classes), hidden_dim, weight_scale, dtype),
            "b2": np.zeros(num_classes, dtype=dtype),
        }

    def loss(self, X: np.ndarray, y: np.ndarray | None = None):
        p = self.params
        hidden, cache1 = layers.affine_relu_forward(X, p["W1"], p["b1"])  # (N, H)
        scores, cache2 = layers.affine_forward(hidden, p["W2"], p["b2"])  # (N, C)
        if y is None:
            return scores
        loss, dscores = losses.softmax_loss(scores, y)
        grads = {}
        dhidden, grads["W2"], grads["b2"] = layers.affine_backward(dscores, cache2)
        _, grads["W1"], grads["b1"] = layers.affine_relu_backward(dhidden, cache1)
        for name in ("W1", "W2"):
            penalty, dpen = losses.l2_penalty(p[name], self.reg)
            loss += penalty
            grads[name] += dpen
        return loss, grads


class ThreeLayerConvNet:
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax on (C, H, W) images.

    The convolution keeps the spatial size (stride 1, pad (filter_size - 1) // 2) and uses
    the im2col implementation by default, which makes NumPy training practical.
    """

    def __init__(self, input_dim: tuple = (1, 8, 8), num_filters: int = 32, filter_size: int = 3,
                 hidden_dim: int = 100, num_classes: int = 10, weight_scale: float | None = None,
                 reg: float = 0.0, conv_impl: str = "im2col", seed: int = 0, dtype=np.float64):
        if conv_impl not in conv.CONV_IMPLEMENTATIONS:
            raise ConfigError(f"conv_impl must be one of {sorted(conv.CONV_IMPLEMENTATIONS)}, got {conv_impl!r}")
        if filter_size % 2 == 0:
            raise ConfigError(f"filter_size must be odd so the conv keeps the image size, got {filter_size}")
        c, h, w = input_dim
        rng = np.random.default_rng(seed)
        self.reg = reg
        self.conv_forward, self.conv_backward = conv.CONV_IMPLEMENTATIONS[conv_impl]
        self.pad = (filter_size - 1) // 2
        pooled = num_filters * (h // 2) * (w // 2)
        self.params = {
            "W1": _init(rng, (num_filters, c, filter_size, filter_size), c * filter_size**2, weight_scale, dtype),
            "b1": np.zeros(num_filters, dtype=dtype),
            "W2": _init(rng, (pooled, hidden_dim), pooled, weight_scale, dtype),
            "b2": np.zeros(hidden_dim, dtype=dtype),
            "W3": _init(rng, (hidden_dim, num_classes), hidden_dim, weight_scale, dtype),
            "b3": np.zeros(num_classes, dtype=dtype),
        }

    def loss(self, X: np.ndarray, y: np.ndarray | None = None):
        p = self.params
        a, conv_cache = self.conv_forward(X, p["W1"], p["b1"], stride=1, pad=self.pad)  # (N, F, H, W)
        r, relu_cache = layers.relu_forward(a)
        pooled, pool_cache = pool.max_pool_forward(r, 2, 2, 2)  # (N, F, H/2, W/2)
        hidden, fc_cache = layers.affine_relu_forward(pooled, p["W2"], p["b2"])  # (N, hidden)
        scores, out_cache = layers.affine_forward(hidden, p["W3"], p["b3"])  # (N, classes)
        if y is None:
            return scores
        loss, dscores = losses.softmax_loss(scores, y)
        grads = {}
        dhidden, grads["W3"], grads["b3"] = layers.affine_backward(dscores, out_cache)
        dpooled, grads["W2"], grads["b2"] = layers.affine_relu_backward(dhidden, fc_cache)
        dr = pool.max_pool_backward(dpooled, pool_cache)
        _, grads["W1"], grads["b1"] = self.conv_backward(layers.relu_backward(dr, relu_cache), conv_cache)
        for name in ("W1", "W2", "W3"):
            penalty, dpen = losses.l2_penalty(p[name], self.reg)
            loss += penalty
            grads[name] += dpen
        return loss, grads
