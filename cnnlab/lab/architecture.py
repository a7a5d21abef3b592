"""Architecture claims checked by counting and measuring the models (CS231n lecture 9; deeplearning.ai C4W2).

- three-3x3-vs-7x7: three stacked 3x3 convs see a 7x7 region with 27C^2 weights instead of 49C^2
  (and three nonlinearities instead of one) (VGG, Simonyan & Zisserman 2014).
- bottleneck-1x1: a 1x1 "bottleneck" before a 5x5 conv cuts the multiplies ~10x (deeplearning.ai's
  Inception example: 120M vs 12.4M).
- googlenet-aux: GoogLeNet's auxiliary classifiers inject extra gradient into the middle layers;
  their effect on accuracy is small (Szegedy et al. 2015, "relatively minor effect (about 0.5%)").
- lrn: local response normalization adds little (VGG paper: no improvement on ILSVRC; CS231n: "these
  layers have since fallen out of favor because their contribution has been shown to be minimal").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment
from cnnlab.models.summary import count_macs, count_params
from cnnlab.ops.conv_arith import inception_cost_example, receptive_field


def measured_receptive_field(net: nn.Module, channels: int, size: int = 21) -> int:
    """Side of the input region that influences the centre output unit (nonzero input gradient)."""
    x = torch.randn(1, channels, size, size, requires_grad=True)
    y = net(x)  # (1, C, size, size) with 'same' padding
    y[0, :, size // 2, size // 2].sum().backward()
    rows = (x.grad.abs().sum((0, 1, 3)) > 0).nonzero()
    return int(rows.max() - rows.min() + 1)


@register_experiment(name="three-3x3-vs-7x7", claim="Three stacked 3x3 convs see 7x7 like one 7x7 conv, with 27C^2 "
                     "instead of 49C^2 weights and three nonlinearities instead of one", budget_s=5, trains=False,
                     section="CS231n lecture 9 (VGGNet)")
def three_3x3(ctx: Context) -> Outcome:
    c = 64
    torch.manual_seed(0)
    stack = nn.Sequential(*[m for _ in range(3) for m in (nn.Conv2d(c, c, 3, padding=1, bias=False), nn.ReLU())])
    single = nn.Sequential(nn.Conv2d(c, c, 7, padding=3, bias=False), nn.ReLU())
    n = {"rf_formula_3x3x3": float(receptive_field([(3, 1)] * 3)),
         "rf_measured_3x3x3": float(measured_receptive_field(stack, c)),
         "rf_measured_7x7": float(measured_receptive_field(single, c)),
         "params_3x3x3": float(count_params(stack)), "params_7x7": float(count_params(single)),
         "macs_3x3x3_56px": float(count_macs(stack, (c, 56, 56))), "macs_7x7_56px": float(count_macs(single, (c, 56, 56)))}
    n["param_ratio"] = n["params_3x3x3"] / n["params_7x7"]
    fig, ax = ctx.figure("params")
    ax.bar(["3 x (3x3)", "1 x (7x7)"], [n["params_3x3x3"], n["params_7x7"]])
    ax.set(ylabel=f"weights ({c} -> {c} channels)", title=f"both see 7x7; ratio {n['param_ratio']:.2f} (27/49)")
    fig_path = ctx.save(fig, "params")
    held = n["rf_measured_3x3x3"] == n["rf_measured_7x7"] == 7 and abs(n["param_ratio"] - 27 / 49) < 1e-9
    verdict = (f"both see {n['rf_measured_3x3x3']:.0f}x{n['rf_measured_3x3x3']:.0f} (measured by the input gradient of the "
               f"centre unit); three 3x3 convs have {n['params_3x3x3']:,.0f} weights vs {n['params_7x7']:,.0f} "
               f"({n['param_ratio']:.2f}x = 27/49)")
    return Outcome(n, held, verdict, [fig_path])


@register_experiment(name="bottleneck-1x1", claim="A 1x1 bottleneck before a 5x5 conv cuts the multiplies about 10x "
                     "(28x28x192 -> 32 channels: 120M vs 12.4M)", budget_s=5, trains=False,
                     section="deeplearning.ai C4W2 (Inception network: 1x1 convolutions)")
def bottleneck(ctx: Context) -> Outcome:
    direct = nn.Conv2d(192, 32, 5, padding=2, bias=False)
    neck = nn.Sequential(nn.Conv2d(192, 16, 1, bias=False), nn.ReLU(), nn.Conv2d(16, 32, 5, padding=2, bias=False))
    book = inception_cost_example()
    n = {"macs_direct": float(count_macs(direct, (192, 28, 28))), "macs_bottleneck": float(count_macs(neck, (192, 28, 28))),
         "course_direct": float(book["direct"]), "course_bottleneck": float(book["bottleneck_total"]),
         "params_direct": float(count_params(direct)), "params_bottleneck": float(count_params(neck))}
    n["reduction"] = n["macs_direct"] / n["macs_bottleneck"]
    fig, ax = ctx.figure("macs")
    ax.bar(["5x5 conv", "1x1 to 16, then 5x5"], [n["macs_direct"] / 1e6, n["macs_bottleneck"] / 1e6])
    ax.set(ylabel="million multiplies", title=f"28x28x192 -> 28x28x32: {n['reduction']:.1f}x fewer")
    fig_path = ctx.save(fig, "macs")
    held = n["macs_direct"] == n["course_direct"] and n["macs_bottleneck"] == n["course_bottleneck"] and n["reduction"] > 9
    verdict = (f"measured {n['macs_direct'] / 1e6:.1f}M multiplies for the 5x5 conv and {n['macs_bottleneck'] / 1e6:.1f}M with "
               f"the 1x1 bottleneck ({n['reduction']:.1f}x fewer), as the course computes")
    return Outcome(n, held, verdict, [fig_path])


@register_experiment(name="googlenet-aux", claim="GoogLeNet's auxiliary classifiers inject extra gradient into the "
                     "middle layers; their effect on accuracy is small", budget_s=150,
                     section="CS231n lecture 9 (GoogLeNet: auxiliary classification outputs)")
def googlenet_aux(ctx: Context) -> Outcome:
    from cnnlab.models import create_model

    torch.manual_seed(0)
    x, y = torch.randn(ctx.pick(16, 4), 1, 32, 32), torch.randint(0, 10, (ctx.pick(16, 4),))
    grads = {}  # the gradient reaching inception 4a's weights at initialization, from each loss
    torch.manual_seed(0)
    net = create_model("googlenet", num_classes=10, in_chans=1, aux_logits=True).train()
    logits, extra = net(x)
    w = [p for name, p in net.named_parameters() if name.startswith("inception4a") and p.ndim == 4]
    g_main = torch.autograd.grad(F.cross_entropy(logits, y), w, retain_graph=True)
    g_aux = torch.autograd.grad(net.aux_loss_weight * sum(F.cross_entropy(a, y) for a in extra), w)
    grads[False] = float(torch.sqrt(sum((g ** 2).sum() for g in g_main)))
    grads[True] = float(torch.sqrt(sum(((g + h) ** 2).sum() for g, h in zip(g_main, g_aux))))
    aux_share = float(torch.sqrt(sum((h ** 2).sum() for h in g_aux))) / grads[False]
    acc = {}
    for aux in (False, True):
        runs = ctx.train_seeds(data="fashion-mnist", img_size=32, model="googlenet", model_kwargs={"aux_logits": aux},
                               epochs=ctx.pick(3, 1), limit=ctx.pick(1500, 32), limit_test=ctx.pick(1000, 16),
                               optimizer="adam", lr=1e-3, batch_size=ctx.pick(32, 16))
        acc[aux] = mean([r.best("val_acc") for r in runs])
    fig, (a1, a2) = ctx.figure("aux", ncols=2)
    a1.bar(["main loss", "main + 0.3 aux"], [grads[False], grads[True]])
    a1.set(ylabel="||dL/dW|| of inception 4a at init", title="gradient reaching the middle")
    a2.bar(["without aux", "with aux"], [acc[False], acc[True]])
    a2.set(ylabel="validation accuracy", title="Fashion-MNIST subset, 32 px")
    fig_path = ctx.save(fig, "aux")
    n = {"grad_inception4a_no_aux": grads[False], "grad_inception4a_aux": grads[True],
         "aux_over_main_grad": aux_share, "val_acc_no_aux": acc[False], "val_acc_aux": acc[True],
         "acc_gain": acc[True] - acc[False]}
    held = n["aux_over_main_grad"] > 0.1 and abs(n["acc_gain"]) < 0.03
    verdict = (f"at initialization the auxiliary losses send inception 4a a gradient {n['aux_over_main_grad']:.2f}x the size "
               f"of the main loss's; "
               f"validation accuracy {acc[True]:.1%} with them vs {acc[False]:.1%} without ({n['acc_gain']:+.1%})")
    return Outcome(n, held, verdict, [fig_path])


@register_experiment(name="lrn", claim="Local response normalization adds little", budget_s=90,
                     section="CS231n notes, Convolutional Networks (normalization layers); Simonyan & Zisserman 2014")
def lrn(ctx: Context) -> Outcome:
    acc, curves = {}, {}
    for norm in ("none", "lrn"):
        runs = ctx.train_seeds(data="fashion-mnist", img_size=28, model_kwargs={"width": 16, "norm": norm, "depth": 1},
                               init="he", epochs=ctx.pick(4, 1), limit=ctx.pick(5000, 256), limit_test=ctx.pick(1000, 128),
                               optimizer="adam", lr=2e-3)
        acc[norm] = mean([r.best("val_acc") for r in runs])
        curves[norm] = runs[0].series("val_acc")
    fig, ax = ctx.figure("acc")
    for k, c in curves.items():
        ax.plot(range(1, len(c) + 1), c, "o-", label=f"norm={k}")
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="3 convs (no batch norm), He init, Adam; Fashion-MNIST")
    ax.legend()
    fig_path = ctx.save(fig, "acc")
    n = {"val_acc_none": acc["none"], "val_acc_lrn": acc["lrn"], "lrn_gain": acc["lrn"] - acc["none"]}
    held = abs(n["lrn_gain"]) < 0.02  # "little": neither a clear gain nor a clear loss
    verdict = f"validation accuracy {acc['lrn']:.1%} with LRN after every conv vs {acc['none']:.1%} without ({n['lrn_gain']:+.1%})"
    return Outcome(n, held, verdict, [fig_path])
