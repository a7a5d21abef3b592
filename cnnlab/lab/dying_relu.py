"""Dying ReLUs (CS231n notes, Neural Networks Part 1, "ReLU ... Leaky ReLU ... Maxout").

A large update can push a ReLU's weights where it never fires again on any input: its gradient
is zero for every example and it never recovers. Leaky ReLU (slope 0.01 below zero), ELU and
Maxout always pass some gradient, so none of their units can die.
"""

from __future__ import annotations

import torch

from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment
from cnnlab.models.convnet import ChannelMaxout

ACTS = ("relu", "leaky_relu", "elu", "maxout")


def dead_fraction(model: torch.nn.Module, x: torch.Tensor, tol: float = 1e-6) -> float:
    """Fraction of units (channels of every nonlinearity) whose local gradient is below ``tol`` on every input of ``x``."""
    acts = [m for m in model.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.ELU, ChannelMaxout))]
    inputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: inputs.append((mod, i[0].detach()))) for m in acts]
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    dead = total = 0
    for mod, z in inputs:
        z = z.clone().requires_grad_(True)
        if isinstance(mod, ChannelMaxout):
            g = torch.autograd.grad(mod(z).sum(), z)[0]  # (B, 2C, H, W): 1 on the winning piece
            g = g.reshape(g.shape[0], -1, 2, *g.shape[2:]).amax(2)  # (B, C, H, W)
        else:
            f = type(mod)(*([mod.negative_slope] if isinstance(mod, torch.nn.LeakyReLU) else []))  # not in place
            g = torch.autograd.grad(f(z).sum(), z)[0]
        per_unit = g.abs().transpose(0, 1).flatten(1).amax(1)  # (C,): the largest local gradient over all inputs
        dead += int((per_unit < tol).sum())
        total += per_unit.numel()
    return dead / max(1, total)


@register_experiment(name="dying-relu", claim="After a too-large update many ReLU units die (zero gradient on every "
                     "input, for good); Leaky ReLU, ELU and Maxout units cannot", section="CS231n notes, Neural Networks "
                     "Part 1 (ReLU cons, Leaky ReLU, Maxout)", budget_s=15)
def dying_relu(ctx: Context) -> Outcome:
    epochs = ctx.pick(4, 1)
    lrs = (0.05, 1.0)
    n, curves = {}, {}
    for act in ACTS:
        for lr in lrs:
            fracs = []
            for r in ctx.train_seeds(model_kwargs={"activation": act, "norm": "none"}, epochs=epochs, lr=lr,
                                     optimizer="sgd", skip_nonfinite=True):
                fracs.append(dead_fraction(r.model, r.images(256)[0]))
            n[f"dead_{act}_lr{lr:g}"] = mean(fracs)
    fig, ax = ctx.figure("dead")
    width = 0.38
    for k, lr in enumerate(lrs):
        ax.bar([i + k * width for i in range(len(ACTS))], [n[f"dead_{a}_lr{lr:g}"] for a in ACTS], width,
               label=f"SGD lr {lr:g}")
    ax.set_xticks([i + width / 2 for i in range(len(ACTS))], ACTS)
    ax.set(ylabel="fraction of dead units", title="units with zero gradient on every training image")
    ax.legend()
    fig_path = ctx.save(fig, "dead")
    hi = lrs[-1]
    relu, others = n[f"dead_relu_lr{hi:g}"], max(n[f"dead_{a}_lr{hi:g}"] for a in ACTS[1:])
    held = relu > n[f"dead_relu_lr{lrs[0]:g}"] and relu > others
    verdict = (f"after training at lr {hi:g}, {relu:.0%} of the ReLU units are dead (lr {lrs[0]:g}: "
               f"{n[f'dead_relu_lr{lrs[0]:g}']:.0%}); Leaky ReLU / ELU / Maxout: at most {others:.0%}")
    return Outcome(n, held, verdict, [fig_path])
