"""Guided backpropagation (Springenberg et al. 2015): backpropagate only positive gradients through
positive activations of every ReLU, so the gradient image shows the input patterns a class responds to.

The network is copied and each ``nn.ReLU`` / ``nn.ReLU6`` (inplace or not) is swapped for a module whose
backward is ``grad_out.clamp(min=0) * (0 < x < cap)``; the original model is not touched. Activations
applied as functions inside ``forward`` (not modules) are left as ordinary ReLUs, and we say so.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from cnnlab.explain.common import Subject


class _GuidedReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, cap: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.cap = cap
        return x.clamp(0, cap)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        passes = (x > 0) & (x < ctx.cap)  # where the activation's own derivative is 1
        return grad.clamp(min=0) * passes, None  # and only positive signals from above


class GuidedReLU(nn.Module):
    """ReLU (cap inf) or ReLU6 (cap 6) with the guided backward pass; never inplace."""

    def __init__(self, cap: float = float("inf")):
        super().__init__()
        self.cap = cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _GuidedReLUFn.apply(x, self.cap)


def guided_copy(model: nn.Module) -> tuple[nn.Module, int]:
    """A deep copy of model with every ReLU/ReLU6 module replaced by its guided version; (copy, replaced)."""
    model = copy.deepcopy(model)
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                cap = 6.0 if isinstance(child, nn.ReLU6) else float("inf")
                setattr(parent, name, GuidedReLU(cap))
                replaced += 1
    return model.eval(), replaced


def guided_gradient(subject: Subject, x: torch.Tensor, target: int) -> torch.Tensor:
    """(C, H, W) guided-backprop gradient of the target score with respect to the pixels."""
    cached = getattr(subject, "_guided", None)
    if cached is None or cached[0] is not subject.model:
        cached = (subject.model, guided_copy(subject.model)[0])
        subject._guided = cached  # type: ignore[attr-defined]
    guided = Subject(cached[1], subject.classes, subject.size, subject.in_chans, subject.normalize, subject.name)
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(guided(x)[0, target], x)
    return grad[0]


def guided_backprop(subject: Subject, x: torch.Tensor, target: int) -> tuple[np.ndarray, np.ndarray]:
    """((H, W) map = max over channels of |guided gradient|, (C, H, W) the gradient itself)."""
    g = guided_gradient(subject, x, target)
    return g.abs().amax(0).numpy(), g.numpy()


def gradient_image(g: np.ndarray) -> np.ndarray:
    """A (C, H, W) gradient as a picture: centred at grey, scaled by its 99th percentile -> (H, W, C) in [0, 1]."""
    scale = np.percentile(np.abs(g), 99) or 1.0
    a = np.clip(0.5 + 0.5 * g / scale, 0, 1).transpose(1, 2, 0)
    return a[..., 0] if a.shape[2] == 1 else a
