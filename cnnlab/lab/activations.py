"""Activation functions (CS231n lecture 6 / notes "Neural Networks Part 1", "Commonly used activation functions").

- relu-vs-saturating: ReLU converges much faster than sigmoid/tanh (Krizhevsky et al. 2012: 6x fewer
  iterations to 25% training error than tanh).
- sigmoid-saturation: a saturated sigmoid kills the gradient: sigma'(x) = sigma(x)(1 - sigma(x)) <= 1/4
  and ~0 for |x| > 5, so little reaches the layers below.
- sigmoid-not-zero-centred: sigmoid outputs are all positive, so the gradient on a neuron's weights
  has the same sign for every weight (zig-zag updates); tanh's are zero-centred.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.lab.core import Context, Outcome, first_reaching, mean, smooth
from cnnlab.lab.registry import register_experiment


@register_experiment(name="relu-vs-saturating", claim="ReLU nets reach a given training accuracy several times sooner "
                     "than the same nets with tanh or sigmoid", section="CS231n lecture 6 (activation functions); "
                     "Krizhevsky et al. 2012, Fig. 1", budget_s=60)
def relu_vs_saturating(ctx: Context) -> Outcome:
    epochs = ctx.pick(3, 1)
    target = ctx.pick(0.75, 0.3)  # Krizhevsky's 25% training error
    curves, reach = {}, {}
    for act in ("relu", "tanh", "sigmoid"):  # each with its usual init: He for ReLU, Xavier for tanh and sigmoid
        runs = ctx.train_seeds(data="fashion-mnist", img_size=28, limit=ctx.pick(10000, 256), limit_test=ctx.pick(1000, 128),
                               model_kwargs={"activation": act, "norm": "none", "depth": 1, "width": 16},
                               init="he" if act == "relu" else "xavier", epochs=epochs, lr=0.01, optimizer="momentum")
        curves[act] = [smooth(r.steps["acc"], 20) for r in runs]
        reach[act] = mean([first_reaching(c, target) for c in curves[act]])
    fig, ax = ctx.figure("curves")
    for act, cs in curves.items():
        ax.plot(cs[0], label=act)
    ax.axhline(target, ls="--", c="grey", lw=0.8)
    ax.set(xlabel="training step", ylabel="training accuracy (running mean)", title="4-layer conv net (no norm), Fashion-MNIST")
    ax.legend()
    fig_path = ctx.save(fig, "curves")
    n = {f"steps_to_{int(target * 100)}pct_{a}": v for a, v in reach.items()}
    n["speedup_vs_tanh"] = reach["tanh"] / reach["relu"]
    n["speedup_vs_sigmoid"] = reach["sigmoid"] / reach["relu"]
    held = n["speedup_vs_tanh"] > 1 and n["speedup_vs_sigmoid"] > 1
    never = [a for a in ("tanh", "sigmoid") if reach[a] > len(curves[a][0])]
    verdict = (f"ReLU reached {target:.0%} training accuracy in {reach['relu']:.0f} steps: "
               f"{n['speedup_vs_tanh']:.1f}x sooner than tanh and {n['speedup_vs_sigmoid']:.1f}x sooner than sigmoid"
               + (f" ({', '.join(never)} never reached it: the ratio is a lower bound)" if never else ""))
    return Outcome(n, held, verdict, [fig_path])


@register_experiment(name="sigmoid-saturation", claim="Saturated sigmoid units pass almost no gradient: "
                     "sigma' <= 1/4, and ~0 once |x| > 5, so a large initialization stalls the layers below",
                     section="CS231n notes, Neural Networks Part 1 (sigmoid)", budget_s=5, trains=False)
def sigmoid_saturation(ctx: Context) -> Outcome:
    torch.manual_seed(0)
    x = torch.linspace(-10, 10, 401)
    s = torch.sigmoid(x)
    ds = s * (1 - s)
    # a 6-layer sigmoid MLP at two weight scales: gradient norm reaching each layer
    width, depth = 256, 6
    inputs = torch.randn(128, width)
    grads = {}
    for scale in (1.0, 10.0):
        layers = [nn.Linear(width, width) for _ in range(depth)]
        for lin in layers:
            nn.init.normal_(lin.weight, 0, scale / math.sqrt(width))
            nn.init.zeros_(lin.bias)
        h, local = inputs, []
        with torch.no_grad():
            for lin in layers:
                h = torch.sigmoid(lin(h))
                local.append(float((h * (1 - h)).mean()))  # the mean local gradient sigma' of the layer's units
        grads[scale] = local
        grads[f"sat{scale}"] = float(((h < 0.01) | (h > 0.99)).float().mean())
    fig, (a1, a2) = ctx.figure("sigmoid", ncols=2)
    a1.plot(x, s, label="sigma(x)")
    a1.plot(x, ds, label="sigma'(x)")
    a1.set(xlabel="x", title="the sigmoid and its gradient")
    a1.legend()
    for scale in (1.0, 10.0):
        a2.plot(range(1, depth + 1), grads[scale], "o-", label=f"weights std {scale:g}/sqrt(n)")
    a2.set(xlabel="layer", ylabel="mean sigma' of the layer's units", title="local gradient per layer", ylim=(0, 0.26))
    a2.legend()
    fig_path = ctx.save(fig, "sigmoid")
    n = {"max_sigmoid_grad": float(ds.max()), "sigmoid_grad_at_5": float(torch.sigmoid(torch.tensor(5.0)) *
                                                                         (1 - torch.sigmoid(torch.tensor(5.0)))),
         "saturated_fraction_std1": grads["sat1.0"], "saturated_fraction_std10": grads["sat10.0"],
         "mean_local_grad_std1": mean(grads[1.0]), "mean_local_grad_std10": mean(grads[10.0])}
    held = n["max_sigmoid_grad"] <= 0.25 + 1e-6 and n["sigmoid_grad_at_5"] < 0.01 and \
        n["saturated_fraction_std10"] > n["saturated_fraction_std1"] and n["mean_local_grad_std10"] < n["mean_local_grad_std1"]
    verdict = (f"sigma' peaks at {n['max_sigmoid_grad']:.3f} and is {n['sigmoid_grad_at_5']:.4f} at x=5; with 10x larger "
               f"weights {n['saturated_fraction_std10']:.0%} of the last layer's units are saturated "
               f"(vs {n['saturated_fraction_std1']:.0%}) and the mean local gradient drops "
               f"{n['mean_local_grad_std1'] / n['mean_local_grad_std10']:.1f}x ({n['mean_local_grad_std1']:.3f} -> "
               f"{n['mean_local_grad_std10']:.3f}); every sigmoid layer multiplies the backward signal by at most 1/4")
    return Outcome(n, held, verdict, [fig_path])


@register_experiment(name="sigmoid-not-zero-centred", claim="Sigmoid outputs are not zero-centred: the gradient on a "
                     "neuron's incoming weights then has one sign for all of them (zig-zag updates); tanh's do not",
                     section="CS231n notes, Neural Networks Part 1 (sigmoid, tanh)", budget_s=5, trains=False)
def sigmoid_not_zero_centred(ctx: Context) -> Outcome:
    torch.manual_seed(0)
    n_in, n_out = 100, 50
    z = torch.randn(1, n_in) * 2  # pre-activations of the layer below, one example
    result = {}
    for name, f in (("sigmoid", torch.sigmoid), ("tanh", torch.tanh)):
        x = f(z)  # (1, n_in): inputs to the next layer
        w = torch.randn(n_in, n_out, requires_grad=True)
        upstream = torch.randn(1, n_out)  # dL/d(x w) from above
        (x @ w).backward(upstream)
        g = w.grad  # (n_in, n_out): column j is the gradient on neuron j's weights = x^T * upstream_j
        same_sign = ((g > 0).all(0) | (g < 0).all(0)).float().mean()
        result[name] = (float(same_sign), float(x.mean()), g[:, 0])
    fig, ax = ctx.figure("signs")
    for name, (_, _, g0) in result.items():
        ax.plot(g0.numpy(), ".", label=f"{name} inputs")
    ax.axhline(0, c="grey", lw=0.8)
    ax.set(xlabel="incoming weight index", ylabel="dL/dw of one neuron", title="one example's gradient on one neuron")
    ax.legend()
    fig_path = ctx.save(fig, "signs")
    n = {"same_sign_neurons_sigmoid": result["sigmoid"][0], "same_sign_neurons_tanh": result["tanh"][0],
         "mean_input_sigmoid": result["sigmoid"][1], "mean_input_tanh": result["tanh"][1]}
    held = n["same_sign_neurons_sigmoid"] > 0.99 and n["same_sign_neurons_tanh"] < 0.01
    verdict = (f"with sigmoid inputs (mean {n['mean_input_sigmoid']:.2f}) {n['same_sign_neurons_sigmoid']:.0%} of the "
               f"neurons get an all-one-sign weight gradient, with tanh inputs (mean {n['mean_input_tanh']:.2f}) "
               f"{n['same_sign_neurons_tanh']:.0%}")
    return Outcome(n, held, verdict, [fig_path])
