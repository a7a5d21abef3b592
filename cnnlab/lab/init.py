"""Weight initialization (CS231n lecture 6, "Weight Initialization"; notes Neural Networks Part 2).

- init-collapse: in a 10-layer tanh net of 500 units, N(0, 0.01^2) weights shrink the activations
  toward zero layer by layer (no gradient signal); Xavier keeps them spread; for ReLU, He keeps them.
- init-training: the same collapse seen in training: a deep conv net without batch norm does not
  learn from a small random init, and does from Xavier/He.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment
from cnnlab.nn.init import activation_stats, init_weights


def deep_mlp(act: type, width: int = 500, depth: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), act()]
    return nn.Sequential(*layers)


@register_experiment(name="init-collapse", claim="Small random weights (N(0, 0.01^2)) collapse the activations of a "
                     "deep net to zero; Xavier keeps tanh activations spread and He keeps ReLU activations steady",
                     section="CS231n lecture 6 (weight initialization)", budget_s=5, trains=False)
def init_collapse(ctx: Context) -> Outcome:
    torch.manual_seed(0)
    x = torch.randn(ctx.pick(1000, 200), 500)  # (N, 500) unit-Gaussian inputs
    setups = {"tanh, N(0, 0.01^2)": (nn.Tanh, "small"), "tanh, Xavier": (nn.Tanh, "xavier"),
              "ReLU, Xavier": (nn.ReLU, "xavier"), "ReLU, He": (nn.ReLU, "he")}
    stds = {}
    for label, (act, scheme) in setups.items():
        net = init_weights(deep_mlp(act), scheme, std=0.01)
        stds[label] = [s for _, _, s in activation_stats(net, x)]  # per layer
    fig, ax = ctx.figure("stds")
    for label, s in stds.items():
        ax.semilogy(range(1, len(s) + 1), s, "o-", label=label)
    ax.set(xlabel="layer", ylabel="std of the activations", title="10 layers of 500 units, unit-Gaussian input")
    ax.legend()
    fig_path = ctx.save(fig, "stds")
    n = {f"last_layer_std_{k.replace(', ', '_').replace(' ', '').replace('N(0,0.01^2)', 'small')}": v[-1]
         for k, v in stds.items()}
    small, xav = stds["tanh, N(0, 0.01^2)"], stds["tanh, Xavier"]
    relu_x, relu_he = stds["ReLU, Xavier"], stds["ReLU, He"]
    n["collapse_factor_small_tanh"] = small[0] / small[-1]
    n["he_relu_last_over_first"] = relu_he[-1] / relu_he[0]
    held = small[-1] < 1e-3 and xav[-1] > 0.1 and 0.5 < n["he_relu_last_over_first"] < 2 and relu_x[-1] < relu_he[-1] / 4
    verdict = (f"tanh with N(0, 0.01^2): the std falls from {small[0]:.3g} to {small[-1]:.2g} over 10 layers "
               f"({n['collapse_factor_small_tanh']:.2g}x); Xavier keeps {xav[-1]:.2f}; ReLU with Xavier halves the "
               f"variance per layer ({relu_x[-1]:.3f} at layer 10) while He stays at {relu_he[-1]:.2f}")
    return Outcome(n, held, verdict, [fig_path])


@register_experiment(name="init-training", claim="A deep net without batch norm does not train from a small random "
                     "init, and does from Xavier or He init", section="CS231n lecture 6 (weight initialization)",
                     budget_s=15)
def init_training(ctx: Context) -> Outcome:
    epochs = ctx.pick(8, 1)
    n, curves = {}, {}
    for scheme in ("small", "xavier", "he"):
        runs = ctx.train_seeds(model_kwargs={"norm": "none", "depth": 3}, init=scheme, init_std=0.01, epochs=epochs,
                               optimizer="momentum", lr=0.02)
        n[f"val_acc_{scheme}"] = mean([r.last("val_acc") for r in runs])
        n[f"train_loss_{scheme}"] = mean([r.last("train_loss") for r in runs])
        curves[scheme] = runs[0].series("train_loss")
    fig, ax = ctx.figure("loss")
    for k, c in curves.items():
        ax.plot(range(1, len(c) + 1), c, "o-", label=f"--init {k}")
    ax.set(xlabel="epoch", ylabel="training loss", title="9-conv-layer net, no batch norm, digits")
    ax.legend()
    fig_path = ctx.save(fig, "loss")
    best = max(n["val_acc_xavier"], n["val_acc_he"])
    held = n["val_acc_small"] < best - 0.2
    verdict = (f"validation accuracy after {epochs} epochs: small init {n['val_acc_small']:.1%}, Xavier "
               f"{n['val_acc_xavier']:.1%}, He {n['val_acc_he']:.1%} (chance 10%)")
    return Outcome(n, held, verdict, [fig_path])
