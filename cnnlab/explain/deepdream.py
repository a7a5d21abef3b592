"""DeepDream (Mordvintsev et al. 2015): change the image so that a layer's activations grow (gradient ascent
on their mean square), over several octaves (scales), carrying the added detail from each scale to the next.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.explain.common import Subject, get_layer, record_output


def deep_dream(subject: Subject, x: torch.Tensor, layer: str, octaves: int = 3, scale: float = 1.4, steps: int = 10,
               lr: float = 0.02, jitter: int = 8, seed: int = 0) -> np.ndarray:
    """(C, H, W) in [0, 1]: x (1, C, H, W) dreamed at ``layer``; smallest octave first."""
    g = torch.Generator().manual_seed(seed)
    module = get_layer(subject.model, layer)
    h, w = x.shape[-2:]
    sizes = [(max(8, round(h / scale ** i)), max(8, round(w / scale ** i))) for i in range(octaves)][::-1]
    detail = torch.zeros_like(x if sizes[0] == (h, w) else F.interpolate(x, size=sizes[0], mode="bilinear"))
    img = x
    for size in sizes:
        base = F.interpolate(x, size=size, mode="bilinear", align_corners=False) if size != (h, w) else x
        detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
        img = (base + detail).detach()
        for _ in range(steps):
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist() if jitter else (0, 0)
            shifted = torch.roll(img, (dy, dx), (2, 3)).requires_grad_(True)
            with record_output(module) as box:
                subject(shifted)
            (grad,) = torch.autograd.grad(box["out"].pow(2).mean(), shifted)
            grad = torch.roll(grad, (-dy, -dx), (2, 3))
            img = (img + lr * grad / grad.abs().mean().clamp_min(1e-12)).clamp(0, 1).detach()  # normalized step
        detail = img - base
    return img[0].numpy()
