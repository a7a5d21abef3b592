"""Max and average pooling over (pool_height, pool_width) windows moved by ``stride``.

Both work on a strided view of all windows (N, C, Ho, Wo, PH, PW), so there is no Python
loop over pixels; the backward passes loop only over the PH * PW offsets inside a window,
which also handles overlapping windows (stride < pool size). No padding, as in the course.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.errors import ShapeError


def _windows(x: np.ndarray, ph: int, pw: int, stride: int) -> np.ndarray:
    if x.ndim != 4:
        raise ShapeError(f"pool: want x of shape (N, C, H, W), got {x.shape}")
    if ph > x.shape[2] or pw > x.shape[3] or stride < 1:
        raise ShapeError(f"pool: window {(ph, pw)} with stride {stride} does not fit input {x.shape[2:]}")
    return sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::stride, ::stride]  # (N, C, Ho, Wo, PH, PW)


def max_pool_forward(x: np.ndarray, pool_height: int = 2, pool_width: int = 2, stride: int = 2):
    """Each output is the largest input in its window; backward routes dout to that input."""
    win = _windows(x, pool_height, pool_width, stride)
    flat = win.reshape(*win.shape[:4], -1)  # (N, C, Ho, Wo, PH*PW)
    idx = flat.argmax(axis=-1)  # (N, C, Ho, Wo) position of the max inside its window
    out = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    return out, (x.shape, idx, pool_height, pool_width, stride)


def max_pool_backward(dout: np.ndarray, cache):
    x_shape, idx, ph, pw, stride = cache
    ho, wo = dout.shape[2:]
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for a in range(ph):
        for c in range(pw):
            routed = dout * (idx == a * pw + c)  # gradient of the windows whose max sits at (a, c)
            dx[:, :, a : a + stride * ho : stride, c : c + stride * wo : stride] += routed
    return dx


def avg_pool_forward(x: np.ndarray, pool_height: int = 2, pool_width: int = 2, stride: int = 2):
    """Each output is the mean of its window; backward spreads dout / (PH PW) evenly."""
    out = _windows(x, pool_height, pool_width, stride).mean(axis=(-2, -1))  # (N, C, Ho, Wo)
    return out, (x.shape, pool_height, pool_width, stride)


def avg_pool_backward(dout: np.ndarray, cache):
    x_shape, ph, pw, stride = cache
    ho, wo = dout.shape[2:]
    dx = np.zeros(x_shape, dtype=dout.dtype)
    share = dout / (ph * pw)
    for a in range(ph):
        for c in range(pw):
            dx[:, :, a : a + stride * ho : stride, c : c + stride * wo : stride] += share
    return dx
