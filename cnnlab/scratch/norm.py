"""Batch normalization (fully connected and spatial) and inverted dropout.

Both behave differently in training and at test time, which is the point the course makes:
batch norm uses the batch's statistics while training and running averages at test;
dropout drops units while training and is the identity at test (inverted dropout scales by
1 / keep_prob during training so nothing needs rescaling at test).
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import ConfigError, ShapeError


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict):
    """Batch norm (Ioffe & Szegedy 2015) over x (N, D): y = gamma x_hat + beta.

    ``bn_param`` holds mode ('train' | 'test'), eps (1e-5), momentum (0.9: the fraction of
    the running average that is kept) and the running_mean / running_var it updates in
    place, starting from 0 and 1. The running variance averages the unbiased batch
    variance, as torch.nn.BatchNorm does (the course notebook uses the biased one).
    """
    if x.ndim != 2 or gamma.shape != (x.shape[1],) or beta.shape != (x.shape[1],):
        raise ShapeError(f"batchnorm: want x (N, D), gamma and beta (D,); got {x.shape}, {gamma.shape}, {beta.shape}")
    mode = bn_param.get("mode", "train")
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    d = x.shape[1]
    running_mean = bn_param.setdefault("running_mean", np.zeros(d, dtype=x.dtype))
    running_var = bn_param.setdefault("running_var", np.ones(d, dtype=x.dtype))
    if mode == "train":
        n = x.shape[0]
        mu = x.mean(axis=0)  # (D,)
        var = x.var(axis=0)  # biased: what normalises this batch
        inv_std = 1.0 / np.sqrt(var + eps)
        x_hat = (x - mu) * inv_std  # (N, D)
        unbiased = var * n / max(n - 1, 1)
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mu
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * unbiased
        return gamma * x_hat + beta, (x_hat, gamma, inv_std)
    if mode == "test":
        x_hat = (x - running_mean) / np.sqrt(running_var + eps)
        return gamma * x_hat + beta, None
    raise ConfigError(f"batchnorm: mode must be 'train' or 'test', got {mode!r}")


def batchnorm_backward(dout: np.ndarray, cache):
    """The simplified closed form: dx = gamma inv_std / N (N dout - sum dout - x_hat sum(dout x_hat))."""
    if cache is None:
        raise ConfigError("batchnorm: backward needs a forward pass in 'train' mode")
    x_hat, gamma, inv_std = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std / n * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def spatial_batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict):
    """Batch norm for conv features (N, C, H, W): statistics per channel over N, H and W."""
    if x.ndim != 4:
        raise ShapeError(f"spatial batchnorm: want x (N, C, H, W), got {x.shape}")
    n, c, h, w = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, c)  # (N*H*W, C)
    out, cache = batchnorm_forward(flat, gamma, beta, bn_param)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


def spatial_batchnorm_backward(dout: np.ndarray, cache):
    n, c, h, w = dout.shape
    dx, dgamma, dbeta = batchnorm_backward(dout.transpose(0, 2, 3, 1).reshape(-1, c), cache)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


def dropout_forward(x: np.ndarray, keep_prob: float = 0.5, train: bool = True, seed: int | None = None):
    """Inverted dropout: keep each unit with probability keep_prob and divide by keep_prob.

    ``keep_prob`` is the course's p (probability of keeping a unit); torch's ``p`` is the
    probability of dropping it, 1 - keep_prob. A fixed ``seed`` gives a fixed mask (for
    gradient checks).
    """
    if not 0.0 < keep_prob <= 1.0:
        raise ConfigError(f"dropout: keep_prob must be in (0, 1], got {keep_prob}")
    if not train:
        return x, None
    rng = np.random.default_rng(seed)
    mask = (rng.random(x.shape) < keep_prob) / keep_prob  # (same as x): 0 or 1/keep_prob
    return x * mask, mask.astype(x.dtype)


def dropout_backward(dout: np.ndarray, cache):
    return dout if cache is None else dout * cache
