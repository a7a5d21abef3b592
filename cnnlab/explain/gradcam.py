"""Grad-CAM (Selvaraju et al. 2017): where in the image a layer's evidence for a class lies.

For the chosen layer's maps A_k (K, h, w): weights a_k = mean over (h, w) of d score_c / d A_k, then
cam = ReLU(sum_k a_k A_k), upsampled (bilinear) to the input size and scaled to [0, 1]. The default layer
is the last one with a spatial map (for MobileNetV2 ``features``, 7 x 7 at 224 px).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.explain.common import Subject, get_layer, last_spatial_layer, record_output


def grad_cam(subject: Subject, x: torch.Tensor, target: int, layer: str | None = None) -> np.ndarray:
    """(H, W) Grad-CAM map in [0, 1] for x (1, C, H, W)."""
    layer = layer or last_spatial_layer(subject)
    x = x.detach().clone().requires_grad_(True)  # so the layer's output is part of a graph
    with record_output(get_layer(subject.model, layer)) as box:
        score = subject(x)[0, target]
    acts = box["out"]  # (1, K, h, w)
    if acts.ndim != 4:
        from cnnlab.errors import ConfigError

        raise ConfigError(f"--layer {layer}: its output has shape {tuple(acts.shape)}; Grad-CAM needs a (B, C, h, w) map")
    (grads,) = torch.autograd.grad(score, acts)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (1, K, 1, 1)
    cam = F.relu((weights * acts).sum(1, keepdim=True))  # (1, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]  # (H, W)
    cam = cam.detach()
    return (cam / cam.max()).numpy() if cam.max() > 0 else cam.numpy()
