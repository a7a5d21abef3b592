"""Residual networks (CS231n lecture 9; He et al. 2015).

- degradation: a deeper *plain* net reaches a higher training error than a shallower one (not
  overfitting: it is the training error), while the ResNet of the same depth does not degrade.
- shortcut-gradients: identity shortcuts are a gradient highway: at initialization every layer of a
  deep ResNet gets a gradient of about the same size, while in the plain twin it changes by orders of
  magnitude with depth (with batch norm it grows toward the input: the plain net's gradients explode
  rather than vanish, Yang et al. 2019; without it they vanish; either way the signal is not carried).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment
from cnnlab.models import create_model


@register_experiment(name="degradation", claim="Deeper plain nets get a higher training error than shallower ones, "
                     "while ResNets of the same depth do not degrade", budget_s=120,
                     section="CS231n lecture 9 (ResNet); He et al. 2015, Fig. 1 and Fig. 6")
def degradation(ctx: Context) -> Outcome:
    depths = ctx.pick((20, 56), (20, 32))
    epochs = ctx.pick(6, 1)
    err, curves = {}, {}
    for kind in ("plain", "resnet"):
        for d in depths:
            runs = ctx.train_seeds(model=f"{kind}{d}", model_kwargs={}, epochs=epochs, optimizer="momentum", lr=0.05,
                                   weight_decay=1e-4, schedule="cosine", batch_size=64)
            err[(kind, d)] = mean([1 - r.last("train_acc") for r in runs])
            curves[(kind, d)] = [1 - a for a in runs[0].series("train_acc")]
    fig, ax = ctx.figure("train-error")
    for (kind, d), c in curves.items():
        ax.plot(range(1, len(c) + 1), c, "-" if kind == "resnet" else "--", marker="o", label=f"{kind}-{d}")
    ax.set(xlabel="epoch", ylabel="training error", title="CIFAR-style plain nets vs ResNets on digits (8x8)")
    ax.legend()
    fig_path = ctx.save(fig, "train-error")
    lo, hi = depths
    n = {f"train_error_{k}{d}": v for (k, d), v in err.items()}
    n["plain_deeper_minus_shallower"] = err[("plain", hi)] - err[("plain", lo)]
    n["resnet_deeper_minus_shallower"] = err[("resnet", hi)] - err[("resnet", lo)]
    held = n["plain_deeper_minus_shallower"] > 0 and n["resnet_deeper_minus_shallower"] < n["plain_deeper_minus_shallower"]
    verdict = (f"final training error: plain-{lo} {err[('plain', lo)]:.1%} -> plain-{hi} {err[('plain', hi)]:.1%}; "
               f"resnet-{lo} {err[('resnet', lo)]:.1%} -> resnet-{hi} {err[('resnet', hi)]:.1%}")
    return Outcome(n, held, verdict, [fig_path])


def conv_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """||dL/dW|| of every conv layer, input to output, for one cross-entropy backward pass."""
    model.train()
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Conv2d)]


@register_experiment(name="shortcut-gradients", claim="Identity shortcuts are a gradient highway: every layer of a "
                     "deep ResNet gets a gradient of similar size, in the plain net it varies by orders of magnitude",
                     section="CS231n lecture 9 (ResNet: 'gradient highway')", budget_s=10, trains=False)
def shortcut_gradients(ctx: Context) -> Outcome:
    from sklearn.datasets import load_digits

    depth = ctx.pick(110, 56)
    digits = load_digits()
    x = torch.tensor(digits.images[:128], dtype=torch.float32).unsqueeze(1) / 16  # (128, 1, 8, 8)
    x = (x - x.mean()) / x.std()
    y = torch.tensor(digits.target[:128])
    norms = {}
    for kind in ("plain", "resnet"):
        torch.manual_seed(0)
        norms[kind] = conv_grad_norms(create_model(f"{kind}{depth}", num_classes=10, in_chans=1), x, y)
    fig, ax = ctx.figure("gradients")
    for kind, g in norms.items():
        ax.semilogy(range(1, len(g) + 1), g, label=f"{kind}-{depth}")
    ax.set(xlabel="conv layer (input to output)", ylabel="||dL/dW|| at initialization", title="one batch of digits")
    ax.legend()
    fig_path = ctx.save(fig, "gradients")
    n = {f"first_over_last_{k}": g[0] / g[-1] for k, g in norms.items()}
    n.update({f"max_over_min_{k}": max(g) / min(g) for k, g in norms.items()})
    held = n["max_over_min_resnet"] < n["max_over_min_plain"]
    verdict = (f"at initialization the conv layers' gradient norms span {n['max_over_min_resnet']:.3g}x in ResNet-{depth} "
               f"and {n['max_over_min_plain']:.3g}x in plain-{depth} (first/last layer: {n['first_over_last_resnet']:.2g}x "
               f"vs {n['first_over_last_plain']:.2g}x: with batch norm the plain net's gradients explode toward the input)")
    return Outcome(n, held, verdict, [fig_path])
