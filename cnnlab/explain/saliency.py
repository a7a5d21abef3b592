"""Vanilla saliency (Simonyan et al. 2014) and SmoothGrad (Smilkov et al. 2017).

saliency(x)[h, w] = max over channels of |d score_c / d x[c, h, w]|: which pixels, changed a little,
change the class score most. SmoothGrad averages any gradient map over noisy copies of the image
(noise std = ``sigma`` times the image's value range), which removes much of its speckle.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from cnnlab.explain.common import Subject


def input_gradient(subject: Subject, x: torch.Tensor, target: int) -> torch.Tensor:
    """d score_target / d x for x (1, C, H, W) in [0, 1] -> (C, H, W) (the unnormalized class score)."""
    x = x.detach().clone().requires_grad_(True)
    score = subject(x)[0, target]
    (grad,) = torch.autograd.grad(score, x)
    return grad[0]  # (C, H, W)


def saliency(subject: Subject, x: torch.Tensor, target: int) -> np.ndarray:
    """(H, W): max over channels of |d score / d pixel|."""
    return input_gradient(subject, x, target).abs().amax(0).numpy()


def smooth(fn: Callable[[torch.Tensor], np.ndarray], x: torch.Tensor, n: int = 25, sigma: float = 0.15,
           seed: int = 0) -> np.ndarray:
    """SmoothGrad: the mean of fn(x + noise) over n noisy copies (noise std sigma * (max - min) of x)."""
    g = torch.Generator().manual_seed(seed)
    std = sigma * float(x.max() - x.min()) or sigma
    total = None
    for _ in range(n):
        m = fn(x + std * torch.randn(x.shape, generator=g))
        total = m if total is None else total + m
    return total / n


def smoothgrad(subject: Subject, x: torch.Tensor, target: int, n: int = 25, sigma: float = 0.15, seed: int = 0) -> np.ndarray:
    """(H, W) SmoothGrad saliency: max over channels of |mean gradient| is noisier; we average the maps."""
    return smooth(lambda xn: saliency(subject, xn, target), x, n, sigma, seed)
