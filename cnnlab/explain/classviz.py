"""Class model visualization (Simonyan et al. 2014; Yosinski et al. 2015's regularizers): start from grey noise
and climb the gradient of one class's score with respect to the pixels, keeping the image natural with L2
decay, random jitter (shift) each step, and an occasional Gaussian blur.

The defaults take mobilenet_v2 (ImageNet) to an "espresso" (class 967) that it classifies with p > 0.9
in 200 steps (about 25 s on one CPU thread); the returned probability is that of the final
image after rounding to 8-bit pixels, as it is saved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.explain.common import Subject


@dataclass
class ClassVizResult:
    image: np.ndarray  # (C, H, W) in [0, 1]
    prob: float  # p(target) of the saved (8-bit) image
    scores: list[float]  # target score after each step


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), reflect padding."""
    r = max(1, int(round(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def class_visualization(subject: Subject, target: int, steps: int = 200, lr: float = 0.02, l2: float = 1e-2,
                        jitter: int = 24, blur_every: int = 5, blur_sigma: float = 1.5, seed: int = 0,
                        init: torch.Tensor | None = None, callback=None) -> ClassVizResult:
    """Gradient ascent (Adam on the pixels) on score_target(x) - l2 * ||x - 0.5||^2, x in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    c, (h, w) = subject.in_chans, subject.size
    x = init.detach().clone() if init is not None else (0.5 + 0.1 * torch.randn((1, c, h, w), generator=g)).clamp(0, 1)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    scores = []
    for step in range(steps):
        dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist() if jitter else (0, 0))
        shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))  # jitter: the image must work at any small shift
        score = subject(shifted)[0, target]
        loss = -score + l2 * ((x - 0.5) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
            if blur_every and (step + 1) % blur_every == 0 and step + 1 < steps:
                x.copy_(gaussian_blur(x, blur_sigma))
        scores.append(float(score.detach()))
        if callback is not None:
            callback(step, scores[-1])
    final = (x.detach() * 255).round() / 255  # what the PNG holds
    prob = float(subject.probs(final)[0, target])
    return ClassVizResult(final[0].numpy(), prob, scores)
