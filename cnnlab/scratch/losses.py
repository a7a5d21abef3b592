"""Data losses and regularization penalties; each returns (value, gradient).

Classification losses take scores x (N, C) and integer labels y (N,) and average over the
N examples. Regression losses take predictions and targets of the same shape and average
the per-example squared / absolute error norm over N (the course's L_i = ||f - y||).
Penalties follow "loss = data loss + lambda R(W)".
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import ShapeError


def _check_labels(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ShapeError(f"loss: want scores (N, C) and labels (N,); got {x.shape} and {np.shape(y)}")
    if y.size and (y.min() < 0 or y.max() >= x.shape[1]):
        raise ShapeError(f"loss: labels must lie in [0, {x.shape[1]}), got range [{y.min()}, {y.max()}]")


def svm_loss(x: np.ndarray, y: np.ndarray, delta: float = 1.0):
    """Multiclass SVM (Weston-Watkins hinge): sum over j != y of max(0, s_j - s_y + delta)."""
    _check_labels(x, y)
    n = x.shape[0]
    rows = np.arange(n)
    margins = np.maximum(0, x - x[rows, y][:, None] + delta)  # (N, C)
    margins[rows, y] = 0
    loss = margins.sum() / n
    positive = (margins > 0).astype(x.dtype)
    positive[rows, y] = -positive.sum(axis=1)  # the correct score is pushed by every violator
    return loss, positive / n


def softmax_loss(x: np.ndarray, y: np.ndarray):
    """Softmax cross-entropy: -log(e^{s_y} / sum_j e^{s_j}); at random init about ln(C)."""
    _check_labels(x, y)
    n = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)  # stability: same softmax, no overflow
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(n), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1.0
    return loss, dx / n


def logistic_loss(x: np.ndarray, y: np.ndarray):
    """Binary logistic loss: x (N,) scores, y (N,) in {0, 1}; mean of log(1 + e^{-s x}), s = 2y - 1."""
    if x.ndim != 1 or np.shape(y) != x.shape:
        raise ShapeError(f"logistic loss: want scores (N,) and labels (N,); got {x.shape} and {np.shape(y)}")
    sign = 2.0 * y - 1.0
    margin = sign * x
    loss = np.logaddexp(0.0, -margin).mean()
    dx = -sign * 0.5 * (1.0 - np.tanh(0.5 * margin)) / x.shape[0]  # -s sigmoid(-s x) / N
    return loss, dx.astype(x.dtype, copy=False)


def _check_pair(pred: np.ndarray, target: np.ndarray, name: str) -> None:
    if pred.shape != np.shape(target) or pred.ndim < 1:
        raise ShapeError(f"{name}: predictions {pred.shape} and targets {np.shape(target)} must have the same shape")


def l2_loss(pred: np.ndarray, target: np.ndarray):
    """L2 regression loss: squared error summed per example, averaged over the batch."""
    _check_pair(pred, target, "l2 loss")
    diff = pred - target
    n = pred.shape[0]
    return np.sum(diff * diff) / n, 2.0 * diff / n


def l1_loss(pred: np.ndarray, target: np.ndarray):
    """L1 regression loss: absolute error summed per example, averaged over the batch."""
    _check_pair(pred, target, "l1 loss")
    diff = pred - target
    n = pred.shape[0]
    return np.sum(np.abs(diff)) / n, np.sign(diff) / n


def l2_penalty(W: np.ndarray, reg: float):
    """L2 penalty 0.5 reg sum(W^2); gradient reg W (the "weight decay" of torch optimizers)."""
    return 0.5 * reg * np.sum(W * W), reg * W


def l1_penalty(W: np.ndarray, reg: float):
    """L1 penalty reg sum|W|: pushes weights to exactly zero (sparse)."""
    return reg * np.sum(np.abs(W)), reg * np.sign(W)


def elastic_net_penalty(W: np.ndarray, l1_reg: float, l2_reg: float):
    """Elastic net: l1_reg sum|W| + 0.5 l2_reg sum(W^2), the L1 and L2 penalties combined."""
    v1, g1 = l1_penalty(W, l1_reg)
    v2, g2 = l2_penalty(W, l2_reg)
    return v1 + v2, g1 + g2
